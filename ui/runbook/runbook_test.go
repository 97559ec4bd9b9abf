package runbook

import (
	"os"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/stepstate"
	"github.com/pgbluegreen/pgbluegreen/ui/uitest"
)

func TestMain(m *testing.M) {
	lipgloss.SetColorProfile(termenv.Ascii)
	os.Exit(m.Run())
}

var epoch = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func fixture() ([]*steps.Step, *state.State) {
	all := []*steps.Step{
		{ID: "preflight", Phase: steps.PhasePrepare, Title: "Preflight checks"},
		{ID: "create-slots", Phase: steps.PhaseAnchor, Title: "Create logical replication slots"},
		{ID: "copy-schema", Phase: steps.PhaseProvision, Title: "Copy the schema to green"},
		{ID: "cutover", Phase: steps.PhaseCutover, Title: "Cut over to green"},
	}
	st := &state.State{}
	st.EditStep("preflight").Status = state.Done
	st.EditStep("create-slots").Status = state.Failed
	return all, st
}

func newList(t *testing.T) *Model {
	all, st := fixture()
	checks := &stepstate.Checks{}
	checks.TakeLine("preflight", "WARN a table without a key")
	checks.TakeLine("preflight", "PASS version")
	m := New(pane.NewContext(func() time.Time { return epoch }, time.UTC), all, st, checks)
	if m.Cursor() != 1 {
		t.Fatalf("the cursor starts on step %d, want the first not done (1)", m.Cursor())
	}
	return m
}

// TestRunbookView: at two widths the list is exactly its width and no
// taller than its height, with phases, a symbol and a word per status,
// the checks' counts, and the running step's time.
func TestRunbookView(t *testing.T) {
	m := newList(t)
	m.SetRun(stepstate.Run{ID: "copy-schema", Start: epoch.Add(-95 * time.Second), Spinner: "|"})
	for _, c := range []struct {
		w    int
		want []string
	}{
		{36, []string{"Runbook · 1/4 done", "✓ done ⚠1", "› ✗ failed", "| running 1m35s copy-schema", "○ pending"}},
		{80, []string{"✓ done ⚠1       preflight", "1 pass · 1 warn", "Create logical replication slots", "Cut over to green"}},
	} {
		m.SetSize(c.w, 12)
		got, lines := uitest.Lines(t, m.View(), c.w)
		if len(lines) > 12 {
			t.Errorf("width %d: %d lines", c.w, len(lines))
		}
		for _, s := range c.want {
			if !strings.Contains(got, s) {
				t.Errorf("width %d: no %q:\n%s", c.w, s, got)
			}
		}
	}
}

// TestRunbookKeys: the arrows move the cursor within the list when the pane
// is focused, g goes to the first step, Advance moves past a step done.
func TestRunbookKeys(t *testing.T) {
	m := newList(t)
	m.SetSize(60, 12)
	m.Update(tea.KeyMsg{Type: tea.KeyDown})
	if m.Cursor() != 1 {
		t.Errorf("an unfocused list moved")
	}
	m.SetFocused(true)
	for i := 0; i < 5; i++ {
		m.Update(tea.KeyMsg{Type: tea.KeyDown})
	}
	if m.Selected().ID != "cutover" {
		t.Errorf("the cursor went past the last step: %s", m.Selected().ID)
	}
	if m.Advance("cutover") || m.Advance("preflight") {
		t.Errorf("Advance moved past the last step, or from a step not selected")
	}
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("g")})
	if !m.Advance("preflight") || m.Cursor() != 1 {
		t.Errorf("g then Advance: cursor %d", m.Cursor())
	}
}

// TestRunbookSaysTheDatabase: a step running in each database says which
// one it is in where its title was, and the status column stays as narrow
// as its words, so at 36 columns every step's name still shows whole.
func TestRunbookSaysTheDatabase(t *testing.T) {
	m := newList(t)
	m.st.EditStep("copy-schema").Database = "billing (2 of 2)"
	m.SetRun(stepstate.Run{ID: "copy-schema", Start: epoch.Add(-6 * time.Second), Spinner: "|"})
	m.SetSize(80, 12)
	if got := ansi.Strip(m.View()); !strings.Contains(got, "| running 6s copy-schema") || !strings.Contains(got, "copy-schema                in billing (2 of 2)") {
		t.Errorf("at 80 columns, the running row does not say where it is:\n%s", got)
	}
	m.SetSize(36, 12)
	got := ansi.Strip(m.View())
	for _, id := range []string{"preflight", "create-slots", "copy-schema", "cutover"} {
		if !strings.Contains(got, id) {
			t.Errorf("at 36 columns, %s is cut:\n%s", id, got)
		}
	}
}
