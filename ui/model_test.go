package ui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/prompt"
)

// flowSteps are steps whose Run the test controls, executed by the real
// steps.Runner on a real state file.
func flowSteps(release chan struct{}) []*steps.Step {
	return []*steps.Step{
		{ID: "first", Phase: steps.PhasePrepare, Target: steps.Blue, Title: "First step", Why: "it goes first",
			Records: []string{"slot_lsn"},
			Plan: func(_ context.Context, e *steps.Env) ([]steps.Action, error) {
				return []steps.Action{{Target: steps.Blue, Kind: "sql", Text: "SELECT 1"}}, nil
			},
			Run: func(ctx context.Context, e *steps.Env) error {
				e.Logf("first says hello")
				return e.Record("slot_lsn", "0/1A2B3C")
			}},
		{ID: "slow", Phase: steps.PhaseReplicate, Target: steps.Green, Title: "Slow step", Why: "it waits",
			Run: func(ctx context.Context, e *steps.Env) error {
				e.Logf("slow is waiting")
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-release:
					return nil
				}
			}},
		{ID: "drop", Phase: steps.PhaseCleanup, Target: steps.Blue, Title: "Drop things", Why: "cleanup", Destructive: true,
			Run: func(ctx context.Context, e *steps.Env) error { e.Logf("dropped"); return nil }},
	}
}

// flowModel builds a screen on the real runner with flowSteps.
func flowModel(t *testing.T, release chan struct{}) (*harness, *state.Store) {
	store := openStore(t, false, "")
	cfg := testConfig()
	lines := make(chan steps.Line, 16)
	r := &steps.Runner{Config: cfg, Steps: flowSteps(release), Store: store, Out: lines}
	m := New(Params{Config: cfg, Steps: r.Steps, Runner: r, Store: store, Lines: lines, Database: "app",
		Now: func() time.Time { return epoch }, Location: time.UTC})
	return newHarness(t, m, 100, 30), store
}

// TestNavigation: arrows and j/k move the cursor within bounds, tab cycles
// the panes, ? toggles the full help.
func TestNavigation(t *testing.T) {
	h, _ := flowModel(t, nil)
	m := h.m
	h.key("j", "down")
	if m.runbook.Cursor() != 2 {
		t.Fatalf("cursor %d after two downs, want 2", m.runbook.Cursor())
	}
	h.key("j", "j")
	if m.runbook.Cursor() != 2 {
		t.Errorf("cursor went past the last step: %d", m.runbook.Cursor())
	}
	h.key("k", "up", "up")
	if m.runbook.Cursor() != 0 {
		t.Errorf("cursor %d after going up, want 0", m.runbook.Cursor())
	}
	if !strings.Contains(h.screen(), "› ○ pending first") {
		t.Errorf("cursor row not marked:\n%s", h.screen())
	}
	for want := focusDetail; want != focusSteps; want = (want + 1) % focusCount {
		h.key("tab")
		if m.focus != want {
			t.Fatalf("focus %d, want %d", m.focus, want)
		}
	}
	h.key("tab")
	if m.focus != focusSteps {
		t.Errorf("tab did not come back to the runbook")
	}
	short := h.screen()
	h.key("?")
	if full := h.screen(); !strings.Contains(full, "add value") || strings.Contains(short, "add value") {
		t.Errorf("? did not show the full help")
	}
}

// TestRunStep runs a step through the runner: its output streams into the
// log, the value it records shows in the values panel, its status is done.
func TestRunStep(t *testing.T) {
	h, store := flowModel(t, nil)
	h.key("enter")
	if h.m.run.id != "first" {
		t.Fatalf("enter did not start the step; log:\n%s", h.m.logText())
	}
	if h.m.keys.Run.Enabled() {
		t.Errorf("the run key is offered while a step runs")
	}
	h.until("the step to finish", func() bool { return h.m.run.id == "" })
	h.until("its output", func() bool { return strings.Contains(h.m.logText(), "first says hello") })
	if got := store.Snapshot().Step("first").Status; got != state.Done {
		t.Errorf("first is %s, want done", got)
	}
	scr := h.screen()
	if h.m.runbook.Cursor() != 1 {
		t.Errorf("the cursor did not move on to the next step")
	}
	for _, want := range []string{"  ✓ done    first", "› ○ pending slow", "slot_lsn", "0/1A2B3C", "first: ran"} {
		if !strings.Contains(scr, want) {
			t.Errorf("screen lacks %q:\n%s", want, scr)
		}
	}
	if !h.m.keys.Run.Enabled() {
		t.Errorf("the run key did not come back")
	}
}

// TestRefusedStep: a step whose earlier steps are pending is refused with
// the reason, and nothing runs.
func TestRefusedStep(t *testing.T) {
	h, store := flowModel(t, nil)
	h.key("j", "enter")
	if h.m.run.id != "" {
		t.Fatal("a step ran out of order")
	}
	if !strings.Contains(h.m.logText(), "slow refused: earlier step first is pending") {
		t.Errorf("no refusal in the log:\n%s", h.m.logText())
	}
	if got := store.Snapshot().Step("slow").Status; got != state.Pending {
		t.Errorf("slow is %s", got)
	}
}

// TestConfirmDestructive: a destructive step asks for the database's name;
// a wrong name runs nothing, esc cancels, the right name runs it.
func TestConfirmDestructive(t *testing.T) {
	release := make(chan struct{})
	close(release)
	h, store := flowModel(t, release)
	h.key("enter")
	h.until("first", func() bool { return h.m.run.id == "" })
	h.key("enter")
	h.until("slow", func() bool { return h.m.run.id == "" })
	h.key("enter")
	h.until("the servers to be read before asking", func() bool { return h.m.run.probing == "" })
	if h.m.prompt.Kind() != prompt.Confirm || h.m.run.id != "" {
		t.Fatalf("destructive step did not ask first (prompt %d, running %q)", h.m.prompt.Kind(), h.m.run.id)
	}
	if !strings.Contains(h.screen(), "type the database's name (app) to run it") {
		t.Errorf("prompt not shown:\n%s", h.screen())
	}
	h.typeText("ap")
	h.key("enter")
	if h.m.run.id != "" || h.m.prompt.Kind() != prompt.Confirm || !strings.Contains(h.screen(), "is not the database's name") {
		t.Fatalf("a wrong name was accepted or the prompt closed:\n%s", h.screen())
	}
	h.key("esc")
	if h.m.prompt.Kind() != prompt.None || store.Snapshot().Step("drop").Status != state.Pending {
		t.Fatalf("esc did not cancel")
	}
	h.key("enter")
	h.until("the prompt again", func() bool { return h.m.prompt.Kind() == prompt.Confirm })
	h.typeText("app")
	h.key("enter")
	if h.m.prompt.Kind() != prompt.None {
		t.Fatalf("the right name left the prompt open")
	}
	// The prompt's answer comes as a message (prompt.RunMsg): the next one.
	h.until("the right name to run the step", func() bool { return h.m.run.id == "drop" })
	h.until("drop to finish", func() bool { return h.m.run.id == "" })
	if got := store.Snapshot().Step("drop").Status; got != state.Done {
		t.Errorf("drop is %s, want done", got)
	}
}

// TestQuitWhileRunning: q asks first while a step runs; n keeps it running;
// y cancels it, the state file says interrupted, and the screen quits.
func TestQuitWhileRunning(t *testing.T) {
	h, store := flowModel(t, make(chan struct{}))
	h.key("enter")
	h.until("first", func() bool { return h.m.run.id == "" })
	h.key("enter")
	h.until("slow to be running", func() bool { return store.Snapshot().Step("slow").Status == state.Running })
	h.key("q")
	if h.quit || h.m.prompt.Kind() != prompt.Quit {
		t.Fatalf("q quit at once while a step runs")
	}
	h.key("n")
	if h.m.prompt.Kind() != prompt.None || h.m.run.id != "slow" {
		t.Fatalf("n did not keep the step running")
	}
	h.key("q", "y")
	h.until("the screen to quit", func() bool { return h.quit })
	rec := store.Snapshot().Step("slow")
	if rec.Status != state.Interrupted || !strings.Contains(rec.LastError, "cancelled") {
		t.Errorf("slow is %s (%q), want interrupted by cancellation", rec.Status, rec.LastError)
	}
}

// TestSignalWhileRunning: a quit from outside (SIGTERM) passes the filter as
// a request: the step is cancelled first.
func TestSignalWhileRunning(t *testing.T) {
	h, store := flowModel(t, make(chan struct{}))
	h.key("enter")
	h.until("first", func() bool { return h.m.run.id == "" })
	h.key("enter")
	h.until("slow to be running", func() bool { return store.Snapshot().Step("slow").Status == state.Running })
	msg := Filter(h.m, tea_QuitMsg())
	if _, ok := msg.(QuitRequestMsg); !ok {
		t.Fatalf("filter let %T through while a step runs", msg)
	}
	h.send(msg)
	h.until("the screen to quit", func() bool { return h.quit })
	if got := store.Snapshot().Step("slow").Status; got != state.Interrupted {
		t.Errorf("slow is %s, want interrupted", got)
	}
}

// TestEditValue: e on the runbook edits what the step needs; a secret name is refused.
func TestEditValue(t *testing.T) {
	h, store := flowModel(t, nil)
	h.key("a")
	h.typeText("replication_password")
	h.key("enter")
	if !strings.Contains(h.screen(), "secrets are never stored") {
		t.Errorf("a secret's name was accepted:\n%s", h.screen())
	}
	h.key("esc", "a")
	h.typeText("green_start_lsn")
	h.key("enter")
	// A malformed value is refused in one line, with the type and an example.
	h.typeText("zz/notanlsn")
	h.key("enter")
	if !strings.Contains(h.screen(), `"zz/notanlsn" is not an LSN`) {
		t.Errorf("a malformed LSN was accepted:\n%s", h.screen())
	}
	if _, ok := store.Snapshot().Get("green_start_lsn"); ok {
		t.Fatal("a malformed LSN was recorded")
	}
	for range "zz/notanlsn" {
		h.key("backspace")
	}
	h.typeText("0/5000028")
	h.key("enter")
	// Then a reason, which is journaled; none is refused.
	h.key("enter")
	if !strings.Contains(h.screen(), "an edit needs a reason") {
		t.Errorf("an edit without a reason was accepted:\n%s", h.screen())
	}
	h.typeText("read from green's log by hand")
	h.key("enter")
	h.until("the value to be saved and shown", func() bool { v, _ := h.m.st.Get("green_start_lsn"); return v == "0/5000028" })
	if v := store.Snapshot().Values["green_start_lsn"]; v.RecordedBy != "operator" {
		t.Errorf("recorded by %q", v.RecordedBy)
	}
	if !strings.Contains(h.screen(), "green_start_lsn") {
		t.Errorf("value not in the panel:\n%s", h.screen())
	}
}

// TestWatchRefusesExecution: in watch mode no key runs a step or changes a
// value, and the help offers none.
func TestWatchRefusesExecution(t *testing.T) {
	dir := t.TempDir()
	drive := openStore(t, false, dir)
	if err := drive.Update(func(s *state.State) error { s.Set("slot_lsn", "0/1", "create-slots"); return nil }); err != nil {
		t.Fatal(err)
	}
	store := openStore(t, true, dir)
	cfg := testConfig()
	real := &steps.Runner{Config: cfg, Steps: steps.Strategy("copy"), Store: store}
	f := &fakeRunner{real: real}
	m := New(Params{Config: cfg, Steps: real.Steps, Runner: f, Store: store, Watch: true, Database: "app",
		Now: func() time.Time { return epoch }, Location: time.UTC})
	h := newHarness(t, m, 120, 40)
	h.key("enter", "r", "e", "a", "s")
	h.key("tab", "tab", "enter")
	if f.count() != 0 {
		t.Fatalf("watch mode ran %d step(s)", f.count())
	}
	if m.prompt.Kind() != prompt.None {
		t.Errorf("watch mode opened an editor")
	}
	if m.keys.Run.Enabled() || m.keys.Edit.Enabled() || m.keys.Add.Enabled() {
		t.Errorf("watch mode offers an executing key")
	}
	scr := h.screen()
	if strings.Contains(scr, "run step") || !strings.Contains(scr, "WATCH (read-only)") || !strings.Contains(m.logText(), "watch mode is read-only") {
		t.Errorf("watch screen:\n%s\nlog:\n%s", scr, m.logText())
	}
	// A step the driving instance runs is not this screen's to cancel: a
	// signal quits at once.
	m.run.id = "copy-schema"
	if _, ok := Filter(m, tea_QuitMsg()).(QuitRequestMsg); ok {
		t.Errorf("watch mode holds a quit for another instance's step")
	}
	m.run.id = ""
	h.key("p")
	if !strings.Contains(m.logText(), ", offline (recorded values; nothing is executed)") || f.count() != 0 {
		t.Errorf("dry run in watch mode: runs %d, log:\n%s", f.count(), m.logText())
	}
}

// TestLagSamples: rate and ETA from samples, the loud warning of a slot near
// invalidation, and an unreachable blue with its backoff, stale results dropped.
func TestLagSamples(t *testing.T) {
	h, _ := flowModel(t, nil)
	m := h.m
	slot := func(behind int64) monitor.SlotLag {
		return monitor.SlotLag{Slot: "pgbg_all", Active: true, BehindBytes: behind, RetainedBytes: behind + 1000, WALStatus: "reserved", SafeWALBytes: -1}
	}
	for i, behind := range []int64{100 << 20, 90 << 20, 80 << 20} {
		m.Update(lagMsg(m, monitor.LagSample{At: epoch.Add(time.Duration(i*10) * time.Second), Slots: []monitor.SlotLag{slot(behind)}}))
	}
	// The rate's and the ETA's figures (1 MB/s, 79 s) are lag.TestRateAndETA's.
	scr := h.screen()
	for _, want := range []string{"pgbg_all", "80.0 MB", "↓1.0 MB/s", "ETA 1m19s", "WAL 80.0 MB reserved"} {
		if !strings.Contains(scr, want) {
			t.Errorf("gauge lacks %q:\n%s", want, scr)
		}
	}
	// Falling behind: no ETA.
	m.Update(lagMsg(m, monitor.LagSample{At: epoch.Add(30 * time.Second), Slots: []monitor.SlotLag{slot(200 << 20)}}))
	if strings.Contains(h.screen(), "ETA 1m") || !strings.Contains(h.screen(), "not gaining") {
		t.Errorf("a growing lag has an ETA:\n%s", h.screen())
	}
	// Near invalidation: loud.
	near := slot(10 << 20)
	near.SafeWALBytes, near.RetainedBytes = 50<<20, 950<<20
	m.Update(lagMsg(m, monitor.LagSample{At: epoch.Add(40 * time.Second), Slots: []monitor.SlotLag{near}}))
	if !strings.Contains(h.screen(), "⚠ slot pgbg_all on blue is close to being INVALIDATED: only 50.0 MB") {
		t.Errorf("no loud warning:\n%s", h.screen())
	}
	near.WALStatus = "lost"
	m.Update(lagMsg(m, monitor.LagSample{At: epoch.Add(41 * time.Second), Slots: []monitor.SlotLag{near}}))
	if !strings.Contains(h.screen(), "slot pgbg_all on blue is LOST") {
		t.Errorf("a lost slot is not loud:\n%s", h.screen())
	}
	// Unreachable: the reason, the backoff, and the rest still works.
	m.Update(lagErrMsg(m, errors.New("dial tcp 10.0.0.1:5432: connect: connection refused")))
	m.Update(lagErrMsg(m, errors.New("dial tcp 10.0.0.1:5432: connect: connection refused")))
	if !strings.Contains(h.screen(), "blue unreachable: dial tcp 10.0.0.1:5432: connect: connection refused, retrying in 2s") {
		t.Errorf("unreachable blue not shown with its backoff:\n%s", h.screen())
	}
	long := errors.New("read replication slots: failed to connect to `user=postgres database=app`: 127.0.0.1:35011 (127.0.0.1): dial error: dial tcp 127.0.0.1:35011: connect: connection refused")
	m.Update(lagErrMsg(m, long))
	h.send(tea_WindowSize(80, 24))
	if scr := h.screen(); !strings.Contains(scr, "retrying in 4s") || !strings.Contains(scr, "✗ blue unreachable: read replication slots") {
		t.Errorf("at 80 columns the countdown is lost:\n%s", scr)
	}
	h.send(tea_WindowSize(100, 30))
	// The backoff's doubling (2s after two failures) is poll.TestBackoff's.
	h.key("j")
	if m.runbook.Cursor() != 1 {
		t.Errorf("keys stopped working while blue is unreachable")
	}
	// A result of an older chain is dropped.
	m.Update(staleLagMsg(m, monitor.LagSample{At: epoch, Slots: []monitor.SlotLag{slot(1)}}))
	if !strings.Contains(h.screen(), "blue unreachable") {
		t.Errorf("a stale result was taken")
	}
}

// TestTooSmall: below 80x24 one line says so.
func TestTooSmall(t *testing.T) {
	h, _ := flowModel(t, nil)
	h.send(tea_WindowSize(79, 30))
	if got := h.screen(); strings.Count(got, "\n") != 0 || !strings.Contains(got, "terminal too small (79x30)") {
		t.Errorf("small screen: %q", got)
	}
}

// TestWatchFollows: watch mode follows the state file and the journal the
// driving instance writes, and shows who holds the lock.
func TestWatchFollows(t *testing.T) {
	dir := t.TempDir()
	drive := openStore(t, false, dir)
	j, err := state.OpenJournal(dir + "/state.journal.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	store := openStore(t, true, dir)
	cfg := testConfig()
	real := &steps.Runner{Config: cfg, Steps: steps.Strategy("copy"), Store: store}
	m := New(Params{Config: cfg, Steps: real.Steps, Runner: real, Store: store, Watch: true,
		JournalPath: j.Path(), StatePath: dir + "/state.json", Now: func() time.Time { return epoch }, Location: time.UTC})
	h := newHarness(t, m, 120, 40)
	if err := drive.Update(func(s *state.State) error {
		s.EditStep("preflight").Status = state.Done
		s.Set("blue_version", "15.14", "preflight")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(state.Entry{Step: "preflight", Target: "blue", Kind: "sql", Text: "SELECT version()", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	h.until("the journal line", func() bool { return strings.Contains(m.logText(), "preflight [blue sql] SELECT version()") })
	h.until("the state", func() bool { return m.st.Step("preflight").Status == state.Done })
	scr := h.screen()
	for _, want := range []string{"✓ done    preflight", "blue_version", "lock: pid"} {
		if !strings.Contains(scr, want) {
			t.Errorf("watch screen lacks %q:\n%s", want, scr)
		}
	}
}

// TestDriveLogFollowsJournal: with a journal, the log shows the step's lines
// once each, in the journal's order, and the outcome after them.
func TestDriveLogFollowsJournal(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, false, dir)
	j, err := state.OpenJournal(dir + "/state.journal.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	cfg := testConfig()
	lines := make(chan steps.Line, 16)
	r := &steps.Runner{Config: cfg, Steps: flowSteps(nil), Store: store, Journal: j, Out: lines}
	m := New(Params{Config: cfg, Steps: r.Steps, Runner: r, Store: store, Lines: lines, Database: "app",
		JournalPath: j.Path(), StatePath: dir + "/state.json", Now: func() time.Time { return epoch }, Location: time.UTC})
	h := newHarness(t, m, 120, 40)
	h.key("enter")
	h.until("the outcome", func() bool { return strings.Contains(m.logText(), "first: ran") })
	log := m.logText()
	if n := strings.Count(log, "first says hello"); n != 1 {
		t.Errorf("the step's line shows %d times:\n%s", n, log)
	}
	if strings.Index(log, "first says hello") > strings.Index(log, "first: ran") || strings.Index(log, "[step] start First step") > strings.Index(log, "first says hello") {
		t.Errorf("log out of order:\n%s", log)
	}
}

// TestSkipStep: s asks for a reason, refuses an empty one, and skips the
// step through the runner, which journals the reason.
func TestSkipStep(t *testing.T) {
	h, store := flowModel(t, nil)
	h.key("s")
	if h.m.prompt.Kind() != prompt.Skip {
		t.Fatal("s did not ask for a reason")
	}
	h.key("enter")
	if h.m.prompt.Kind() != prompt.Skip || !strings.Contains(h.screen(), "skipping needs a reason") {
		t.Fatalf("an empty reason was accepted:\n%s", h.screen())
	}
	h.typeText("done by hand in psql")
	h.key("enter")
	h.until("the skip", func() bool { return h.m.st.Step("first").Status == state.Skipped })
	if r := store.Snapshot().Step("first"); r.Status != state.Skipped || !strings.Contains(r.Result, "done by hand in psql") {
		t.Errorf("first is %+v", r)
	}
	if !strings.Contains(h.screen(), "↷ skipped first") {
		t.Errorf("screen:\n%s", h.screen())
	}
}
