package steps

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
	"github.com/pgbluegreen/pgbluegreen/steps/cutover"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
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
	for _, id := range []string{"refresh-matviews", "copy-large-objects", "analyze-green", "verify-data", "copy-unlogged"} {
		if err := l.runner.Skip(id, skipToCutover); err != nil {
			tb.Fatal(err)
		}
	}
}

// The cutover comes straight after wait-catch-up here, as in the issue's
// benchmark: the steps between are skipped with this reason.
const skipToCutover = "cutover e2e: straight from wait-catch-up (what runs between is not what is measured)"

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
	// Not a test of the lag gate: a busy 2-core machine applies slowly.
	l.runner.Config.Cutover.MaxLagBytes = 16 << 20
	// Blue's commits held for green's apply before the pause (off by
	// default): released after, checked below.
	l.runner.Config.Cutover.HoldCommits = &config.Duration{Duration: 3 * time.Second}
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
		tr := monitor.ReadTraffic(ctx, l.runner.Config, l.runner.Blue, l.runner.Green)
		t.Logf("traffic: %+v", tr)
		if tr.Target != want || len(tr.Warnings) > 0 {
			t.Errorf("traffic %q (%s, warnings %v), want %s", tr.Target, tr.How, tr.Warnings, want)
		}
	}
	traffic("blue")
	// The screen's subscription lines: every database's.
	mon := monitor.NewMonitor(l.runner.Blue, l.runner.Green, l.runner.Config)
	defer mon.Close()
	if subs, err := mon.Subscriptions(ctx); err != nil || len(subs) != 2 || subs[0].Name != "pgbg_all" || subs[1].Name != "pgbg_all_billing" {
		t.Errorf("the monitor's subscriptions: %+v, %v; want pgbg_all in app and pgbg_all_billing in billing", subs, err)
	}
	if _, err := l.runner.Run(ctx, "rollback", RunParams{Confirmed: true, Override: "test"}); !IsRefused(err) || !strings.Contains(err.Error(), "no cutover to roll back") {
		t.Errorf("rollback before any cutover: %v, want a refusal", err)
	}

	cut := func(step string, want string) *cutover.Report {
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
		for _, d := range rep.Databases {
			t.Logf("  database %s: drained in %.1f ms, lag at pause %d B, %d sequences", d.Name, d.DrainMs, d.LagAtPause, d.Sequences)
		}
		if res.Errors != 0 {
			t.Errorf("clients saw %d errors (%s)", res.Errors, res.LastError)
		}
		if len(rep.Databases) != 2 {
			t.Errorf("the %s moved %d databases, want app and billing", step, len(rep.Databases))
		}
		// The application works in every database through every PgBouncer.
		labtest.WritesThroughEveryBouncer(t, l.info, lab.AppDB, lab.BillingDB)
		if rep.Outcome != cutover.OutcomeDone || rep.Aborted || !strings.Contains(rep.FinalVersion, want) || len(rep.Prechecks) < 5 || len(rep.SubSteps) < 10 {
			t.Errorf("report: %+v", rep)
		}
		// The source's commits were held before the pause and released.
		held := false
		for _, s := range rep.SubSteps {
			held = held || strings.HasPrefix(s.Name, "hold ")
		}
		for _, pool := range []*pgxpool.Pool{l.runner.Blue, l.runner.Green} {
			if names := queryOne[string](t, pool, "SHOW synchronous_standby_names"); !held || names != "" {
				t.Errorf("after the %s: held %t, synchronous_standby_names %q: want held, then released", step, held, names)
			}
		}
		return rep
	}

	t.Run("a rehearsal changes nothing", func(t *testing.T) {
		before := l.store.Snapshot()
		out, err := l.runner.Run(ctx, "cutover", RunParams{Check: true})
		if err != nil || out != OutcomeChecked {
			t.Fatalf("run cutover --check: %s %v", out, err)
		}
		after := l.store.Snapshot()
		if after.Step("cutover").Status != before.Step("cutover").Status || len(after.Attempts) != len(before.Attempts) {
			t.Errorf("the rehearsal changed the state: %+v -> %+v", before.Step("cutover"), after.Step("cutover"))
		}
		traffic("blue")
	})

	t.Run("an impossible drain timeout aborts: failed, traffic on blue, and a later cutover runs", func(t *testing.T) {
		saved := l.runner.Config.Cutover.DrainTimeout
		l.runner.Config.Cutover.DrainTimeout.Duration = time.Nanosecond
		defer func() { l.runner.Config.Cutover.DrainTimeout = saved }()
		res := l.loadWindow(t, 200, time.Second, time.Second, func() {
			if _, err := l.runner.Run(ctx, "cutover", RunParams{Confirmed: true}); err == nil || IsRefused(err) || !strings.Contains(err.Error(), "drain") {
				t.Errorf("cutover with a 1ns drain timeout: %v, want an abort", err)
			}
		})
		if res.Errors != 0 {
			t.Errorf("clients saw %d errors during the abort (%s)", res.Errors, res.LastError)
		}
		st := l.store.Snapshot()
		if got := st.Step("cutover").Status; got != state.Failed {
			t.Errorf("the aborted cutover is %s, want failed", got)
		}
		if a, _ := st.LastAttempt("cutover"); a.Outcome != state.AttemptAborted {
			t.Errorf("the attempt: %+v, want aborted", a)
		}
		if _, ok := st.Get(CutoverDoneAtKey); ok {
			t.Error("an aborted cutover recorded cutover_done_at")
		}
		traffic("blue")
		if _, err := l.runner.Run(ctx, "switch-traffic", RunParams{Confirmed: true, Override: "test"}); err == nil {
			t.Error("switch-traffic ran after an aborted cutover")
		}
	})

	rep := cut("cutover", "PostgreSQL 17")
	l.waitDrained(t, true, reverseReplication)
	l.verify(t)
	traffic("green")

	t.Run("blue is fenced and still fed", func(t *testing.T) {
		_, err := l.pointDirect(ctx, "blue")
		if err == nil || !strings.Contains(err.Error(), "permission denied for database") {
			t.Errorf("a direct login to blue as the application role after the cutover: %v, want it refused (CONNECT closed)", err)
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
	if got := strings.Join(outcomes, ", "); got != "cutover aborted, cutover done, rollback done, cutover done" {
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

// benchResult is one JSON line of the cutover benchmark; `make bench`
// repeats the last one at its end.
type benchResult struct {
	Method string `json:"method"`
	Rate   int    `json:"rate"`
	// PauseMs is the cutover's pause as PgBouncer logged it (from its PAUSE
	// to its RESUME line); FloorMs a bare PAUSE/RESUME pair measured the
	// same way in the same run, under the same load; Ratio their quotient.
	PauseMs         float64 `json:"pause_ms"`
	FloorMs         float64 `json:"floor_ms"`
	Ratio           float64 `json:"ratio"`
	RollbackPauseMs float64 `json:"rollback_pause_ms"`
	// Cycles is how many cutovers and rollbacks alternated
	// (PGBG_BENCH_CYCLES); the pauses are their p50 (PauseMs,
	// RollbackPauseMs), p95 and largest.
	Cycles        int     `json:"cycles"`
	PauseP95Ms    float64 `json:"pause_p95_ms"`
	PauseMaxMs    float64 `json:"pause_max_ms"`
	RollbackP95Ms float64 `json:"rollback_pause_p95_ms"`
	RollbackMaxMs float64 `json:"rollback_pause_max_ms"`
	// ProbeGapMs is the median over the cutovers of the probe client's
	// longest gap between two writes in each.
	ProbeGapMs float64 `json:"probe_gap_ms"`
	LagAtPause int64   `json:"lag_at_pause_bytes"`
	MaxStallMs float64 `json:"max_stall_ms"`
	P99Ms      float64 `json:"p99_ms"`
	Errors     int64   `json:"errors"`
	Lost       int     `json:"lost"`
	Duplicated int     `json:"duplicated"`
	CutoverMs  float64 `json:"cutover_ms"`
	Sequences  int     `json:"sequences"`
}

var bouncerLogLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \w+) \[\d+\] LOG (PAUSE|RESUME) '([^']*)' command issued`)

// bouncerPauses reads PgBouncer's log from byte offset from and returns the
// time from each PAUSE of db to the next RESUME, and the new offset.
func bouncerPauses(tb testing.TB, path, db string, from int64) ([]time.Duration, int64) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var out []time.Duration
	var paused time.Time
	for _, line := range strings.Split(string(b[from:]), "\n") {
		m := bouncerLogLine.FindStringSubmatch(line)
		if m == nil || m[3] != db {
			continue
		}
		at, err := time.Parse("2006-01-02 15:04:05.000 MST", m[1])
		if err != nil {
			tb.Fatal(err)
		}
		switch {
		case m[2] == "PAUSE":
			paused = at
		case !paused.IsZero():
			out = append(out, at.Sub(paused))
			paused = time.Time{}
		}
	}
	return out, int64(len(b))
}

// BenchmarkCutoverLab measures, once, at 200 and then 1,000 writes/s
// (PGBG_BENCH_RATES) through PgBouncer on a caught-up lab: three bare
// PAUSE/RESUME pairs (the floor), then PGBG_BENCH_CYCLES (default 1)
// cutovers and rollbacks alternating, then lab verify; every pause as
// PgBouncer's log times it. It prints the figures and one JSON line per
// rate (the pauses' p50, p95 and largest, the floor, the ratio of the
// median to it; 0 lost, 0 duplicated expected).
func BenchmarkCutoverLab(b *testing.B) {
	// One run is the measurement, whatever b.N (it lasts far beyond the
	// default -benchtime, so the framework asks for one).
	l := newCutoverLab(b)
	// At 1,000 writes/s blue (15) applies the reverse feed up to a second
	// behind, about the default lag gate (1 MB): the gate then refuses the
	// rollback, rightly, but this measures pauses.
	l.runner.Config.Cutover.MaxLagBytes = 8 << 20
	if v := os.Getenv("PGBG_BENCH_HOLD"); v != "" {
		// cutover.hold_commits for this run (0s: no hold), to compare.
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("PGBG_BENCH_HOLD=%q: %v", v, err)
		}
		l.runner.Config.Cutover.HoldCommits = &config.Duration{Duration: d}
	}
	l.catchUp(b)
	ctx := context.Background()
	logPath := filepath.Join(l.info.Dir, "logs", "pgbouncer.log")
	_, offset := bouncerPauses(b, logPath, lab.AppDB, 0)
	e := l.runner.Env("cutover")
	p, err := e.cutoverParams(ctx, false)
	if err != nil {
		b.Fatal(err)
	}
	if p.ReplicationPassword, err = l.runner.Config.ReplicationPassword(); err != nil {
		b.Fatal(err)
	}
	cycles := 1
	if n, err := strconv.Atoi(os.Getenv("PGBG_BENCH_CYCLES")); err == nil && n > 0 {
		cycles = n
	}
	rates := []int{200, 1000}
	if v := os.Getenv("PGBG_BENCH_RATES"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n <= 0 {
				b.Fatalf("PGBG_BENCH_RATES=%q: want writes/s, comma-separated", v)
			}
			rates = append(rates, n)
		}
	}
	for _, rate := range rates {
		r := benchResult{Rate: rate, Cycles: cycles}
		var cuts, backs, gaps []float64
		var rep *cutover.Report
		res := l.loadWindow(b, rate, 3*time.Second, 2*time.Second, func() {
			for range 3 {
				if _, err := cutover.Rehearse(ctx, p, false, true); err != nil {
					b.Fatalf("bare PAUSE/RESUME: %v\nthe PgBouncers' and servers' complaints:\n%s", err, complaints(l.info.Dir))
				}
				time.Sleep(200 * time.Millisecond)
			}
			var floors []time.Duration
			floors, offset = bouncerPauses(b, logPath, lab.AppDB, offset)
			slices.Sort(floors)
			r.FloorMs = float64(floors[len(floors)/2].Microseconds()) / 1000
			// Cutovers and rollbacks alternating, each timed by PgBouncer's log.
			for range cycles {
				l.run(b, "cutover", "")
				var pauses []time.Duration
				pauses, offset = bouncerPauses(b, logPath, lab.AppDB, offset)
				cuts = append(cuts, float64(pauses[len(pauses)-1].Microseconds())/1000)
				rep = l.report(b, CutoverReportKey)
				gaps = append(gaps, rep.Probe.MaxStallMs)
				l.waitDrained(b, true, reverseReplication)
				l.run(b, "rollback", "")
				pauses, offset = bouncerPauses(b, logPath, lab.AppDB, offset)
				backs = append(backs, float64(pauses[len(pauses)-1].Microseconds())/1000)
				l.waitDrained(b, false, "pgbg_all")
			}
		})
		l.waitDrained(b, false, "pgbg_all") // the load's last writes, on blue
		v := l.verify(b)
		r.Method = rep.Method
		r.PauseMs, r.PauseP95Ms, r.PauseMaxMs = pct(cuts, 50), pct(cuts, 95), pct(cuts, 100)
		r.RollbackPauseMs, r.RollbackP95Ms, r.RollbackMaxMs = pct(backs, 50), pct(backs, 95), pct(backs, 100)
		r.ProbeGapMs = pct(gaps, 50)
		r.Ratio = r.PauseMs / max(r.FloorMs, 0.1)
		r.LagAtPause, r.MaxStallMs, r.P99Ms, r.Errors = rep.LagAtPause, res.MaxStallMs, res.P99Ms, res.Errors
		r.Lost, r.Duplicated = v.Lost, v.Duplicated
		r.CutoverMs, r.Sequences = rep.TotalMs, rep.Sequences
		fmt.Printf("%d writes/s: %d commits at %.0f/s through PgBouncer, p50 %.1f ms, p99 %.1f ms, longest client stall %.1f ms, %d errors\n",
			rate, res.Committed, res.Rate, res.P50Ms, res.P99Ms, res.MaxStallMs, res.Errors)
		fmt.Printf("  %d cutovers: paused p50 %.1f / p95 %.1f / max %.1f ms by PgBouncer's log; floor (a bare PAUSE/RESUME, median of 3) %.1f ms, ratio of the median %.2f; the probe's longest gap p50 %.1f ms\n",
			cycles, r.PauseMs, r.PauseP95Ms, r.PauseMaxMs, r.FloorMs, r.Ratio, r.ProbeGapMs)
		fmt.Printf("  %d rollbacks: paused p50 %.1f / p95 %.1f / max %.1f ms\n", cycles, r.RollbackPauseMs, r.RollbackP95Ms, r.RollbackMaxMs)
		fmt.Printf("  the last cutover: %.1f ms by its own clock of a %.0f ms budget; lag at pause %d bytes\n", rep.PausedMs, rep.PauseBudgetMs, rep.LagAtPause)
		for _, s := range rep.SubSteps {
			fmt.Printf("    %-40s %8.1f ms  %s\n", s.Name, float64(s.Duration.Microseconds())/1000, s.Detail)
		}
		for _, x := range rep.Bouncers {
			fmt.Printf("    PgBouncer %s (%s): pause %.1f ms, ini %.1f ms, resume %.1f ms\n", x.Name, x.Method, x.PauseMs, x.RepointMs, x.ResumeMs)
		}
		fmt.Printf("  verify: %d ledger entries, %d lost, %d duplicated\n", v.LedgerEntries, r.Lost, r.Duplicated)
		last, _ := json.Marshal(r)
		fmt.Fprintln(os.Stdout, string(last))
		b.ReportMetric(r.Ratio, fmt.Sprintf("pause/floor@%d", rate))
	}
}

// pct is the q-th percentile of xs (nearest rank; 100: the largest).
func pct(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// complaints are the lines of the lab's logs that say something failed,
// the first 15 and the last 15, for a lab run that stops on an error.
func complaints(dir string) string {
	var out []string
	for _, f := range []string{"pgbouncer.log", "pgbouncer-ssh.log", "blue.log", "green.log"} {
		b, _ := os.ReadFile(filepath.Join(dir, "logs", f))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "FATAL") || strings.Contains(l, "ERROR") || strings.Contains(l, "WARNING") || strings.Contains(l, "failed") {
				out = append(out, f+": "+l)
			}
		}
	}
	if len(out) > 30 {
		out = append(append(out[:15:15], "..."), out[len(out)-15:]...)
	}
	return strings.Join(out, "\n")
}

// TestCloneCutoverCycle: the clone strategy on the lab's two databases,
// under a load on both: through the catch-up, then cutover, rollback,
// cutover, each going through with no client error; after each the
// application writes in both databases through every PgBouncer, and at
// the end each database's ledger has nothing lost or duplicated.
func TestCloneCutoverCycle(t *testing.T) {
	le, _ := startLab(t, "clone")
	l := &cutoverLab{info: le.Info, runner: le.Runner, store: le.Store}
	ctx := context.Background()
	l.runner.Config.Cutover.MaxLagBytes = 16 << 20
	res := l.loadWindow(t, 200, time.Second, 0, func() {
		if err := l.runner.Through(ctx, "wait-catch-up", RunParams{Confirmed: true}); err != nil {
			t.Fatalf("through wait-catch-up: %v", err)
		}
	})
	if res.Errors != 0 {
		t.Fatalf("load up to wait-catch-up: %+v", res)
	}
	for _, id := range []string{"refresh-matviews", "copy-large-objects", "analyze-green", "verify-data", "copy-unlogged"} {
		if err := l.runner.Skip(id, skipToCutover); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []string{"cutover", "rollback", "cutover"} {
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
		t.Logf("%s: paused %.1f ms, probe stall %.1f ms, load %d commits, %d errors", step, rep.PausedMs, rep.Probe.MaxStallMs, res.Committed, res.Errors)
		for _, d := range rep.Databases {
			t.Logf("  database %s: drained in %.1f ms, lag at pause %d B, %d sequences", d.Name, d.DrainMs, d.LagAtPause, d.Sequences)
		}
		if res.Errors != 0 || rep.Outcome != cutover.OutcomeDone || len(rep.Databases) != 2 {
			t.Fatalf("%s: %d client errors, outcome %s, %d databases", step, res.Errors, rep.Outcome, len(rep.Databases))
		}
		labtest.WritesThroughEveryBouncer(t, l.info, lab.AppDB, lab.BillingDB)
	}
	l.waitDrained(t, true, reverseReplication)
	l.waitDrained(t, true, l.runner.Config.ReverseName(lab.BillingDB))
	l.verify(t)
}
