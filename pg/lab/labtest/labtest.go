// Package labtest is the one test harness for tests and benchmarks that need
// the local lab's real servers (blue 15, green 17, PgBouncer): the rule for
// when such a test may run, a lab in a folder the postgres OS user can enter,
// and the lab's workload run around a piece of work.
//
// It imports pg/lab (and pgx) and never pg: pg's internal tests import this package,
// and an import of pg from here would be a cycle for them. pg/lab's own
// internal tests cannot import it either (same cycle) and keep their copy.
package labtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
)

// KeepEnv names the environment variable that, set to anything, keeps a
// failed test's lab files (stopped) for inspection.
const KeepEnv = "PGBG_KEEP_LAB"

// Missing says why the lab cannot run on this machine, or "" when it can:
// it needs PostgreSQL 15 and 17 (with pg_upgrade, for the clone strategy),
// PgBouncer, openssh-server (the second PgBouncer is reached over SSH) and, when running as root, the postgres OS user.
func Missing() string {
	const deps = "needs PostgreSQL 15 and 17 and PgBouncer: run `make deps`"
	builds, _ := lab.FindBuilds(lab.DefaultCacheDir())
	if len(builds) < 2 || builds[len(builds)-1].Major < 17 {
		return deps
	}
	if _, err := os.Stat(filepath.Join(builds[len(builds)-1].BinDir, "pg_upgrade")); err != nil {
		return deps + " (the newest PostgreSQL has no pg_upgrade)"
	}
	if _, err := exec.LookPath("pgbouncer"); err != nil {
		if _, err := os.Stat("/usr/sbin/pgbouncer"); err != nil {
			return deps
		}
	}
	if !lab.HasSSHD() {
		return "needs openssh-server for the lab's second PgBouncer (its ini reached over SSH): run `make deps`"
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup(lab.LabOSUser); err != nil {
			return "running as root, the lab needs the postgres OS user: useradd --system postgres"
		}
	}
	return ""
}

// Require skips the test or benchmark when the lab cannot run here, saying
// why; under CI=true (any non-empty CI) that is a failure instead, so a CI
// machine missing the servers never passes by skipping.
func Require(tb testing.TB) {
	tb.Helper()
	why := Missing()
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatal(why)
	}
	tb.Skip(why)
}

// stops holds each lab folder's teardown so Stop and the registered cleanup
// run it once between them.
var stops sync.Map // dir -> func()

// RootEnv names the folder labs are made in (default /tmp): /dev/shm puts
// a benchmark's servers on tmpfs, where an fsync costs nothing, to tell
// the disk's share of a figure from the rest.
const RootEnv = "PGBG_LAB_ROOT"

// Dir makes an empty lab folder under /tmp (or RootEnv) that the postgres
// OS user can enter (t.TempDir()'s parents are 0700 root) and registers
// its teardown:
// lab.Down (purging, unless KeepEnv is set and the test failed) and removal.
// For tests that call lab.Up themselves; most want Start.
func Dir(tb testing.TB) string {
	tb.Helper()
	root := os.Getenv(RootEnv)
	if root == "" {
		root = "/tmp"
	}
	dir, err := os.MkdirTemp(root, "pgbg-lab-")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			keep := tb.Failed() && os.Getenv(KeepEnv) != ""
			if err := lab.Down(context.Background(), dir, !keep, nil); err != nil {
				tb.Errorf("lab down: %v", err)
			}
			if keep {
				tb.Logf("lab files kept in %s", dir)
				return
			}
			os.RemoveAll(dir)
		})
	}
	stops.Store(dir, stop)
	tb.Cleanup(func() {
		stop()
		stops.Delete(dir)
	})
	return dir
}

// Stop tears the lab in dir down now rather than at cleanup (a no-op when
// it was already stopped, or dir was not made by Dir or Start).
func Stop(dir string) {
	if f, ok := stops.Load(dir); ok {
		f.(func())()
	}
}

// StartParams says which lab Start brings up.
type StartParams struct {
	// Strategy is the lab's strategy: "copy" (blue and green), "clone"
	// (blue only; green is made from it) or "" for lab.Up's default.
	Strategy string
}

// Start requires the lab (see Require), brings a fresh one up in a Dir and
// returns what lab.Up returned; the lab is torn down at the test's cleanup.
func Start(tb testing.TB, p StartParams) *lab.Info {
	tb.Helper()
	Require(tb)
	dir := Dir(tb)
	info, err := lab.Up(context.Background(), lab.UpParams{Dir: dir, Strategy: p.Strategy})
	if err != nil {
		tb.Fatalf("lab up (strategy %q): %v", p.Strategy, err)
	}
	return info
}

// LoadParams shapes the workload LoadAround and StartLoad run.
type LoadParams struct {
	// Rate is the writes per second through PgBouncer; Clients how many
	// connections write (lab.Load's default when 0).
	Rate, Clients int
	// Lead is how much load runs before fn, Tail how much after it, as the
	// writes committed at Rate in that time: the helper waits until the
	// ledger grew that much, however slow the machine.
	Lead, Tail time.Duration
	// Databases are the lab databases written to, each with its own
	// ledger (lab.LoadParams.Databases); nil = lab.DefaultLoadDatabases.
	Databases []string
}

// StartLoad starts the lab's workload (lab.Load through PgBouncer) and
// returns once its first write is acknowledged; stop ends it and returns
// its figures (a load error fails the test). It is stopped at cleanup.
func StartLoad(tb testing.TB, dir string, p LoadParams) (stop func() lab.LoadResult) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var committed atomic.Int64
	var res lab.LoadResult
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err = lab.Load(ctx, lab.LoadParams{Dir: dir, Rate: p.Rate, Duration: time.Hour, Clients: p.Clients, Databases: p.Databases, Committed: &committed})
	}()
	var once sync.Once
	stop = func() lab.LoadResult {
		once.Do(func() {
			cancel()
			<-done
			if err != nil {
				tb.Errorf("load: %v", err)
			}
		})
		return res
	}
	tb.Cleanup(func() { stop() })
	waitCommitted(tb, &committed, 1, done)
	return stop
}

// waitCommitted waits until counter reaches n, the load ends, or a minute
// passes (then the test fails).
func waitCommitted(tb testing.TB, counter *atomic.Int64, n int64, done <-chan struct{}) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for counter.Load() < n {
		select {
		case <-done:
			return
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the load committed %d writes in a minute, waiting for %d", counter.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LoadAround runs the lab's workload (lab.Load through PgBouncer) until it
// committed p.Lead's worth of writes, then fn, then p.Tail's worth more,
// stops it and returns its figures; a load error fails the test.
func LoadAround(tb testing.TB, dir string, p LoadParams, fn func()) lab.LoadResult {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var committed atomic.Int64
	type out struct {
		res lab.LoadResult
		err error
	}
	done := make(chan out, 1)
	ended := make(chan struct{})
	go func() {
		res, err := lab.Load(ctx, lab.LoadParams{Dir: dir, Rate: p.Rate, Duration: time.Hour, Clients: p.Clients, Databases: p.Databases, Committed: &committed})
		close(ended)
		done <- out{res, err}
	}()
	worth := func(d time.Duration) int64 { return max(1, int64(d.Seconds()*float64(max(p.Rate, 1)))) }
	waitCommitted(tb, &committed, worth(p.Lead), ended)
	fn()
	waitCommitted(tb, &committed, committed.Load()+worth(p.Tail), ended)
	cancel()
	o := <-done
	if o.err != nil {
		tb.Fatalf("load: %v", o.err)
	}
	return o.res
}

// WaitSlotDrained waits (up to a minute, else the test fails) until the
// logical slot on pool has confirmed everything written on that server
// before the call: the feed in use has drained. When slowLogs is not nil
// and the wait passes 20 s, what it returns (the servers' logs) is logged
// once, to show why.
func WaitSlotDrained(tb testing.TB, pool *pgxpool.Pool, slot string, slowLogs func() string) {
	tb.Helper()
	// A commit the stopped load sent just before it was cancelled may still
	// be landing through PgBouncer (its outcome unknown to the client, so
	// not in the ledger): let it land before taking the target.
	time.Sleep(300 * time.Millisecond)
	ctx := context.Background()
	var lsn string
	if err := pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	logged := false
	for {
		var done bool
		if err := pool.QueryRow(ctx, "SELECT coalesce(bool_and(confirmed_flush_lsn >= $2::pg_lsn), false) FROM pg_replication_slots WHERE slot_name = $1", slot, lsn).Scan(&done); err != nil {
			tb.Fatal(err)
		}
		if done {
			return
		}
		if time.Since(start) > time.Minute {
			tb.Fatalf("slot %s did not reach %s", slot, lsn)
		}
		if slowLogs != nil && !logged && time.Since(start) > 20*time.Second {
			logged = true
			tb.Logf("slot %s slow to reach %s; logs:\n%s", slot, lsn, slowLogs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WritesThroughEveryBouncer logs in to each of dbs through every PgBouncer
// of the lab as the application does (role app, its password from the
// passfile) and writes there (a temporary table, dropped at commit): the
// application works in every database, wherever PgBouncer sends it. It
// fails the test naming each PgBouncer and database that refused.
func WritesThroughEveryBouncer(tb testing.TB, info *lab.Info, dbs ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var failed []string
	for _, b := range info.Bouncers() {
		for _, db := range dbs {
			cfg, err := pgx.ParseConfig(b.Conninfo + " dbname=" + db)
			if err != nil {
				tb.Fatal(err)
			}
			cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
			err = func() error {
				c, err := pgx.ConnectConfig(ctx, cfg)
				if err != nil {
					return err
				}
				defer c.Close(context.WithoutCancel(ctx))
				tx, err := c.Begin(ctx)
				if err != nil {
					return err
				}
				defer tx.Rollback(context.WithoutCancel(ctx))
				if _, err := tx.Exec(ctx, "CREATE TEMP TABLE pgbg_labtest_probe ON COMMIT DROP AS SELECT 1 AS x"); err != nil {
					return err
				}
				return tx.Commit(ctx)
			}()
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s/%s: %v", b.Name, db, err))
			}
		}
	}
	if len(failed) > 0 {
		tb.Fatalf("the application cannot write through every PgBouncer: %s", strings.Join(failed, "; "))
	}
}
