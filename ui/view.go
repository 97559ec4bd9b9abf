package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
)

// Smallest screen the layout is drawn for.
const (
	minWidth  = 80
	minHeight = 24
)

// layout is every pane's size, computed from the terminal's and the
// footer's measured height; every subtraction is clamped at zero.
type layout struct {
	leftW, rightW                   int
	top, detail, values, gauge, log int // heights, titles included
	footer                          int
}

// layout sizes the panes for the current state.
func (m *Model) layout() layout {
	l := m.layoutFor(len(m.gaugeLines(m.width)), len(m.footerLines()))
	m.resize(l)
	return l
}

// resize gives each pane its size.
func (m *Model) resize(l layout) {
	m.log.SetSize(m.width, l.log)
	m.values.SetSize(l.rightW, l.values)
	m.runbook.SetSize(l.leftW, l.top)
	m.detail.SetSize(l.rightW, l.detail)
	m.conns.SetSize(m.width, l.top)
}

// layoutFor sizes the panes for a gauge of gaugeN lines and a footer of footerN.
func (m *Model) layoutFor(gaugeN, footerN int) layout {
	w, h := m.width, m.height
	var l layout
	l.footer = footerN
	body := max(0, h-l.footer)
	want := 1 + max(1, gaugeN)
	l.gauge = min(want, max(3, body/3))
	l.log = max(4, body/4)
	l.top = max(0, body-l.gauge-l.log)
	l.detail = max(0, l.top*3/5)
	l.values = max(0, l.top-l.detail)
	l.leftW = max(36, min(w*2/5, 64))
	l.rightW = max(0, w-l.leftW-1)
	return l
}

// View draws the screen: exactly the terminal's size, never wider.
func (m *Model) View() string {
	w, h := m.width, m.height
	if w == 0 || h == 0 {
		return ""
	}
	m.compose()
	if w < minWidth || h < minHeight {
		return fit.Truncate(fmt.Sprintf("terminal too small (%dx%d): pgbluegreen needs at least %dx%d", w, h, minWidth, minHeight), w)
	}
	if m.brush == nil {
		m.brush = m.styles.Brushes()
	}
	gauge := m.gaugeLines(w)
	footer := m.footerLines()
	l := m.layoutFor(len(gauge), len(footer))
	m.resize(l)
	out := make([]string, 0, h)

	if m.focus == focusConns {
		// Who is connected needs the width: it takes the top of the screen.
		for _, line := range fit.Lines(m.conns.View()) {
			out = append(out, fit.Pad(line, w))
		}
	} else {
		left := fit.Lines(m.runbook.View())
		right := append(fit.Lines(m.detail.View()), fit.Lines(m.values.View())...)
		sep := m.styles.Faint.Render("│")
		for i := 0; i < l.top; i++ {
			out = append(out, fit.Pad(fit.At(left, i), l.leftW)+sep+fit.Pad(fit.At(right, i), l.rightW))
		}
	}
	out = append(out, m.title(m.gaugeTitle(), w, false))
	// gaugeLines fits its lines to w itself: measuring them again here
	// would double the cost of a frame.
	out = append(out, fit.Fill(m.clipGauge(gauge, l.gauge-1), l.gauge-1)...)
	out = append(out, fit.Lines(m.log.View())...)
	for _, s := range footer {
		out = append(out, fit.Truncate(s, w))
	}
	if len(out) > h {
		out = out[:h]
	}
	return strings.Join(out, "\n")
}

// title draws a pane's title line; the focused pane's has a marker as well
// as a colour.
func (m *Model) title(text string, w int, focused bool) string {
	mark, rule, style := "  ", "─", m.styles.Title
	if focused {
		mark, rule, style = "▶ ", "━", m.styles.TitleFocused
	}
	t := fit.Truncate(mark+text+" ", w)
	return style.Render(t + strings.Repeat(rule, max(0, w-fit.Width(t))))
}

// footerLines are the prompt (when open), the help and the status line.
func (m *Model) footerLines() []string {
	var out []string
	if p := m.promptLine(); p != "" {
		out = append(out, strings.Split(p, "\n")...)
		if m.promptErr != "" {
			out = append(out, m.styles.Fail.Render("✗ "+m.promptErr))
		}
	}
	out = append(out, strings.Split(m.help.View(m), "\n")...)
	out = append(out, fit.Lines(m.status.View())...)
	return out
}

// promptLine is the open prompt, or "".
func (m *Model) promptLine() string {
	st := m.styles
	switch m.prompt {
	case promptConfirm:
		what := m.confirmID + " is destructive"
		if m.way != "" {
			what = fmt.Sprintf("%s's way out, %s, changes the servers", m.confirmID, m.wayWords(m.way))
		}
		// Two lines, so the field stays on screen at 80 columns.
		return st.Warn.Render(fmt.Sprintf("⚠ %s: type the database's name (%s) to run it", what, m.p.Database)) +
			"\n" + st.Bold.Render("database name: ") + m.input.View()
	case promptWays:
		return strings.Join(m.waysLines(m.width), "\n")
	case promptTerminate:
		return st.Warn.Render(fmt.Sprintf("⚠ end session pid %d on %s (%s): type the database's name (%s)", m.kill.PID, m.kill.Server, m.kill.Who(), m.p.Database)) +
			"\n" + st.Bold.Render("database name: ") + m.input.View()
	case promptKey:
		return st.Bold.Render("New value's name: ") + m.input.View()
	case promptValue:
		what := ""
		if t, ok := steps.ValueTypeOf(m.editKey); ok {
			what = " (" + t.Name + ", e.g. " + t.Example + ")"
		}
		return st.Bold.Render(fmt.Sprintf("Value of %s%s: ", m.editKey, what)) + m.input.View()
	case promptReason:
		return st.Bold.Render(fmt.Sprintf("Why set %s = %s: ", m.editKey, m.editValue)) + m.input.View()
	case promptSkip:
		return st.Bold.Render(fmt.Sprintf("Skip %s because: ", m.confirmID)) + m.input.View()
	case promptQuit:
		return st.Warn.Render(fmt.Sprintf("⚠ %s is running. Quit and cancel it? Its state will say interrupted. [y/N]", m.running))
	}
	return ""
}

// ShortHelp is the help line: a prompt's answers while one is open, else
// the keys that apply now.
func (m *Model) ShortHelp() []key.Binding {
	if m.prompt != promptNone {
		return m.keys.Prompt()
	}
	return m.keys.ShortHelp()
}

// FullHelp is the help ? shows.
func (m *Model) FullHelp() [][]key.Binding {
	if m.prompt != promptNone {
		return [][]key.Binding{m.keys.Prompt()}
	}
	return m.keys.FullHelp()
}
