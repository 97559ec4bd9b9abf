package detail

import (
	"context"
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

// refusing is a runner whose steps cannot run yet.
type refusing struct{}

func (refusing) Preconditions(id string, p steps.RunParams) string {
	return "earlier step first is pending"
}
func (refusing) Env(step string) *steps.Env { return &steps.Env{} }

func newDetail() *Model {
	st := &state.State{}
	st.Set("slot_lsn", "0/3000148", "create-slots")
	s := &steps.Step{ID: "copy-schema", Phase: steps.PhaseProvision, Target: steps.BlueGreen, Title: "Copy the schema to green",
		Why:   "With the copy strategy green starts empty: the schema is copied, the data comes with the subscription's initial sync.",
		Needs: []string{"slot_lsn", "green_start_lsn"}, Destructive: true,
		Plan: func(context.Context, *steps.Env) ([]steps.Action, error) {
			return []steps.Action{{Target: steps.Green, Kind: "sql", Text: "CREATE SUBSCRIPTION pgbg_all CONNECTION 'password=hunter2' PUBLICATION pgbg_all"}}, nil
		}}
	m := New(pane.NewContext(nil, time.UTC), refusing{}, false, &stepstate.Checks{})
	m.SetState(st)
	m.SetStep(s)
	return m
}

// TestDetailView: at two widths the pane is exactly its size, the step's
// why is wrapped, its needs say what is missing, why it cannot run, and
// its plan shows with the password redacted.
func TestDetailView(t *testing.T) {
	m := newDetail()
	for _, w := range []int{40, 100} {
		m.SetSize(w, 30)
		got, lines := uitest.Lines(t, m.View(), w)
		if len(lines) != 30 {
			t.Fatalf("width %d: %d lines", w, len(lines))
		}
		for _, want := range []string{"Step detail", "green_start_lsn (missing: e edits)", "cannot run now: earlier step", "destructive", "[green sql]"} {
			if !strings.Contains(got, want) {
				t.Errorf("width %d: no %q:\n%s", w, want, got)
			}
		}
		if strings.Contains(got, "hunter2") {
			t.Errorf("width %d: a password on screen", w)
		}
	}
}

// TestDetailScroll: a detail taller than the pane scrolls with the arrows
// when focused, says which lines show, and starts from the top for another
// step.
func TestDetailScroll(t *testing.T) {
	m := newDetail()
	m.SetSize(40, 6)
	m.SetFocused(true)
	m.Update(tea.KeyMsg{Type: tea.KeyDown})
	m.Update(tea.KeyMsg{Type: tea.KeyDown})
	if got := ansi.Strip(m.View()); !strings.Contains(got, "Step detail · lines 3-7 of") {
		t.Errorf("after two downs:\n%s", got)
	}
	m.SetStep(&steps.Step{ID: "other", Title: "Another step"})
	if got := ansi.Strip(m.View()); !strings.Contains(got, "lines 1-5 of") {
		t.Errorf("another step does not start at its top:\n%s", got)
	}
}
