package steps

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// fakeRunner builds a runner over synthetic steps whose Run and Check are
// scripted by the test, on a real state file.
type fakeWorld struct {
	ran   []string
	done  map[string]bool // what the checks find
	fail  map[string]error
	block chan struct{} // when set, Run of "c" waits on it or the context
}

func newFakeRunner(t *testing.T) (*Runner, *fakeWorld) {
	t.Helper()
	w := &fakeWorld{done: map[string]bool{}, fail: map[string]error{}}
	mk := func(id string) *Step {
		return &Step{ID: id, Title: id, Phase: PhasePrepare, Target: Blue,
			Check: func(ctx context.Context, e *Env) (CheckResult, error) {
				return CheckResult{Done: w.done[id], Detail: id + " checked"}, nil
			},
			Run: func(ctx context.Context, e *Env) error {
				if id == "c" && w.block != nil {
					close(w.block)
					<-ctx.Done()
					return ctx.Err()
				}
				w.ran = append(w.ran, id)
				if err := w.fail[id]; err != nil {
					return err
				}
				w.done[id] = true
				return nil
			}}
	}
	a, b, c, d := mk("a"), mk("b"), mk("c"), mk("d")
	b.Records = []string{"b_value"}
	b.Run = func(ctx context.Context, e *Env) error {
		w.ran = append(w.ran, "b")
		w.done["b"] = true
		return e.Record("b_value", "0/16B3748")
	}
	c.Needs = []string{"b_value"}
	d.Destructive = true
	opt := &Step{ID: "opt", Title: "opt", Optional: true, Run: func(context.Context, *Env) error { w.ran = append(w.ran, "opt"); return nil }}
	store, err := state.Open(filepath.Join(t.TempDir(), "state.json"), state.OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cfg := &config.Config{Strategy: "copy"}
	return &Runner{Config: cfg, Steps: []*Step{a, b, opt, c, d}, Store: store}, w
}

func statusOf(r *Runner, id string) state.Status { return r.Store.Snapshot().Step(id).Status }

func wantRefused(t *testing.T, err error, contains string) {
	t.Helper()
	if !IsRefused(err) {
		t.Fatalf("want a refusal containing %q, got %v", contains, err)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("refusal %q does not say %q", err, contains)
	}
}

func TestRunnerRefusesOutOfOrder(t *testing.T) {
	r, w := newFakeRunner(t)
	_, err := r.Run(context.Background(), "b", RunParams{})
	wantRefused(t, err, "earlier step a is pending")
	if len(w.ran) != 0 || statusOf(r, "b") != state.Pending {
		t.Fatalf("refused step ran or changed state: ran %v, status %s", w.ran, statusOf(r, "b"))
	}
}

func TestRunnerRefusesMissingValueAndRecordsValues(t *testing.T) {
	r, _ := newFakeRunner(t)
	ctx := context.Background()
	if _, err := r.Run(ctx, "a", RunParams{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Skip("b", "done by hand in psql"); err != nil {
		t.Fatal(err)
	}
	_, err := r.Run(ctx, "c", RunParams{})
	wantRefused(t, err, "needs value b_value")

	// With b run for real, its recorded value unlocks c.
	r2, w2 := newFakeRunner(t)
	if err := r2.Through(ctx, "c", RunParams{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(w2.ran, ","); got != "a,b,c" {
		t.Fatalf("through c ran %s, want a,b,c (optional step passed over)", got)
	}
	v, ok := r2.Store.Snapshot().Values["b_value"]
	if !ok || v.Value != "0/16B3748" || v.RecordedBy != "b" {
		t.Fatalf("value not recorded with its step: %+v", v)
	}
}

func TestRunnerOverrideIsJournaled(t *testing.T) {
	r, w := newFakeRunner(t)
	jpath := filepath.Join(t.TempDir(), "journal.jsonl")
	j, err := state.OpenJournal(jpath)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	r.Journal = j
	if _, err := r.Run(context.Background(), "c", RunParams{Override: "b was done by the DBA"}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(w.ran, ",") != "c" {
		t.Fatalf("ran %v", w.ran)
	}
	entries, _, err := state.ReadJournal(jpath, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Kind == "operator" && strings.Contains(e.Text, "b was done by the DBA") {
			found = true
		}
	}
	if !found {
		t.Fatalf("override reason not journaled: %+v", entries)
	}
}

func TestRunnerDestructiveNeedsConfirmation(t *testing.T) {
	r, w := newFakeRunner(t)
	ctx := context.Background()
	if err := r.Through(ctx, "c", RunParams{}); err != nil {
		t.Fatal(err)
	}
	_, err := r.Run(ctx, "d", RunParams{})
	wantRefused(t, err, "destructive")
	if _, err := r.Run(ctx, "d", RunParams{Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	if w.ran[len(w.ran)-1] != "d" || statusOf(r, "d") != state.Done {
		t.Fatalf("confirmed destructive step did not run: %v %s", w.ran, statusOf(r, "d"))
	}
}

func TestRunnerCheckFindsWorkDone(t *testing.T) {
	r, w := newFakeRunner(t)
	w.done["a"] = true
	out, err := r.Run(context.Background(), "a", RunParams{})
	if err != nil || out != OutcomeFoundDone {
		t.Fatalf("got %s, %v; want found done", out, err)
	}
	if len(w.ran) != 0 || statusOf(r, "a") != state.Done {
		t.Fatalf("done work was redone (%v) or not recorded (%s)", w.ran, statusOf(r, "a"))
	}
	out, err = r.Run(context.Background(), "a", RunParams{})
	if err != nil || out != OutcomeAlreadyDone || len(w.ran) != 0 {
		t.Fatalf("second run: %s, %v, ran %v", out, err, w.ran)
	}
}

func TestRunnerFailureRecorded(t *testing.T) {
	r, w := newFakeRunner(t)
	w.fail["a"] = errors.New("connect blue: password=hunter2 rejected")
	_, err := r.Run(context.Background(), "a", RunParams{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("want a redacted error, got %v", err)
	}
	rec := r.Store.Snapshot().Step("a")
	if rec.Status != state.Failed || rec.Attempts != 1 || strings.Contains(rec.LastError, "hunter2") || rec.LastError == "" {
		t.Fatalf("failure not recorded safely: %+v", rec)
	}
	_, err = r.Run(context.Background(), "b", RunParams{})
	wantRefused(t, err, "earlier step a is failed")
}

func TestRunnerCancelMarksInterruptedAndCheckDecides(t *testing.T) {
	r, w := newFakeRunner(t)
	ctx := context.Background()
	if err := r.Through(ctx, "b", RunParams{}); err != nil {
		t.Fatal(err)
	}
	w.block = make(chan struct{})
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := r.Run(cctx, "c", RunParams{}); errc <- err }()
	<-w.block
	if statusOf(r, "c") != state.Running {
		t.Fatalf("status while running: %s", statusOf(r, "c"))
	}
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled step reported success")
	}
	if statusOf(r, "c") != state.Interrupted {
		t.Fatalf("cancelled step status %s, want interrupted", statusOf(r, "c"))
	}
	// Next time, the check decides: it finds the work done, so nothing reruns.
	w.block = nil
	w.done["c"] = true
	out, err := r.Run(ctx, "c", RunParams{})
	if err != nil || out != OutcomeFoundDone {
		t.Fatalf("after interruption: %s, %v", out, err)
	}
	if strings.Contains(strings.Join(w.ran, ","), "c") {
		t.Fatalf("interrupted step ran again although its check found it done: %v", w.ran)
	}
}

func TestRunnerInterruptedWithoutCheckNeedsOverride(t *testing.T) {
	r, _ := newFakeRunner(t)
	r.Steps[0].Check = nil
	if err := r.Store.Update(func(st *state.State) error {
		stepRecord(st, "a").Status = state.Interrupted
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := r.Run(context.Background(), "a", RunParams{})
	wantRefused(t, err, "no check")
}

func TestRunnerDryRunChangesNothing(t *testing.T) {
	r, w := newFakeRunner(t)
	r.Steps[0].Plan = func(context.Context, *Env) ([]Action, error) { return stmts(pg.Stmt{On: "blue", SQL: "SELECT 1"}), nil }
	lines := make(chan Line, 10)
	r.Out = lines
	out, err := r.Run(context.Background(), "a", RunParams{DryRun: true})
	if err != nil || out != OutcomeDryRun {
		t.Fatalf("%s %v", out, err)
	}
	close(lines)
	var got []string
	for l := range lines {
		got = append(got, l.Text)
	}
	if len(w.ran) != 0 || statusOf(r, "a") != state.Pending || !strings.Contains(strings.Join(got, "\n"), "SELECT 1") {
		t.Fatalf("dry run: ran %v status %s lines %v", w.ran, statusOf(r, "a"), got)
	}
}

func TestEveryRunbookStepInSomeStrategy(t *testing.T) {
	want := []string{"preflight", "enable-logical-replication", "create-replication-role", "replica-identity-full",
		"create-publications", "create-slots", "clone-cluster", "snapshot-blue", "upgrade-snapshot", "restore-green",
		"copy-schema", "clone-local", "green-start-lsn", "drop-cloned-replication", "upgrade-green", "upgrade-extensions",
		"block-green-logins", "compare-schema", "create-subscriptions", "advance-origins", "enable-subscriptions",
		"wait-catch-up", "analyze-green", "verify-data", "cutover", "rollback", "drop-subscriptions", "drop-publications",
		"revert-replica-identity", "decommission", "copy-roles", "create-databases", "refresh-matviews", "copy-large-objects", "copy-unlogged"}
	have := map[string]bool{}
	for _, name := range config.StrategyNames {
		for _, s := range Strategy(name) {
			have[s.ID] = true
			if s.Plan == nil || s.Why == "" || s.Title == "" {
				t.Errorf("%s: step %s lacks a plan, why or title", name, s.ID)
			}
		}
	}
	for _, id := range want {
		if !have[id] {
			t.Errorf("RUNBOOK step %s is in no strategy", id)
		}
	}
}

func TestStrategyOrderKeepsTheTraps(t *testing.T) {
	for _, name := range config.StrategyNames {
		pos := map[string]int{}
		for i, s := range Strategy(name) {
			pos[s.ID] = i
		}
		before := func(a, b string) {
			pa, oka := pos[a]
			pb, okb := pos[b]
			if oka && okb && pa >= pb {
				t.Errorf("%s: %s must come before %s", name, a, b)
			}
		}
		before("replica-identity-full", "create-publications")
		before("create-publications", "create-slots")
		for _, p := range []string{"clone-cluster", "snapshot-blue", "clone-local", "copy-schema"} {
			before("create-slots", p)
		}
		before("green-start-lsn", "upgrade-green")
		before("drop-cloned-replication", "upgrade-green")
		before("advance-origins", "enable-subscriptions")
		before("wait-catch-up", "cutover")
	}
}

func TestRunnerRefusalFromRunIsNotAFailure(t *testing.T) {
	r, w := newFakeRunner(t)
	r.Steps[0].Run = func(ctx context.Context, e *Env) error {
		return e.refuse("blue is not ready: run the fix first")
	}
	_, err := r.Run(context.Background(), "a", RunParams{})
	wantRefused(t, err, "blue is not ready")
	rec := r.Store.Snapshot().Step("a")
	if rec.Status != state.Pending || rec.Attempts != 0 || !strings.Contains(rec.LastError, "blue is not ready") {
		t.Fatalf("a refusal from Run changed the record: %+v", rec)
	}
	if len(w.ran) != 0 {
		t.Fatalf("ran %v", w.ran)
	}
}

func TestReportsGoNextToTheStateFile(t *testing.T) {
	r, _ := newFakeRunner(t)
	r.Config.Path = "/etc/pgbluegreen/pgbluegreen.yaml"
	want := filepath.Dir(r.Store.Path())
	if got := r.Env("cutover").reportDir(); got != want {
		t.Fatalf("reports go to %s, want the state file's folder %s", got, want)
	}
}

// A poll's read is journaled the first time, then not again within a
// minute; a read that failed always is.
func TestQueryJournalQuietsRepeatedReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	j, err := state.OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	hook := QueryJournal(j, "green")
	ctx := WithStep(context.Background(), "wait-catch-up")
	for i := 0; i < 100; i++ {
		hook(ctx, "SELECT count(*) FROM pg_subscription_rel", time.Millisecond, nil)
	}
	hook(ctx, "SELECT 1", time.Millisecond, nil)
	hook(ctx, "SELECT 1", time.Millisecond, errors.New("boom"))
	hook(WithStep(context.Background(), "analyze-green"), "SELECT 1", time.Millisecond, nil)
	entries, _, err := state.ReadJournal(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("%d entries, want 4 (one per read and step, and the error): %+v", len(entries), entries)
	}
}
