// Package detail is the step detail pane: what the step under the runbook's
// cursor does and why, its status, result and error, its checks, the
// values it needs, whether it can run now, and its plan rendered with the
// current values, secrets redacted.
package detail

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/stepstate"
	"github.com/pgbluegreen/pgbluegreen/ui/values"
)

// Runner is what the pane asks of the runner: why a step cannot run now,
// and the values its plan is rendered with. Both read no server.
type Runner interface {
	Preconditions(id string, p steps.RunParams) string
	Env(step string) *steps.Env
}

// Model is the detail pane.
type Model struct {
	ctx    pane.Context
	runner Runner
	watch  bool
	step   *steps.Step
	st     *state.State
	run    stepstate.Run
	checks *stepstate.Checks
	// off is the first line shown.
	off           int
	focused       bool
	width, height int
	cache         cache
}

var _ pane.Component = (*Model)(nil)

// New makes the pane. runner may be nil (no plan, no readiness); watch says
// the screen runs nothing (no "ready" line); checks are the tallies the
// screen keeps.
func New(ctx pane.Context, runner Runner, watch bool, checks *stepstate.Checks) *Model {
	return &Model{ctx: ctx, runner: runner, watch: watch, checks: checks, st: &state.State{}}
}

// Init does nothing: the detail is drawn from the state.
func (m *Model) Init() tea.Cmd { return nil }

// SetStep shows step s, from its top when it is another step.
func (m *Model) SetStep(s *steps.Step) {
	if s != m.step {
		m.off = 0
	}
	m.step = s
}

// ScrollTop shows the detail from its top.
func (m *Model) ScrollTop() { m.off = 0 }

// SetState gives the pane the run's state.
func (m *Model) SetState(st *state.State) { m.st = st }

// SetRun says which step runs now.
func (m *Model) SetRun(r stepstate.Run) { m.run = r }

// SetSize gives the pane its size, title included.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// SetFocused says whether the pane has the keys.
func (m *Model) SetFocused(f bool) { m.focused = f }

// Update scrolls when the pane is focused: the arrows, and g to the top.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok || !m.focused {
		return m, nil
	}
	switch keys := m.ctx.Keys; {
	case key.Matches(k, keys.Up):
		m.off = max(0, m.off-1)
	case key.Matches(k, keys.Down):
		m.off++ // View keeps it within the lines
	case key.Matches(k, keys.Top):
		m.off = 0
	}
	return m, nil
}

// ShortHelp is the pane's keys.
func (m *Model) ShortHelp() []key.Binding {
	k := m.ctx.Keys
	return []key.Binding{k.Run, k.DryRun, k.Up, k.Down}
}

// FullHelp is the pane's keys in columns.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.ctx.Keys
	return [][]key.Binding{{k.Up, k.Down, k.Top}, {k.Run, k.DryRun, k.Rehearse, k.Edit}}
}

// cache keeps the rendered detail until the step, the state, the width or
// the running step change: building it reads the state and renders the
// plan, which a frame should not redo.
type cache struct {
	id      string
	updated time.Time
	width   int
	running string
	values  int
	checks  int
	lines   []string
}

// lines renders the step's detail, wrapped to w.
func (m *Model) lines(w int) []string {
	s := m.step
	if s == nil {
		return nil
	}
	c := &m.cache
	if c.lines != nil && c.id == s.ID && c.updated.Equal(m.st.UpdatedAt) && c.width == w && c.running == m.run.ID && c.values == len(m.st.Values) && c.checks == m.checks.Gen() {
		return c.lines
	}
	st := m.ctx.Styles
	var out []string
	add := func(text string) { out = append(out, fit.Wrap(text, w)...) }
	label := func(l string) string { return st.Label.Render(l) }
	out = append(out, st.Bold.Render(fit.Truncate(s.Title, w)))
	add(label("step ") + s.ID + label(" · target ") + string(s.Target) + label(" · source ") + orDash(s.Source))
	add(label("why ") + s.Why)
	rec := m.st.Step(s.ID)
	cur := stepstate.Record(m.st, s.ID, m.run)
	status := stepstate.Word(st, s.ID, cur, m.run, m.ctx.Now())
	if where := stepstate.Where(cur); where != "" {
		status += " · " + where
	}
	if rec.Attempts > 0 {
		status += fmt.Sprintf(" · %d attempt(s)", rec.Attempts)
	}
	if rec.FinishedAt != nil {
		status += " · finished " + m.ctx.Clock(*rec.FinishedAt)
	}
	add(label("status ") + status)
	if rec.Result != "" {
		add(label("result ") + state.Redact(rec.Result))
	}
	if rec.LastError != "" {
		add(st.Fail.Render("error ") + state.Redact(rec.LastError))
	}
	if ch := m.checks.Of(s.ID); ch != nil {
		add(label("checks ") + m.checks.Style(st, s.ID).Render(ch.Text()))
		for _, l := range ch.Lines {
			add(m.checks.Style(st, s.ID).Render(l))
		}
	}
	if len(s.Needs) > 0 {
		var parts []string
		for _, k := range s.Needs {
			if v, ok := m.st.Get(k); ok && v != "" {
				parts = append(parts, k+" = "+values.Display(k, v))
			} else {
				parts = append(parts, st.Warn.Render(k+" (missing: e edits)"))
			}
		}
		add(label("needs ") + strings.Join(parts, ", "))
	}
	if len(s.Records) > 0 {
		add(label("records ") + strings.Join(s.Records, ", "))
	}
	if s.Destructive {
		add(st.Warn.Render("⚠ destructive: asks for the database's name before it runs"))
	}
	if m.runner != nil && m.run.ID != s.ID && rec.Status != state.Done {
		if why := m.runner.Preconditions(s.ID, steps.RunParams{Confirmed: true}); why != "" {
			add(st.Warn.Render("cannot run now: ") + why)
		} else if !m.watch {
			add(st.OK.Render("ready: enter runs it, p prints its plan"))
		}
	}
	if m.runner != nil {
		out = append(out, label("plan (current values, secrets redacted):"))
		for _, a := range s.OfflinePlan(m.runner.Env(s.ID)) {
			add(st.Faint.Render(fmt.Sprintf("[%s %s]", a.Target, a.Kind)) + " " + a.Text)
		}
	}
	*c = cache{id: s.ID, updated: m.st.UpdatedAt, width: w, running: m.run.ID, values: len(m.st.Values), checks: m.checks.Gen(), lines: out}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// indent is the margin left of the detail's lines.
const indent = " "

// View draws the detail, scrolled, exactly the pane's size.
func (m *Model) View() string {
	w, h := m.width, m.height
	if h <= 0 {
		return ""
	}
	lines := m.lines(max(10, w-fit.Width(indent)))
	hh := h - pane.TitleHeight
	m.off = max(0, min(m.off, len(lines)-hh))
	t := "Step detail"
	if len(lines) > hh {
		t += fmt.Sprintf(" · lines %d-%d of %d", m.off+1, min(len(lines), m.off+hh), len(lines))
	}
	out := []string{m.ctx.Title(t, w, m.focused)}
	for _, l := range lines[m.off:min(len(lines), m.off+hh)] {
		out = append(out, fit.Truncate(indent+l, w))
	}
	return strings.Join(fit.Fill(out, h), "\n")
}
