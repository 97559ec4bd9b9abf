package steps

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/cutover"
)

// The cutover's end-to-end harness, usable from tests and benchmarks
// (testing.TB): a lab, and a runner built from the lab's pgbluegreen.yaml
// as main.go builds one.

type cutoverLab struct {
	info   *lab.Info
	runner *Runner
	store  *state.Store
}

// newCutoverLab starts a copy lab with startLab's runner, state file and
// journal.
func newCutoverLab(tb testing.TB) *cutoverLab {
	tb.Helper()
	le, _ := startLab(tb, "copy")
	return &cutoverLab{info: le.Info, runner: le.Runner, store: le.Store}
}

// loadWindow runs the lab's workload at rate through PgBouncer for lead,
// then fn, then tail, and returns the load's figures.
func (l *cutoverLab) loadWindow(tb testing.TB, rate int, lead, tail time.Duration, fn func()) lab.LoadResult {
	tb.Helper()
	return labtest.LoadAround(tb, l.info.Dir, labtest.LoadParams{Rate: rate, Clients: 4, Lead: lead, Tail: tail}, fn)
}

// run runs one step through the runner, confirmed.
func (l *cutoverLab) run(tb testing.TB, id, override string) Outcome {
	tb.Helper()
	out, err := l.runner.Run(context.Background(), id, RunParams{Confirmed: true, Override: override})
	if err != nil {
		tb.Fatalf("run %s: %v\nthe lab's complaints:\n%s", id, err, complaints(l.info.Dir))
	}
	return out
}

// report reads the report a step recorded under key.
func (l *cutoverLab) report(tb testing.TB, key string) *cutover.Report {
	tb.Helper()
	path, ok := l.store.Snapshot().Get(key)
	if !ok {
		tb.Fatalf("value %s not recorded", key)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var rep cutover.Report
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
	pool := l.runner.Blue
	if green {
		pool = l.runner.Green
	}
	labtest.WaitSlotDrained(tb, pool, slot, nil)
}

// verify runs lab verify and fails on anything lost, duplicated or
// different between blue and green.
func (l *cutoverLab) verify(tb testing.TB) lab.VerifyResult {
	tb.Helper()
	v, err := lab.Verify(context.Background(), l.info.Dir)
	if err != nil {
		tb.Fatalf("lab verify: %v", err)
	}
	if !v.OK() || v.LedgerEntries == 0 || v.TablesCompared == 0 || len(v.Databases) != 2 {
		tb.Fatalf("lab verify: %+v", v)
	}
	for _, d := range v.Databases {
		if d.LedgerEntries == 0 || d.Lost != 0 || d.Duplicated != 0 || len(d.MismatchedTables) > 0 {
			tb.Fatalf("lab verify, database %s: %+v", d.Database, d)
		}
		tb.Logf("database %s: %d ledger entries, %d lost, %d duplicated, %d tables equal", d.Database, d.LedgerEntries, d.Lost, d.Duplicated, d.TablesCompared)
	}
	return v
}

// pointDirect connects to blue or green as the application role, not
// through PgBouncer: a cron job's or a second service's session.
func (l *cutoverLab) pointDirect(ctx context.Context, server string) (*pgx.Conn, error) {
	ci := l.info.Blue.Conninfo
	if server == "green" {
		ci = l.info.Green.Conninfo
	}
	conn, err := pgx.Connect(ctx, ci+" user="+lab.AppRole)
	if err == nil {
		conn.Close(ctx)
	}
	return conn, err
}
