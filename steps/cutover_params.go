package steps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps/cutover"
	"github.com/pgbluegreen/pgbluegreen/steps/testhook"
)

// The cutover's parameters, from the configuration and the recorded values:
// the PgBouncers, the roles to fence, the health window, the hold of
// commits, and the test hook that holds a run at a named sub-step.

// reportDir is where reports go: next to the state file; without one (a
// test's bare Env), next to the configuration file; else the working folder.
func (e *Env) reportDir() string {
	if e.StateDir != "" {
		return e.StateDir
	}
	if e.Config != nil && e.Config.Path != "" {
		return filepath.Dir(e.Config.Path)
	}
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "."
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// cutoverParams maps the configuration onto the engine's Params
// (cutover.FromConfig) for every database that moves, with what the run's
// state knows: the roles the
// last attempt fenced, the health record, and its hooks. With a connection
// to the direction's source, the fence roles are the writers found there
// too.
func (e *Env) cutoverParams(ctx context.Context, rollback bool) (cutover.Params, error) {
	dbs, err := e.Databases(ctx)
	if err != nil {
		return cutover.Params{}, err
	}
	pools := make([]cutover.DatabasePools, len(dbs))
	for i, d := range dbs {
		pools[i] = cutover.DatabasePools{Name: d.Name, Blue: d.Blue, Green: d.Green}
	}
	p, err := cutover.FromConfig(e.Config, pools)
	if err != nil {
		return p, err
	}
	for i := range p.Databases {
		p.Databases[i].LargeObjects = e.largeObjectsSince(p.Databases[i].Name, rollback)
	}
	p.Health = e.health()
	p.Fences = e.fencesInForce()
	p.Administrators = e.Config.Cutover.Administrators
	p.Hooks = attemptHooks{e: e, hold: holdPoint()}
	if a, ok := e.lastAttempt(cutoverStepID); ok {
		p.FenceRoles = union(p.FenceRoles, a.FenceRoles)
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	return p, p.AddWriters(ctx, rollback)
}

// holdPoint and hold are the kill tests' hook (package testhook): the
// point a run stops at, and the wait there. Both do nothing unless the
// binary is built with -tags pgbgtest; a test of this package that runs
// the cutover in process sets its own.
var holdPoint, hold = testhook.HoldAt, testhook.Hold

// health is the precheck's judge of apply errors: the window from the
// configuration, the count last seen and when it was first seen.
func (e *Env) health() cutover.Health {
	h := cutover.Health{Window: e.Config.Cutover.HealthWindow.Duration}
	if v, ok := e.Value(SubscriptionErrorsKey); ok {
		count, at, _ := strings.Cut(v, " since ")
		fmt.Sscan(count, &h.Known)
		h.KnownAt, _ = time.Parse(time.RFC3339, at)
	}
	return h
}

// SubscriptionErrorsKey records the forward feed's apply and sync error
// count ("N since TIME", TIME when the count was first seen): the
// precheck judges errors by when they appeared, not by lifetime totals.
const SubscriptionErrorsKey = "subscription_errors"

// recordHealth records the error count when it changed.
func (e *Env) recordHealth(count int64) error {
	h := e.health()
	if _, ok := e.Value(SubscriptionErrorsKey); ok && count == h.Known {
		return nil
	}
	return e.Record(SubscriptionErrorsKey, fmt.Sprintf("%d since %s", count, time.Now().UTC().Format(time.RFC3339)))
}
