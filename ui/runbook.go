package ui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/theme"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
	"github.com/pgbluegreen/pgbluegreen/ui/values"
)

// listRow is one row of the runbook list: a phase's heading (step < 0) or a step.
type listRow struct {
	phase steps.Phase
	step  int
}

// rows groups the steps by phase, in order.
func (m *Model) rows() ([]listRow, int) {
	var rows []listRow
	cur := -1
	var last steps.Phase
	for i, s := range m.p.Steps {
		if i == 0 || s.Phase != last {
			rows = append(rows, listRow{phase: s.Phase, step: -1})
			last = s.Phase
		}
		if i == m.cursor {
			cur = len(rows)
		}
		rows = append(rows, listRow{phase: s.Phase, step: i})
	}
	return rows, cur
}

// stepStatus is a step's status as the screen knows it: this process's
// running step is running even before the state file says so.
func (m *Model) stepStatus(id string) state.StepRecord {
	r := m.st.Step(id)
	if id == m.running && r.Status != state.Running && !m.runDry {
		r.Status = state.Running
	}
	return r
}

// statusWord is the symbol and word of a status; running shows the spinner
// and the time it has run.
func (m *Model) statusWord(id string, r state.StepRecord) string {
	st := m.styles.Status(r.Status)
	switch r.Status {
	case state.Running:
		start := m.runStart
		if id != m.running && r.StartedAt != nil {
			start = *r.StartedAt
		}
		sym := m.spinner.View()
		if id != m.running || m.p.Watch {
			sym = st.Render(theme.Symbol(r.Status))
		}
		return sym + " " + st.Render(fmt.Sprintf("running %s", units.Duration(max(0, m.now().Sub(start)))))
	default:
		return st.Render(theme.Symbol(r.Status) + " " + string(r.Status))
	}
}

// runbookPane draws the step list, keeping the cursor in view.
func (m *Model) runbookPane(w, h int) []string {
	st := m.styles
	done := 0
	for _, s := range m.p.Steps {
		if r := m.st.Step(s.ID); r.Status == state.Done || r.Status == state.Skipped {
			done++
		}
	}
	out := []string{m.title(fmt.Sprintf("Runbook · %d/%d done", done, len(m.p.Steps)), w, m.focus == focusSteps)}
	rows, cur := m.rows()
	hh := max(0, h-1)
	if cur >= 0 {
		if cur-1 < m.listOff {
			m.listOff = max(0, cur-1) // show the phase heading above the first step
		}
		if cur >= m.listOff+hh {
			m.listOff = cur - hh + 1
		}
	}
	m.listOff = max(0, min(m.listOff, len(rows)-hh))
	// The status column is as wide as its widest word now, so a narrow
	// pane keeps room for the step's name.
	words := make(map[int]string, hh)
	wordW := 0
	for _, r := range rows[m.listOff:min(len(rows), m.listOff+hh)] {
		if r.step >= 0 {
			s := m.p.Steps[r.step]
			words[r.step] = m.statusWord(s.ID, m.stepStatus(s.ID)) + m.checkRender(s.ID)
			wordW = max(wordW, fit.Width(words[r.step]))
		}
	}
	idW := max(12, min(26, w-wordW-4))
	for _, r := range rows[m.listOff:min(len(rows), m.listOff+hh)] {
		if r.step < 0 {
			out = append(out, st.Phase.Render(fit.Truncate(string(r.phase), w)))
			continue
		}
		s := m.p.Steps[r.step]
		marker := "  "
		if r.step == m.cursor {
			marker = "› "
		}
		word := fit.Pad(words[r.step], wordW)
		line := marker + word + " " + fit.Pad(s.ID, idW)
		if rest := w - fit.Width(line) - 1; rest > 8 {
			if c := m.checks[s.ID]; c != nil {
				// The counts say more than the title once the checks ran.
				line += " " + m.checkStyle(s.ID).Render(fit.Truncate(c.text(), rest))
			} else {
				line += " " + st.Faint.Render(fit.Truncate(s.Title, rest))
			}
		}
		if r.step == m.cursor {
			line = fit.Pad(line, w)
			if m.focus == focusSteps {
				line = st.Selected.Render(ansi.Strip(line))
			} else {
				line = st.Cursor.Render(ansi.Strip(line))
			}
		}
		out = append(out, line)
	}
	return out
}

// detailCache keeps the rendered detail of the cursor's step until the step,
// the state, the width or the running step change: building it reads the
// state and renders the plan, which a frame should not redo.
type detailCache struct {
	id      string
	updated time.Time
	width   int
	running string
	values  int
	checks  int
	lines   []string
}

// detailLines renders the selected step's detail, wrapped to w.
func (m *Model) detailLines(w int) []string {
	s := m.selected()
	if s == nil {
		return nil
	}
	c := &m.detail
	if c.lines != nil && c.id == s.ID && c.updated.Equal(m.st.UpdatedAt) && c.width == w && c.running == m.running && c.values == len(m.st.Values) && c.checks == m.checksGen {
		return c.lines
	}
	st := m.styles
	var out []string
	add := func(text string) {
		for _, l := range strings.Split(ansi.Hardwrap(ansi.Wordwrap(text, w, " "), w, true), "\n") {
			out = append(out, l)
		}
	}
	label := func(l string) string { return st.Label.Render(l) }
	out = append(out, st.Bold.Render(fit.Truncate(s.Title, w)))
	add(label("step ") + s.ID + label(" · target ") + string(s.Target) + label(" · source ") + orDash(s.Source))
	add(label("why ") + s.Why)
	rec := m.st.Step(s.ID)
	status := m.statusWord(s.ID, m.stepStatus(s.ID))
	if rec.Attempts > 0 {
		status += fmt.Sprintf(" · %d attempt(s)", rec.Attempts)
	}
	if rec.FinishedAt != nil {
		status += " · finished " + rec.FinishedAt.In(m.p.Location).Format("15:04:05")
	}
	add(label("status ") + status)
	if rec.Result != "" {
		add(label("result ") + state.Redact(rec.Result))
	}
	if rec.LastError != "" {
		add(st.Fail.Render("error ") + state.Redact(rec.LastError))
	}
	if ch := m.checks[s.ID]; ch != nil {
		add(label("checks ") + m.checkStyle(s.ID).Render(ch.text()))
		for _, l := range ch.lines {
			add(m.checkStyle(s.ID).Render(l))
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
	if m.p.Runner != nil && m.running != s.ID && rec.Status != state.Done {
		if why := m.p.Runner.Preconditions(s.ID, steps.RunParams{Confirmed: true}); why != "" {
			add(st.Warn.Render("cannot run now: ") + why)
		} else if !m.p.Watch {
			add(st.OK.Render("ready: enter runs it, p prints its plan"))
		}
	}
	if m.p.Runner != nil {
		out = append(out, label("plan (current values, secrets redacted):"))
		for _, a := range s.OfflinePlan(m.p.Runner.Env(s.ID)) {
			add(st.Faint.Render(fmt.Sprintf("[%s %s]", a.Target, a.Kind)) + " " + a.Text)
		}
	}
	*c = detailCache{id: s.ID, updated: m.st.UpdatedAt, width: w, running: m.running, values: len(m.st.Values), checks: m.checksGen, lines: out}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// detailPane draws the detail of the cursor's step, scrollable when focused.
func (m *Model) detailPane(w, h int) []string {
	if h <= 0 {
		return nil
	}
	lines := m.detailLines(max(10, w-1))
	hh := h - 1
	m.detailOff = max(0, min(m.detailOff, len(lines)-hh))
	t := "Step detail"
	if len(lines) > hh {
		t += fmt.Sprintf(" · lines %d-%d of %d", m.detailOff+1, min(len(lines), m.detailOff+hh), len(lines))
	}
	out := []string{m.title(t, w, m.focus == focusDetail)}
	for _, l := range lines[m.detailOff:min(len(lines), m.detailOff+hh)] {
		out = append(out, " "+l)
	}
	return fit.Fill(out, h)
}
