package ui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/stepstate"
	"github.com/pgbluegreen/pgbluegreen/ui/values"
)

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
	if c.lines != nil && c.id == s.ID && c.updated.Equal(m.st.UpdatedAt) && c.width == w && c.running == m.running && c.values == len(m.st.Values) && c.checks == m.checks.Gen() {
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
	run := m.runInfo()
	status := stepstate.Word(st, s.ID, stepstate.Record(m.st, s.ID, run), run, m.now())
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
	*c = detailCache{id: s.ID, updated: m.st.UpdatedAt, width: w, running: m.running, values: len(m.st.Values), checks: m.checks.Gen(), lines: out}
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
