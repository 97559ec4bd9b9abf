// Package state keeps what pgbluegreen must not forget: the state file (the values table and
// every step's status), the append-only journal of everything said to PostgreSQL, PgBouncer and
// AWS, the operator lock that lets one instance run steps while others watch, and Redact, the
// one function that keeps passwords out of all of them.
//
// The state file is the single source of truth about a run. It is rewritten whole and atomically
// (temp file, fsync, rename, fsync of the folder) on every change, so a kill -9 or a power cut
// leaves either the previous or the next version, never a mix. A step found "running" when the
// file is opened for writing was cut short by a crash: it is marked "interrupted" so the runner
// asks the step's check instead of running it twice.
//
// Only the instance that holds the lock (an flock on the state file's path plus ".lock") may
// write; a second instance opens the file read-only (--watch) and follows it with Store.Reload
// and ReadJournal.
//
// The package depends on the standard library alone.
package state
