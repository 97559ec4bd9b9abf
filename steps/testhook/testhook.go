// Package testhook is where the tests that build and kill the real program
// reach into it: they stop a run at a named point (HoldEnv) and start a
// cutover without its guard (NoGuardEnv), through environment variables.
//
// The product is built without the tag pgbgtest, and then every hook here
// does nothing and nothing reads those variables (hook_off.go). A binary
// built with -tags pgbgtest (the kill tests build theirs so) reads them
// (hook_on.go).
package testhook

const (
	// Tag is the build tag that builds the hooks in: go build -tags pgbgtest.
	Tag = "pgbgtest"
	// HoldEnv, set to a point's name (a cutover's sub-step, or
	// steps.CopyDataHold), stops the run right before that point, writing
	// HoldFile beside the state file, until its context ends or the
	// process is killed.
	HoldEnv = "PGBG_TEST_HOLD_AT"
	// HoldFile is written, with the pid and the point, when a run holds.
	HoldFile = "pgbluegreen.held"
	// NoGuardEnv, set, starts a cutover with no guard process (the tests
	// of the ways out leave an attempt half way on purpose).
	NoGuardEnv = "PGBG_TEST_NO_GUARD"
)
