package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
)

// A step that checks things (preflight) writes one PASS, WARN or FAIL line
// per check. At 80x24 the WARN lines scroll out of the log at once, so the
// screen keeps them: the runbook row carries the counts, the detail pane
// lists the WARN and FAIL lines. A new run of the step starts over.

// checkTally is one step's checks in its last run.
type checkTally struct {
	pass, warn, fail int
	// lines are the WARN and FAIL lines, in order.
	lines []string
}

// text is the counts: "12 pass · 1 warn".
func (c *checkTally) text() string {
	parts := []string{fmt.Sprintf("%d pass", c.pass)}
	if c.warn > 0 {
		parts = append(parts, fmt.Sprintf("%d warn", c.warn))
	}
	if c.fail > 0 {
		parts = append(parts, fmt.Sprintf("%d fail", c.fail))
	}
	return strings.Join(parts, " · ")
}

// takeEntry folds a journal entry into the checks: a step's start resets
// its tally; its PASS/WARN/FAIL lines count.
func (m *Model) takeEntry(e state.Entry) {
	switch {
	case e.Kind == "step" && strings.HasPrefix(e.Text, "start "):
		if m.checks[e.Step] != nil {
			delete(m.checks, e.Step)
			m.checksGen++
		}
	case e.Kind == "log":
		m.takeCheckLine(e.Step, e.Text)
	}
}

// takeLine folds a line of step output (no journal: the runner's Out).
func (m *Model) takeLine(l steps.Line) { m.takeCheckLine(l.Step, l.Text) }

func (m *Model) takeCheckLine(step, text string) {
	word, rest, ok := strings.Cut(text, " ")
	if !ok || step == "" || (word != "PASS" && word != "WARN" && word != "FAIL") {
		return
	}
	if m.checks == nil {
		m.checks = map[string]*checkTally{}
	}
	c := m.checks[step]
	if c == nil {
		c = &checkTally{}
		m.checks[step] = c
	}
	switch word {
	case "PASS":
		c.pass++
	case "WARN":
		c.warn++
		c.lines = append(c.lines, "⚠ WARN "+rest)
	case "FAIL":
		c.fail++
		c.lines = append(c.lines, "✗ FAIL "+rest)
	}
	m.checksGen++
}

// checkMark is what the runbook row's status word gains: the warnings and
// failures a symbol and a count, so a narrow row still says them.
func (m *Model) checkMark(id string) string {
	c := m.checks[id]
	switch {
	case c == nil:
		return ""
	case c.fail > 0:
		return fmt.Sprintf(" ✗%d", c.fail)
	case c.warn > 0:
		return fmt.Sprintf(" ⚠%d", c.warn)
	}
	return ""
}

// checkRender is checkMark styled.
func (m *Model) checkRender(id string) string {
	mark := m.checkMark(id)
	if mark == "" {
		return ""
	}
	return m.checkStyle(id).Render(mark)
}

// checkStyle is the role of a step's checks: fail, warn or ok.
func (m *Model) checkStyle(id string) lipgloss.Style {
	c := m.checks[id]
	switch {
	case c == nil:
		return m.styles.Plain
	case c.fail > 0:
		return m.styles.Fail
	case c.warn > 0:
		return m.styles.Warn
	}
	return m.styles.OK
}
