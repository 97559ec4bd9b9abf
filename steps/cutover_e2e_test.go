package steps

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// catchUp runs the copy strategy through wait-catch-up under load.
func (l *cutoverLab) catchUp(tb testing.TB) {
	tb.Helper()
	res := l.loadWindow(tb, 200, time.Second, 0, func() {
		if err := l.runner.Through(context.Background(), "wait-catch-up", RunParams{Confirmed: true}); err != nil {
			tb.Fatalf("through wait-catch-up: %v", err)
		}
	})
	if res.Errors != 0 {
		tb.Fatalf("load up to wait-catch-up: %+v", res)
	}
	for _, id := range []string{"analyze-green", "verify-data"} {
		if err := l.runner.Skip(id, skipToCutover); err != nil {
			tb.Fatal(err)
		}
	}
}

// The cutover comes straight after wait-catch-up here, as in the issue's
// benchmark: analyze-green and verify-data are skipped with this reason.
const skipToCutover = "cutover e2e: straight from wait-catch-up (analyze-green and verify-data are not what is measured)"

// TestCutoverLifecycle drives the cutover and the rollback through the
// runner under a live load: a rollback with no cutover is refused; the
// cutover runs, fences blue (a direct write as the application role fails
// while the reverse feed still reaches blue), and is then found done from
// the servers even when the state lost its record; the rollback runs; the
// cutover runs again (the cycle); each time the ledger shows no write lost
// or duplicated, status's traffic object says where writes go, and every
// attempt is kept. The replication password is in no log, journal line or
// report.
func TestCutoverLifecycle(t *testing.T) {
	l := newCutoverLab(t)
	l.catchUp(t)
	ctx := context.Background()
	// Every statement logged, so the password check below proves something.
	for _, pool := range []*pgxpool.Pool{l.runner.Blue, l.runner.Green} {
		for _, s := range []string{"ALTER SYSTEM SET log_statement = 'all'", "ALTER SYSTEM SET log_min_error_statement = 'error'", "SELECT pg_reload_conf()"} {
			if _, err := pool.Exec(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	traffic := func(want string) {
		t.Helper()
		tr := ReadTraffic(ctx, l.runner.Config, l.runner.Blue, l.runner.Green)
		t.Logf("traffic: %+v", tr)
		if tr.Target != want || len(tr.Warnings) > 0 {
			t.Errorf("traffic %q (%s, warnings %v), want %s", tr.Target, tr.How, tr.Warnings, want)
		}
	}
	traffic("blue")
	if _, err := l.runner.Run(ctx, "rollback", RunParams{Confirmed: true, Override: "test"}); !IsRefused(err) || !strings.Contains(err.Error(), "no cutover to roll back") {
		t.Errorf("rollback before any cutover: %v, want a refusal", err)
	}

	cut := func(step string, want string) *pg.Report {
		t.Helper()
		res := l.loadWindow(t, 200, 2*time.Second, 2*time.Second, func() {
			if out := l.run(t, step, ""); out != OutcomeRan {
				t.Fatalf("%s: %s", step, out)
			}
		})
		key := CutoverReportKey
		if step == "rollback" {
			key = RollbackReportKey
		}
		rep := l.report(t, key)
		t.Logf("load during the %s: %+v", step, res)
		t.Logf("%s: paused %.1f ms, probe stall %.1f ms, %d sequences in %.1f ms, final %s, fenced %v", step, rep.PausedMs, rep.Probe.MaxStallMs, rep.Sequences, rep.SeqSyncMs, rep.FinalTarget, rep.FenceRoles)
		if res.Errors != 0 {
			t.Errorf("clients saw %d errors (%s)", res.Errors, res.LastError)
		}
		if rep.Outcome != pg.OutcomeDone || rep.Aborted || !strings.Contains(rep.FinalVersion, want) || len(rep.Prechecks) < 5 || len(rep.SubSteps) < 10 {
			t.Errorf("report: %+v", rep)
		}
		return rep
	}

	rep := cut("cutover", "PostgreSQL 17")
	l.waitDrained(t, true, reverseReplication)
	l.verify(t)
	traffic("green")

	t.Run("blue is fenced and still fed", func(t *testing.T) {
		_, err := l.pointDirect(ctx, "blue")
		if err == nil || !strings.Contains(err.Error(), "not permitted to log in") {
			t.Errorf("a direct login to blue as the application role after the cutover: %v, want it refused", err)
		}
		// The reverse feed still applies green's writes to blue.
		if _, err := l.runner.Green.Exec(ctx, "INSERT INTO public.accounts (owner) VALUES ('fence-test')"); err != nil {
			t.Fatal(err)
		}
		l.waitDrained(t, true, reverseReplication)
		var n int
		l.runner.Blue.QueryRow(ctx, "SELECT count(*) FROM public.accounts WHERE owner = 'fence-test'").Scan(&n)
		if n != 1 {
			t.Errorf("blue has %d rows written on green after the fence: the reverse feed does not reach a fenced blue", n)
		}
		if _, err := l.runner.Green.Exec(ctx, "DELETE FROM public.accounts WHERE owner = 'fence-test'"); err != nil {
			t.Fatal(err)
		}
		l.waitDrained(t, true, reverseReplication)
	})

	t.Run("a second cutover is refused, from the servers", func(t *testing.T) {
		if out, err := l.runner.Run(ctx, "cutover", RunParams{Confirmed: true}); err != nil || out != OutcomeAlreadyDone {
			t.Errorf("second cutover: %s %v", out, err)
		}
		// Even when the state lost both the step's status and its record,
		// the check reads the servers and runs nothing.
		l.store.Update(func(s *state.State) error {
			s.EditStep("cutover").Status = state.Pending
			delete(s.Values, CutoverDoneAtKey)
			return nil
		})
		if out, err := l.runner.Run(ctx, "cutover", RunParams{Confirmed: true}); err != nil || out != OutcomeFoundDone {
			t.Errorf("cutover with its record lost: %s %v", out, err)
		}
		l.store.Update(func(s *state.State) error {
			s.Set(CutoverDoneAtKey, rep.FinishedAt.Format(time.RFC3339Nano), "test")
			return nil
		})
	})

	cut("rollback", "PostgreSQL 15")
	l.waitDrained(t, false, "pgbg_all")
	l.verify(t)
	traffic("blue")
	if out, err := l.runner.Run(ctx, "rollback", RunParams{Confirmed: true}); err != nil || out != OutcomeAlreadyDone {
		t.Errorf("second rollback: %s %v", out, err)
	}
	if got := l.store.Snapshot().Step("cutover").Status; got != state.Pending {
		t.Errorf("after the rollback the cutover is %s, want pending (the cycle)", got)
	}

	cut("cutover", "PostgreSQL 17")
	l.waitDrained(t, true, reverseReplication)
	v := l.verify(t)
	t.Logf("after cutover, rollback, cutover: %+v", v)
	traffic("green")
	var outcomes []string
	for _, a := range l.store.Snapshot().Attempts {
		outcomes = append(outcomes, a.Step+" "+a.Outcome)
	}
	if got := strings.Join(outcomes, ", "); got != "cutover done, rollback done, cutover done" {
		t.Errorf("attempts kept: %s", got)
	}

	// The reverse subscription carried the replication password: it is in
	// no server log, no journal line and no report.
	pw, err := l.runner.Config.ReplicationPassword()
	if err != nil || pw == "" {
		t.Fatalf("the lab's password: %v", err)
	}
	files := []string{filepath.Join(l.info.Dir, "logs", "blue.log"), filepath.Join(l.info.Dir, "logs", "green.log"),
		filepath.Join(l.info.Dir, "pgbluegreen.state.journal.jsonl")}
	for _, a := range l.store.Snapshot().Attempts {
		files = append(files, a.Report, strings.TrimSuffix(a.Report, ".json")+".md")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), pw) {
			t.Errorf("%s holds the replication password", f)
		}
	}
	if b, _ := os.ReadFile(files[0]); !strings.Contains(string(b), "statement: ") {
		t.Error("blue's log has no statement: the password check proves nothing")
	}
}

// benchResult is the JSON line `make bench` ends with.
type benchResult struct {
	Method             string  `json:"method"`
	MaxStallMs         float64 `json:"max_stall_ms"`
	P99Ms              float64 `json:"p99_ms"`
	Errors             int64   `json:"errors"`
	Lost               int     `json:"lost"`
	Duplicated         int     `json:"duplicated"`
	CutoverMs          float64 `json:"cutover_ms"`
	Sequences          int     `json:"sequences"`
	SequenceSyncMs     float64 `json:"sequence_sync_ms"`
	RollbackMaxStallMs float64 `json:"rollback_max_stall_ms"`
}

// BenchmarkCutoverLab is the scenario, once: the lab, its load at
// 200 writes/s through PgBouncer, the copy strategy through wait-catch-up,
// the cutover (pgbouncer), lab verify, the rollback, lab verify again. It
// prints the figures and ends with one JSON line. Targets: longest client
// stall under 500 ms (aim 250), 0 errors, 0 lost, 0 duplicated.
func BenchmarkCutoverLab(b *testing.B) {
	// One run is the measurement, whatever b.N (it lasts far beyond the
	// default -benchtime, so the framework asks for one).
	l := newCutoverLab(b)
	l.catchUp(b)
	var r benchResult
	res := l.loadWindow(b, 200, 3*time.Second, 3*time.Second, func() { l.run(b, "cutover", "") })
	rep := l.report(b, CutoverReportKey)
	l.waitDrained(b, true, reverseReplication)
	v1 := l.verify(b)
	back := l.loadWindow(b, 200, 3*time.Second, 3*time.Second, func() { l.run(b, "rollback", "") })
	rb := l.report(b, RollbackReportKey)
	l.waitDrained(b, false, "pgbg_all")
	v2 := l.verify(b)

	r = benchResult{
		Method: rep.Method, MaxStallMs: res.MaxStallMs, P99Ms: res.P99Ms, Errors: res.Errors + back.Errors,
		Lost: max(v1.Lost, v2.Lost), Duplicated: max(v1.Duplicated, v2.Duplicated),
		CutoverMs: rep.TotalMs, Sequences: rep.Sequences, SequenceSyncMs: rep.SeqSyncMs,
		RollbackMaxStallMs: back.MaxStallMs,
	}
	fmt.Printf("cutover: %d commits at %.0f/s through PgBouncer, p50 %.1f ms, p99 %.1f ms, longest client stall %.1f ms, %d errors\n",
		res.Committed, res.Rate, res.P50Ms, res.P99Ms, res.MaxStallMs, res.Errors)
	fmt.Printf("cutover: writes paused %.1f ms, probe stall %.1f ms, lag at pause %d bytes, %d sequences synced in %.1f ms, total %.1f ms\n",
		rep.PausedMs, rep.Probe.MaxStallMs, rep.LagAtPause, rep.Sequences, rep.SeqSyncMs, rep.TotalMs)
	for _, s := range rep.SubSteps {
		fmt.Printf("  %-36s %8.1f ms\n", s.Name, float64(s.Duration.Microseconds())/1000)
	}
	fmt.Printf("verify after cutover: %d ledger entries, %d lost, %d duplicated, %d tables compared\n", v1.LedgerEntries, v1.Lost, v1.Duplicated, v1.TablesCompared)
	fmt.Printf("rollback: longest client stall %.1f ms, %d errors, writes paused %.1f ms, total %.1f ms\n", back.MaxStallMs, back.Errors, rb.PausedMs, rb.TotalMs)
	for _, s := range rb.SubSteps {
		fmt.Printf("  %-36s %8.1f ms\n", s.Name, float64(s.Duration.Microseconds())/1000)
	}
	fmt.Printf("verify after rollback: %d ledger entries, %d lost, %d duplicated\n", v2.LedgerEntries, v2.Lost, v2.Duplicated)
	line, _ := json.Marshal(r)
	fmt.Fprintln(os.Stdout, string(line))
	b.ReportMetric(res.MaxStallMs, "max_stall_ms")
	b.ReportMetric(rep.PausedMs, "paused_ms")
}
