package ui

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/lag"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
)

// TestDriftWithinTwoTicks: a DDL on blue between two slow ticks shows as a
// loud drift, naming the object, by the second slow tick at the latest;
// when the schemas match again it goes.
func TestDriftWithinTwoTicks(t *testing.T) {
	var mu sync.Mutex
	now := epoch
	d := monitor.Drift{Compared: true, Objects: 75, Differences: []string{}}
	read := func(context.Context) (monitor.Drift, error) {
		mu.Lock()
		defer mu.Unlock()
		return d, nil
	}
	store := openStore(t, false, "")
	cfg := testConfig()
	real := &steps.Runner{Config: cfg, Steps: switchSteps(), Store: store}
	m := New(Params{Config: cfg, Steps: real.Steps, Runner: &fakeRunner{real: real}, Store: store, Database: "app", Drift: read,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }, Location: time.UTC})
	h := newHarness(t, m, 100, 30)
	h.until("the first comparison", func() bool { return h.count(isDrift) > 0 })
	if strings.Contains(h.screen(), "SCHEMA DRIFT") {
		t.Fatalf("drift shown with equal schemas:\n%s", h.screen())
	}
	// The DDL on blue, between two ticks.
	mu.Lock()
	d.Differences = []string{"only on blue: column public.accounts.note text null"}
	mu.Unlock()
	ticks := 0
	for ticks < 2 && !strings.Contains(h.screen(), "SCHEMA DRIFT") {
		mu.Lock()
		now = now.Add(lag.DriftEvery)
		mu.Unlock()
		ticks++
		before := h.count(isDrift)
		h.send(m.ticks.Msg())
		h.until("the tick's comparison", func() bool { return h.count(isDrift) > before })
	}
	scr := h.screen()
	if !strings.Contains(scr, "⚠ SCHEMA DRIFT since 12:00:05: blue's and green's schemas differ (1 object(s)): only on blue: column") ||
		!strings.Contains(scr, "public.accounts.note text null. The cutover refuses until they match.") {
		t.Fatalf("after %d slow tick(s) the drift is not shown:\n%s", ticks, scr)
	}
	t.Logf("shown after %d slow tick(s)", ticks)
	// The pane says it in the log with a message of its own.
	h.until("the drift in the log", func() bool { return strings.Contains(m.logText(), "schema drift: blue's and green's schemas differ") })
	// Fixed on green: gone at the next comparison.
	mu.Lock()
	d.Differences = []string{}
	now = now.Add(lag.DriftEvery)
	mu.Unlock()
	before := h.count(isDrift)
	h.send(m.ticks.Msg())
	h.until("the next comparison", func() bool { return h.count(isDrift) > before })
	if strings.Contains(h.screen(), "SCHEMA DRIFT") {
		t.Errorf("drift still shown with equal schemas:\n%s", h.screen())
	}
}

// TestChecksKept: a step's PASS/WARN lines, read from the journal, stay on
// screen after they scroll out of the log: the counts on its runbook row
// (a symbol and count at 80 columns), the WARN lines in its detail pane;
// its next start resets them.
func TestChecksKept(t *testing.T) {
	m := goldenModel(t)
	m.Update(tea_WindowSize(80, 24))
	if scr := h80(m); !strings.Contains(scr, "✓ done ⚠1       preflight") {
		t.Errorf("80 columns: no warn count on the row:\n%s", scr)
	}
	m.Update(tea_WindowSize(200, 60))
	m.runbook.Select(0)
	scr := h80(m)
	for _, want := range []string{"preflight                  12 pass · 1 warn", "checks 12 pass · 1 warn",
		`⚠ WARN 1 table(s) with neither a primary key nor a replica identity: "public"."events_log"`} {
		if !strings.Contains(scr, want) {
			t.Errorf("screen lacks %q:\n%s", want, scr)
		}
	}
	m.checks.TakeEntry(state.Entry{Step: "preflight", Kind: "step", Text: "start Preflight checks"})
	if strings.Contains(h80(m), "12 pass") {
		t.Errorf("a new run kept the old counts")
	}
}

// isDrift says whether msg is a comparison of the schemas.
func isDrift(msg tea.Msg) bool { _, ok := msg.(poll.Msg[monitor.Drift]); return ok }

func h80(m *Model) string { return ansi.Strip(m.View()) }

// TestDriftShowsRecordedDDL: with the DDL recorder on blue, the drift's
// lines end with the newest recorded statements (two, one line each, cut
// to the pane) at 80x24, and the screen keeps its size.
func TestDriftShowsRecordedDDL(t *testing.T) {
	m := goldenModel(t)
	m.Update(tea_WindowSize(80, 24))
	at := epoch.Add(-3 * time.Minute)
	m.Update(driftMsg(m, monitor.Drift{Compared: true, Objects: 75,
		Differences: []string{"only on blue: column public.accounts.note text null"},
		Recording:   true,
		Recorded: []pg.DDLEntry{
			{At: at, User: "deploy", CommandTag: "ALTER TABLE", Object: "public.accounts", Query: "ALTER TABLE public.accounts ADD COLUMN note text"},
			{At: at.Add(-time.Minute), User: "deploy", CommandTag: "CREATE INDEX", Object: "public.accounts_note", Query: "CREATE INDEX accounts_note\n  ON public.accounts (note)"},
			{At: at.Add(-2 * time.Minute), User: "partman", CommandTag: "CREATE TABLE", Object: "public.events_p2026", Query: "CREATE TABLE public.events_p2026 ..."},
		}}))
	scr := h80(m)
	t.Logf("80x24:\n%s", scr)
	for _, want := range []string{"⚠ SCHEMA DRIFT", "DDL on blue 11:57:00 deploy: ALTER TABLE public.accounts ADD COLUMN note text", "DDL on blue 11:56:00 deploy: CREATE INDEX accounts_note …"} {
		if !strings.Contains(scr, want) {
			t.Errorf("80x24: no %q", want)
		}
	}
	if strings.Contains(scr, "partman") {
		t.Errorf("80x24: more than two recorded statements shown")
	}
	if lines := strings.Split(scr, "\n"); len(lines) > 24 {
		t.Errorf("80x24: %d lines", len(lines))
	}
	for _, l := range strings.Split(scr, "\n") {
		if w := ansi.StringWidth(l); w > 80 {
			t.Errorf("80x24: a line of %d columns: %q", w, l)
		}
	}
}
