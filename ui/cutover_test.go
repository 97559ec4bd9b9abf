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
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/prompt"
	"github.com/pgbluegreen/pgbluegreen/ui/statusline"
)

// switchSteps are a prepared run and its cutover, destructive, for the
// tests of what happens around the cutover.
func switchSteps() []*steps.Step {
	return []*steps.Step{
		{ID: "prepared", Phase: steps.PhasePrepare, Target: steps.Blue, Title: "Prepared", Why: "done by the test",
			Run: func(ctx context.Context, e *steps.Env) error { return nil }},
		{ID: "cutover", Phase: steps.PhaseCutover, Target: steps.PgBouncer, Title: "Cut over to green", Why: "the switch", Destructive: true,
			Plan: func(_ context.Context, e *steps.Env) ([]steps.Action, error) {
				return []steps.Action{{Target: steps.PgBouncer, Kind: "sql", Text: "PAUSE app"}}, nil
			},
			Rehearse: func(ctx context.Context, e *steps.Env, measure bool) error { return nil },
			Run:      func(ctx context.Context, e *steps.Env) error { return nil }},
	}
}

// switchModel is a screen on switchSteps with the first step done, the
// cursor on the cutover, and a fake runner whose WaysOut the test sets.
func switchModel(t *testing.T, traffic TrafficFunc) (*harness, *fakeRunner) {
	store := openStore(t, false, "")
	if err := store.Update(func(s *state.State) error { s.EditStep("prepared").Status = state.Done; return nil }); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	real := &steps.Runner{Config: cfg, Steps: switchSteps(), Store: store}
	f := &fakeRunner{real: real}
	m := New(Params{Config: cfg, Steps: real.Steps, Runner: f, Store: store, Database: "app", Traffic: traffic,
		Now: func() time.Time { return epoch }, Location: time.UTC})
	return newHarness(t, m, 100, 30), f
}

// TestWaysOutOffered: enter on a cutover that stopped half way shows where
// the servers are and the two ways out with their sub-steps; f is confirmed
// by the database's name and runs the way out through the runner.
func TestWaysOutOffered(t *testing.T) {
	h, f := switchModel(t, nil)
	f.ways = steps.WaysOut{Step: "cutover", From: "blue", To: "green", Where: "PgBouncer lab paused, pointing at green",
		Finish: []string{"resume", "verify target is green", "fence blue"}, Undo: []string{"repoint to blue", "resume"},
		UndoThen: "a new cutover from its prechecks"}
	f.halfWay = true
	if h.m.selected().ID != "cutover" {
		t.Fatalf("cursor on %s", h.m.selected().ID)
	}
	h.key("enter")
	h.until("the ways out", func() bool { return h.m.prompt.Kind() == prompt.Ways })
	scr := h.screen()
	for _, want := range []string{"cutover stopped half way: PgBouncer lab paused, pointing at green",
		"f  finish forward to green: runs resume, verify target is green, fence blue",
		"u  undo back to blue: runs repoint to blue, resume; then a new cutover from its prechecks",
		"f finish forward to green", "u undo back to blue", "esc leave it as it is"} {
		if !strings.Contains(scr, want) {
			t.Errorf("screen lacks %q:\n%s", want, scr)
		}
	}
	if h.m.keys.Run.Enabled() {
		t.Errorf("the run key is offered while the ways out are")
	}
	h.key("f")
	if h.m.prompt.Kind() != prompt.Confirm || !strings.Contains(h.screen(), "cutover's way out, finish forward to green, changes the servers: type the database's name (app)") {
		t.Fatalf("f did not ask for the name:\n%s", h.screen())
	}
	h.typeText("app")
	h.key("enter")
	h.until("the way out to run", func() bool { return f.count() == 1 && h.m.run.id == "" })
	if p := f.params[0]; f.runs[0] != "cutover" || p.Way != "finish" || !p.Confirmed {
		t.Errorf("ran %v with %+v, want cutover with way finish, confirmed", f.runs, p)
	}
	// esc leaves it as it is.
	h.key("up", "down", "enter")
	h.until("the ways out again", func() bool { return h.m.prompt.Kind() == prompt.Ways })
	h.key("esc")
	// What the prompt says in the log comes as a message (pane.NoteMsg).
	h.until("the note", func() bool { return strings.Contains(h.m.logText(), "left half way") })
	if h.m.prompt.Kind() != prompt.None || f.count() != 1 {
		t.Errorf("esc: prompt %d, runs %d, log:\n%s", h.m.prompt.Kind(), f.count(), h.m.logText())
	}
}

// TestFoundDoneAsksNothing: a destructive step whose check finds its work
// done is recorded done without asking for the name.
func TestFoundDoneAsksNothing(t *testing.T) {
	store := openStore(t, false, "")
	cfg := testConfig()
	all := flowSteps(nil)
	drop := all[2]
	drop.Check = func(ctx context.Context, e *steps.Env) (steps.CheckResult, error) {
		return steps.CheckResult{Done: true, Detail: "no subscription left to drop"}, nil
	}
	lines := make(chan steps.Line, 16)
	r := &steps.Runner{Config: cfg, Steps: all, Store: store, Out: lines}
	if err := store.Update(func(s *state.State) error {
		s.EditStep("first").Status, s.EditStep("slow").Status = state.Done, state.Done
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m := New(Params{Config: cfg, Steps: all, Runner: r, Store: store, Lines: lines, Database: "app",
		Now: func() time.Time { return epoch }, Location: time.UTC})
	h := newHarness(t, m, 100, 30)
	h.key("enter")
	h.until("the check", func() bool { return m.run.probing == "" })
	if m.prompt.Kind() != prompt.None || m.run.id != "" {
		t.Fatalf("asked (prompt %d) or ran (%q) a step with nothing to do", m.prompt.Kind(), m.run.id)
	}
	if got := store.Snapshot().Step("drop"); got.Status != state.Done || got.Attempts != 0 {
		t.Errorf("drop is %+v, want done without a run", got)
	}
	if !strings.Contains(m.logText(), "drop: found done (no subscription left to drop): nothing to do, so no confirmation asked") {
		t.Errorf("log:\n%s", m.logText())
	}
}

// TestLiveDryRun: p runs the dry run through the runner in a command (the
// step is "running" meanwhile and nothing else may run); its lines reach
// the log.
func TestLiveDryRun(t *testing.T) {
	h, store := flowModel(t, nil)
	h.key("p")
	if h.m.run.id != "first" || !h.m.run.dry {
		t.Fatalf("p did not start the dry run through the runner (running %q)", h.m.run.id)
	}
	h.until("the dry run to end", func() bool { return h.m.run.id == "" })
	h.until("its plan", func() bool { return strings.Contains(h.m.logText(), "[blue sql] SELECT 1") })
	if !strings.Contains(h.m.logText(), "first: dry run printed above; nothing was executed") {
		t.Errorf("log:\n%s", h.m.logText())
	}
	if got := store.Snapshot().Step("first").Status; got != state.Pending {
		t.Errorf("a dry run changed the step to %s", got)
	}
	// A step that would be refused gets the offline plan and the reason.
	h.key("j", "p")
	if h.m.run.id != "" || !strings.Contains(h.m.logText(), "it would be refused now: earlier step first is pending") {
		t.Errorf("refused step: running %q, log:\n%s", h.m.run.id, h.m.logText())
	}
}

// TestHangup: SIGHUP (HangupMsg) while a step runs cancels it, waits for its
// state to be saved and quits; with nothing running it quits at once.
func TestHangup(t *testing.T) {
	h, store := flowModel(t, make(chan struct{}))
	h.key("enter")
	h.until("first", func() bool { return h.m.run.id == "" })
	h.key("enter")
	h.until("slow to be running", func() bool { return store.Snapshot().Step("slow").Status == state.Running })
	h.key("q") // a prompt open when the terminal goes must not hold the quit
	h.send(HangupMsg{})
	if h.quit {
		t.Fatal("quit before the step ended")
	}
	h.until("the screen to quit", func() bool { return h.quit })
	if got := store.Snapshot().Step("slow"); got.Status != state.Interrupted {
		t.Errorf("slow is %s, want interrupted", got.Status)
	}
	h2, _ := flowModel(t, nil)
	h2.send(HangupMsg{})
	h2.until("a hangup with nothing running to quit", func() bool { return h2.quit })
}

// TestTrafficAndFeed: the status line says where writes go with a symbol
// and a word; after a cutover the gauge leads with green's reverse slot and
// marks blue's forward slot idle; an unreadable traffic says unknown.
func TestTrafficAndFeed(t *testing.T) {
	reply := monitor.Traffic{Target: "green", How: "PgBouncer lab -> green", Warnings: []string{"the application roles can log in on both blue and green: writes may land on both"}}
	var fail error
	h, _ := switchModel(t, func(ctx context.Context) (monitor.Traffic, error) { return reply, fail })
	m := h.m
	h.until("the traffic", func() bool { return strings.Contains(h.screen(), "◨ writes → GREEN") })
	lag := 0.42
	since := epoch.Add(-5 * time.Minute)
	m.Update(lagMsg(m, monitor.LagSample{At: epoch, Slots: []monitor.SlotLag{
		{Slot: "pgbg_all", Server: "blue", Direction: "blue -> green", BehindBytes: 2 << 20, RetainedBytes: 2 << 20, WALStatus: "reserved", SafeWALBytes: -1, InactiveSince: &since},
		{Slot: "pgbg_reverse", Server: "green", Direction: "green -> blue", Active: true, BehindBytes: 300, RetainedBytes: 4096, WALStatus: "reserved", SafeWALBytes: 1 << 30, MaxKeepBytes: 1 << 30, LagSeconds: &lag},
	}}))
	scr := h.screen()
	for _, want := range []string{"◨ writes → GREEN", "⚠ the application roles can log in on both", "Lag green → blue (reverse feed",
		"g→b pgbg_reverse", "lag 0.42s", "1.0 GB left", "b→g pgbg_all     ○ idle 5m00s · kept for a rollback · WAL 2.0 MB reserved"} {
		if !strings.Contains(scr, want) {
			t.Errorf("screen lacks %q:\n%s", want, scr)
		}
	}
	if strings.Index(scr, "pgbg_reverse") > strings.Index(scr, "b→g pgbg_all") {
		t.Errorf("the feed in use is not first:\n%s", scr)
	}
	// Unreadable: unknown, said as such; the feed stays the last known.
	fail = errors.New("dial tcp 127.0.0.1:6432: connect: connection refused")
	h.send(poll.SoonMsg{Source: statusline.SourceTraffic})
	h.send(m.ticks.Msg())
	h.until("the failed read", func() bool { return strings.Contains(h.screen(), "? writes → UNKNOWN") })
	scr = h.screen()
	if !strings.Contains(scr, "? writes → UNKNOWN") || !strings.Contains(scr, "Lag green → blue") {
		t.Errorf("unknown traffic:\n%s", scr)
	}
}

// TestRehearseKey: c on the cutover runs its rehearsal through the runner
// (RunParams.Check); the step is not shown running and the cursor stays.
func TestRehearseKey(t *testing.T) {
	h, f := switchModel(t, nil)
	if !h.m.keys.Rehearse.Enabled() || !strings.Contains(h.screen(), "c rehearse (prechecks only)") {
		t.Fatalf("no rehearsal key on the cutover:\n%s", h.screen())
	}
	h.key("c")
	h.until("the rehearsal to end", func() bool { return f.count() == 1 && h.m.run.id == "" })
	if p := f.params[0]; !p.Check || p.MeasurePause || p.Confirmed {
		t.Errorf("rehearsal ran with %+v", p)
	}
	if h.m.selected().ID != "cutover" || !strings.Contains(h.m.logText(), "rehearsal of cutover: every precheck passed") {
		t.Errorf("cursor on %s, log:\n%s", h.m.selected().ID, h.m.logText())
	}
	h.key("up")
	if h.m.keys.Rehearse.Enabled() {
		t.Errorf("the rehearsal key is offered on a step without one")
	}
}
