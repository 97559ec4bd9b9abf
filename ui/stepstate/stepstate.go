// Package stepstate is a step's status as the screen shows it, the same in
// the runbook's list and in the step's detail: the state file's record,
// this process's running step (running before the file says so), a symbol
// and a word for each status, and the PASS/WARN/FAIL tally of a step that
// checks things.
package stepstate

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/ui/theme"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
)

// Run is the step running now, as the screen knows it.
type Run struct {
	// ID is the step running ("" for none).
	ID string
	// Dry says it is a dry run or a rehearsal: they change nothing, so the
	// step is not shown running.
	Dry bool
	// Start is when it started.
	Start time.Time
	// Spinner is the spinner's frame, shown beside this process's step.
	Spinner string
	// Watch says another instance runs it: a symbol, not the spinner.
	Watch bool
}

// Record is step id's record: this process's running step is running even
// before the state file says so.
func Record(st *state.State, id string, run Run) state.StepRecord {
	r := st.Step(id)
	if id == run.ID && r.Status != state.Running && !run.Dry {
		r.Status = state.Running
	}
	return r
}

// Word is the symbol and word of a step's status; running shows the
// spinner and the time it has run. It is short, as the runbook's status
// column is as wide as its widest word (the database a step is in is
// Where).
func Word(s theme.Styles, id string, r state.StepRecord, run Run, now time.Time) string {
	st := s.Status(r.Status)
	if r.Status != state.Running {
		return st.Render(theme.Symbol(r.Status) + " " + string(r.Status))
	}
	start := run.Start
	if id != run.ID && r.StartedAt != nil {
		start = *r.StartedAt
	}
	sym := run.Spinner
	if id != run.ID || run.Watch {
		sym = st.Render(theme.Symbol(r.Status))
	}
	return sym + " " + st.Render("running "+units.Duration(max(0, now.Sub(start))))
}

// Where is the database a running step that acts in each database is in
// ("in billing (2 of 3)"), "" for any other.
func Where(r state.StepRecord) string {
	if r.Status != state.Running || r.Database == "" {
		return ""
	}
	return "in " + r.Database
}

// A step that checks things (preflight) writes one PASS, WARN or FAIL line
// per check. At 80x24 the WARN lines scroll out of the log at once, so the
// screen keeps them: the runbook's row carries the counts, the detail
// lists the WARN and FAIL lines. A new run of the step starts over.

// Tally is one step's checks in its last run.
type Tally struct {
	Pass, Warn, Fail int
	// Lines are the WARN and FAIL lines, in order.
	Lines []string
}

// Text is the counts: "12 pass · 1 warn".
func (c *Tally) Text() string {
	parts := []string{fmt.Sprintf("%d pass", c.Pass)}
	if c.Warn > 0 {
		parts = append(parts, fmt.Sprintf("%d warn", c.Warn))
	}
	if c.Fail > 0 {
		parts = append(parts, fmt.Sprintf("%d fail", c.Fail))
	}
	return strings.Join(parts, " · ")
}

// Checks are every step's tally.
type Checks struct {
	by map[string]*Tally
	// gen changes with every change: a cache of what shows them keys on it.
	gen int
}

// Of is step id's tally; nil when it checked nothing.
func (c *Checks) Of(id string) *Tally { return c.by[id] }

// Gen changes whenever a tally does.
func (c *Checks) Gen() int { return c.gen }

// TakeEntry folds a journal entry into the checks: a step's start resets
// its tally; its PASS/WARN/FAIL lines count.
func (c *Checks) TakeEntry(e state.Entry) {
	switch {
	case e.Kind == "step" && strings.HasPrefix(e.Text, "start "):
		if c.by[e.Step] != nil {
			delete(c.by, e.Step)
			c.gen++
		}
	case e.Kind == "log":
		c.TakeLine(e.Step, e.Text)
	}
}

// TakeLine folds a line of step id's output.
func (c *Checks) TakeLine(step, text string) {
	word, rest, ok := strings.Cut(text, " ")
	if !ok || step == "" || (word != "PASS" && word != "WARN" && word != "FAIL") {
		return
	}
	if c.by == nil {
		c.by = map[string]*Tally{}
	}
	t := c.by[step]
	if t == nil {
		t = &Tally{}
		c.by[step] = t
	}
	switch word {
	case "PASS":
		t.Pass++
	case "WARN":
		t.Warn++
		t.Lines = append(t.Lines, "⚠ WARN "+rest)
	case "FAIL":
		t.Fail++
		t.Lines = append(t.Lines, "✗ FAIL "+rest)
	}
	c.gen++
}

// Mark is what a step's status word gains: the warnings and failures, a
// symbol and a count, so a narrow row still says them; "" when there are
// none.
func (c *Checks) Mark(s theme.Styles, id string) string {
	t := c.by[id]
	mark := ""
	switch {
	case t == nil:
	case t.Fail > 0:
		mark = fmt.Sprintf(" ✗%d", t.Fail)
	case t.Warn > 0:
		mark = fmt.Sprintf(" ⚠%d", t.Warn)
	}
	if mark == "" {
		return ""
	}
	return c.Style(s, id).Render(mark)
}

// Style is the role of a step's checks: fail, warn or ok.
func (c *Checks) Style(s theme.Styles, id string) lipgloss.Style {
	t := c.by[id]
	switch {
	case t == nil:
		return s.Plain
	case t.Fail > 0:
		return s.Fail
	case t.Warn > 0:
		return s.Warn
	}
	return s.OK
}
