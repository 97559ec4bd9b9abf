package stepstate

import (
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/ui/theme"
)

// TestWord: this process's running step is running before the file says
// so (not a dry run); another's running step shows a symbol, not the
// spinner; every status has a symbol.
func TestWord(t *testing.T) {
	lipgloss.SetColorProfile(termenv.Ascii)
	s := theme.New()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	st := &state.State{}
	run := Run{ID: "a", Start: now.Add(-5 * time.Second), Spinner: "|"}
	if got := ansi.Strip(Word(s, "a", Record(st, "a", run), run, now)); got != "| running 5s" {
		t.Errorf("running: %q", got)
	}
	if r := Record(st, "a", Run{ID: "a", Dry: true}); r.Status != state.Pending {
		t.Errorf("a dry run shows %s", r.Status)
	}
	run.Watch = true
	if got := ansi.Strip(Word(s, "a", Record(st, "a", run), run, now)); got != "● running 5s" {
		t.Errorf("watched: %q", got)
	}
	if got := ansi.Strip(Word(s, "b", state.StepRecord{Status: state.Skipped}, run, now)); got != "↷ skipped" {
		t.Errorf("skipped: %q", got)
	}
}

// TestChecks: PASS/WARN/FAIL lines count under their step, the WARN and
// FAIL lines are kept, a new start resets them, and Gen follows.
func TestChecks(t *testing.T) {
	var c Checks
	s := theme.New()
	c.TakeEntry(state.Entry{Step: "preflight", Kind: "log", Text: "PASS one"})
	c.TakeLine("preflight", "WARN two")
	c.TakeLine("preflight", "FAIL three")
	c.TakeLine("preflight", "note: not a check")
	tl := c.Of("preflight")
	if tl == nil || tl.Text() != "1 pass · 1 warn · 1 fail" || len(tl.Lines) != 2 || ansi.Strip(c.Mark(s, "preflight")) != " ✗1" {
		t.Fatalf("tally %+v", tl)
	}
	gen := c.Gen()
	c.TakeEntry(state.Entry{Step: "preflight", Kind: "step", Text: "start Preflight checks"})
	if c.Of("preflight") != nil || c.Gen() == gen || c.Mark(s, "preflight") != "" {
		t.Errorf("a new start kept the tally")
	}
}

// TestWhereSaysTheDatabase: a step running in each database says which
// one it is in, apart from its status word, which stays short.
func TestWhereSaysTheDatabase(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 10, 0, time.UTC)
	r := state.StepRecord{ID: "copy-schema", Status: state.Running, Database: "billing (2 of 2)"}
	if got := ansi.Strip(Word(theme.New(), "copy-schema", r, Run{ID: "copy-schema", Start: now.Add(-10 * time.Second), Spinner: "⠋"}, now)); got != "⠋ running 10s" {
		t.Errorf("Word = %q, want the spinner and the time only", got)
	}
	if got := Where(r); got != "in billing (2 of 2)" {
		t.Errorf("Where = %q", got)
	}
	r.Status = state.Done
	if got := Where(r); got != "" {
		t.Errorf("Where of a done step = %q, want nothing", got)
	}
}
