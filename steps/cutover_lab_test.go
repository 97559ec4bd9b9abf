package steps

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// The cutover's end-to-end harness, usable from tests and benchmarks
// (testing.TB): a lab, and a runner built from the lab's pgbluegreen.yaml
// as main.go builds one.

type cutoverLab struct {
	info   *lab.Info
	runner *Runner
	store  *state.Store
}

// requireLabTB is requireLab for tests and benchmarks alike.
func requireLabTB(tb testing.TB) {
	tb.Helper()
	if t, ok := tb.(*testing.T); ok {
		requireLab(t)
		return
	}
	builds, _ := lab.FindBuilds(lab.DefaultCacheDir())
	if len(builds) < 2 || builds[len(builds)-1].Major < 17 {
		if os.Getenv("CI") != "" {
			tb.Fatal("the cutover benchmark needs PostgreSQL 15 and 17: run `make deps`")
		}
		tb.Skip("the cutover benchmark needs PostgreSQL 15 and 17: run `make deps`")
	}
}

func newCutoverLab(tb testing.TB) *cutoverLab {
	tb.Helper()
	requireLabTB(tb)
	dir, err := os.MkdirTemp("/tmp", "pgbg-cutover-e2e-")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := lab.Down(context.Background(), dir, true, nil); err != nil {
			tb.Errorf("lab down: %v", err)
		}
		os.RemoveAll(dir)
	})
	info, err := lab.Up(context.Background(), lab.UpParams{Dir: dir, Strategy: "copy"})
	if err != nil {
		tb.Fatalf("lab up: %v", err)
	}
	cfg, err := LoadConfig(info.Config)
	if err != nil {
		tb.Fatal(err)
	}
	store, err := state.Open(filepath.Join(dir, "pgbluegreen.state.json"), state.OpenParams{})
	if err != nil {
		tb.Fatal(err)
	}
	j, err := state.OpenJournal(filepath.Join(dir, "pgbluegreen.state.journal.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	blue, err := pg.NewPool(pg.PoolParams{Conninfo: cfg.Blue.Conninfo})
	if err != nil {
		tb.Fatal(err)
	}
	green, err := pg.NewPool(pg.PoolParams{Conninfo: cfg.Green.Conninfo})
	if err != nil {
		tb.Fatal(err)
	}
	r := NewRunner(cfg, store, j)
	r.Blue, r.Green = blue, green
	tb.Cleanup(func() {
		blue.Close()
		green.Close()
		j.Close()
		store.Close()
	})
	return &cutoverLab{info: info, runner: r, store: store}
}

// loadWindow runs the lab's workload at rate through PgBouncer for lead,
// then fn, then tail, and returns the load's figures.
func (l *cutoverLab) loadWindow(tb testing.TB, rate int, lead, tail time.Duration, fn func()) lab.LoadResult {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type out struct {
		res lab.LoadResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := lab.Load(ctx, lab.LoadParams{Dir: l.info.Dir, Rate: rate, Duration: time.Hour, Clients: 4})
		done <- out{res, err}
	}()
	time.Sleep(lead)
	fn()
	time.Sleep(tail)
	cancel()
	o := <-done
	if o.err != nil {
		tb.Fatalf("load: %v", o.err)
	}
	return o.res
}

// run runs one step through the runner, confirmed.
func (l *cutoverLab) run(tb testing.TB, id, override string) Outcome {
	tb.Helper()
	out, err := l.runner.Run(context.Background(), id, RunParams{Confirmed: true, Override: override})
	if err != nil {
		tb.Fatalf("run %s: %v", id, err)
	}
	return out
}

// report reads the report a step recorded under key.
func (l *cutoverLab) report(tb testing.TB, key string) *pg.Report {
	tb.Helper()
	path, ok := l.store.Snapshot().Get(key)
	if !ok {
		tb.Fatalf("value %s not recorded", key)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var rep pg.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	if _, err := os.Stat(path[:len(path)-len(".json")] + ".md"); err != nil {
		tb.Errorf("no Markdown report next to %s", path)
	}
	return &rep
}

// waitDrained waits until a slot on the server has confirmed everything
// written before the call (the feed in use after a switch).
func (l *cutoverLab) waitDrained(tb testing.TB, green bool, slot string) {
	tb.Helper()
	// A commit the stopped load sent just before it was cancelled may still
	// be landing through PgBouncer (its outcome unknown to the client, so
	// not in the ledger): let it land before taking the target.
	time.Sleep(300 * time.Millisecond)
	pool := l.runner.Blue
	if green {
		pool = l.runner.Green
	}
	ctx := context.Background()
	var lsn string
	if err := pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		var done bool
		if err := pool.QueryRow(ctx, "SELECT coalesce(bool_and(confirmed_flush_lsn >= $2::pg_lsn), false) FROM pg_replication_slots WHERE slot_name = $1", slot, lsn).Scan(&done); err != nil {
			tb.Fatal(err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("slot %s did not reach %s", slot, lsn)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verify runs lab verify and fails on anything lost, duplicated or
// different between blue and green.
func (l *cutoverLab) verify(tb testing.TB) lab.VerifyResult {
	tb.Helper()
	v, err := lab.Verify(context.Background(), l.info.Dir)
	if err != nil {
		tb.Fatalf("lab verify: %v", err)
	}
	if !v.OK() || v.LedgerEntries == 0 || v.TablesCompared == 0 {
		tb.Fatalf("lab verify: %+v", v)
	}
	return v
}
