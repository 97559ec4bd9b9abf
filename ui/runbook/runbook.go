// Package runbook is the runbook's list: the steps grouped by phase, each
// with its status (a symbol and a word), its checks' counts and its title,
// and the cursor on the step the keys act on.
package runbook

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/stepstate"
)

// Model is the list.
type Model struct {
	ctx    pane.Context
	steps  []*steps.Step
	st     *state.State
	run    stepstate.Run
	checks *stepstate.Checks
	// cursor is the selected step's index; off the first row shown.
	cursor, off   int
	focused       bool
	width, height int
}

var _ pane.Component = (*Model)(nil)

// New makes the list of all, with the cursor on the first step still to do
// in st: after a restart that is where the run stands. checks are the
// tallies the screen keeps.
func New(ctx pane.Context, all []*steps.Step, st *state.State, checks *stepstate.Checks) *Model {
	m := &Model{ctx: ctx, steps: all, st: st, checks: checks}
	// An optional step that a later step went past (`run --through` passes
	// over optional steps) is not still to do.
	past := -1 // the last step done
	for i, s := range all {
		if st.Step(s.ID).Status == state.Done {
			past = i
		}
	}
	for i, s := range all {
		if r := st.Step(s.ID); r.Status != state.Done && r.Status != state.Skipped && !(s.Optional && i < past) {
			m.cursor = i
			break
		}
	}
	return m
}

// Init does nothing: the list is drawn from the state.
func (m *Model) Init() tea.Cmd { return nil }

// SetState gives the list the run's state.
func (m *Model) SetState(st *state.State) { m.st = st }

// SetRun says which step runs now.
func (m *Model) SetRun(r stepstate.Run) { m.run = r }

// SetSize gives the pane its size, title included.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// SetFocused says whether the pane has the keys.
func (m *Model) SetFocused(f bool) { m.focused = f }

// Update moves the cursor: the arrows, and g to the first step.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok || !m.focused {
		return m, nil
	}
	switch keys := m.ctx.Keys; {
	case key.Matches(k, keys.Up):
		m.Select(m.cursor - 1)
	case key.Matches(k, keys.Down):
		m.Select(m.cursor + 1)
	case key.Matches(k, keys.Top):
		m.Select(0)
	}
	return m, nil
}

// ShortHelp is the pane's keys.
func (m *Model) ShortHelp() []key.Binding {
	k := m.ctx.Keys
	return []key.Binding{k.Run, k.DryRun, k.Rehearse, k.Up, k.Down}
}

// FullHelp is the pane's keys in columns.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.ctx.Keys
	return [][]key.Binding{{k.Up, k.Down, k.Top}, {k.Run, k.DryRun, k.Rehearse, k.Skip, k.Edit, k.Add}}
}

// Select puts the cursor on step i, kept within the list.
func (m *Model) Select(i int) { m.cursor = max(0, min(i, len(m.steps)-1)) }

// Cursor is the selected step's index.
func (m *Model) Cursor() int { return m.cursor }

// Selected is the step under the cursor; nil when there are none.
func (m *Model) Selected() *steps.Step {
	if m.cursor < 0 || m.cursor >= len(m.steps) {
		return nil
	}
	return m.steps[m.cursor]
}

// Advance moves the cursor on past step id when it is on it, the usual
// next key press once a step is done; it reports whether it moved.
func (m *Model) Advance(id string) bool {
	if s := m.Selected(); s == nil || s.ID != id || m.cursor >= len(m.steps)-1 {
		return false
	}
	m.cursor++
	return true
}

// row is one row of the list: a phase's heading (step < 0) or a step.
type row struct {
	phase steps.Phase
	step  int
}

// rows groups the steps by phase, in order, and finds the cursor's row.
func (m *Model) rows() ([]row, int) {
	var rows []row
	cur := -1
	var last steps.Phase
	for i, s := range m.steps {
		if i == 0 || s.Phase != last {
			rows = append(rows, row{phase: s.Phase, step: -1})
			last = s.Phase
		}
		if i == m.cursor {
			cur = len(rows)
		}
		rows = append(rows, row{phase: s.Phase, step: i})
	}
	return rows, cur
}

// View draws the list, keeping the cursor in view.
func (m *Model) View() string {
	w, h := m.width, m.height
	if h <= 0 {
		return ""
	}
	st := m.ctx.Styles
	done := 0
	for _, s := range m.steps {
		if r := m.st.Step(s.ID); r.Status == state.Done || r.Status == state.Skipped {
			done++
		}
	}
	out := []string{m.ctx.Title(fmt.Sprintf("Runbook · %d/%d done", done, len(m.steps)), w, m.focused)}
	rows, cur := m.rows()
	hh := max(0, h-pane.TitleHeight)
	if cur >= 0 {
		if cur-1 < m.off {
			m.off = max(0, cur-1) // show the phase heading above the first step
		}
		if cur >= m.off+hh {
			m.off = cur - hh + 1
		}
	}
	m.off = max(0, min(m.off, len(rows)-hh))
	// The status column is as wide as its widest word now, so a narrow
	// pane keeps room for the step's name.
	now := m.ctx.Now()
	words := make(map[int]string, hh)
	where := map[int]string{}
	wordW := 0
	for _, r := range rows[m.off:min(len(rows), m.off+hh)] {
		if r.step >= 0 {
			s := m.steps[r.step]
			rec := stepstate.Record(m.st, s.ID, m.run)
			words[r.step] = stepstate.Word(st, s.ID, rec, m.run, now) + m.checks.Mark(st, s.ID)
			where[r.step] = stepstate.Where(rec)
			wordW = max(wordW, fit.Width(words[r.step]))
		}
	}
	idW := max(12, min(26, w-wordW-4))
	for _, r := range rows[m.off:min(len(rows), m.off+hh)] {
		if r.step < 0 {
			out = append(out, st.Phase.Render(fit.Truncate(string(r.phase), w)))
			continue
		}
		s := m.steps[r.step]
		marker := "  "
		if r.step == m.cursor {
			marker = "› "
		}
		line := marker + fit.Pad(words[r.step], wordW) + " " + fit.Pad(s.ID, idW)
		if rest := w - fit.Width(line) - 1; rest > 8 {
			if w := where[r.step]; w != "" {
				// The database it is in says more than its title.
				line += " " + st.Status(state.Running).Render(fit.Truncate(w, rest))
			} else if c := m.checks.Of(s.ID); c != nil {
				// The counts say more than the title once the checks ran.
				line += " " + m.checks.Style(st, s.ID).Render(fit.Truncate(c.Text(), rest))
			} else {
				line += " " + st.Faint.Render(fit.Truncate(s.Title, rest))
			}
		}
		if r.step == m.cursor {
			line = fit.Pad(line, w)
			if m.focused {
				line = st.Selected.Render(ansi.Strip(line))
			} else {
				line = st.Cursor.Render(ansi.Strip(line))
			}
		}
		out = append(out, fit.Truncate(line, w))
	}
	return strings.Join(out, "\n")
}
