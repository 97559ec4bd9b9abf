package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"

	"github.com/pgbluegreen/pgbluegreen/ui/fit"
)

// Smallest screen the layout is drawn for.
const (
	minWidth  = 80
	minHeight = 24
)

// layout is every pane's size, from the terminal's and from what the
// footer and the lag pane measure; every subtraction is clamped at zero.
type layout struct {
	leftW, rightW                   int
	top, detail, values, gauge, log int // heights, titles included
	footer                          int
}

// layout measures the footer and the lag pane (whose height is what it
// has to say, up to a third of the screen), sizes every pane, and returns
// the sizes with the footer's and the lag pane's lines, drawn once.
func (m *Model) layout() (l layout, footer, gauge []string) {
	w, h := m.width, m.height
	footer = m.footerLines()
	l.footer = len(footer)
	body := max(0, h-l.footer)
	l.log = max(4, body/4)
	m.lag.SetScreenHeight(h)
	m.lag.SetSize(w, max(3, body/3))
	gauge = fit.Lines(m.lag.View())
	l.gauge = len(gauge)
	l.top = max(0, body-l.gauge-l.log)
	l.detail = max(0, l.top*3/5)
	l.values = max(0, l.top-l.detail)
	l.leftW = max(36, min(w*2/5, 64))
	l.rightW = max(0, w-l.leftW-fit.Width(m.separator()))

	m.log.SetSize(w, l.log)
	m.runbook.SetSize(l.leftW, l.top)
	m.detail.SetSize(l.rightW, l.detail)
	m.values.SetSize(l.rightW, l.values)
	m.conns.SetSize(w, l.top)
	return l, footer, gauge
}

// separator is the line between the runbook and the detail.
func (m *Model) separator() string { return m.ctx.Styles.Faint.Render("│") }

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
	l, footer, gauge := m.layout()
	out := make([]string, 0, h)
	if m.focus == focusConns {
		// Who is connected needs the width: it takes the top of the screen.
		for _, line := range fit.Lines(m.conns.View()) {
			out = append(out, fit.Pad(line, w))
		}
	} else {
		left := fit.Lines(m.runbook.View())
		right := append(fit.Lines(m.detail.View()), fit.Lines(m.values.View())...)
		sep := m.separator()
		for i := 0; i < l.top; i++ {
			out = append(out, fit.Pad(fit.At(left, i), l.leftW)+sep+fit.Pad(fit.At(right, i), l.rightW))
		}
	}
	out = append(out, gauge...)
	out = append(out, fit.Lines(m.log.View())...)
	for _, s := range footer {
		out = append(out, fit.Truncate(s, w))
	}
	if len(out) > h {
		out = out[:h]
	}
	return strings.Join(out, "\n")
}

// footerLines are the prompt (when open), the help and the status line.
func (m *Model) footerLines() []string {
	out := fit.Lines(m.prompt.View())
	out = append(out, strings.Split(m.help.View(m), "\n")...)
	out = append(out, fit.Lines(m.status.View())...)
	return out
}

// ShortHelp is the help line: a prompt's answers while one is open, else
// the keys that apply now.
func (m *Model) ShortHelp() []key.Binding {
	if m.prompt.Open() {
		return m.prompt.ShortHelp()
	}
	return m.keys.ShortHelp()
}

// FullHelp is the help ? shows.
func (m *Model) FullHelp() [][]key.Binding {
	if m.prompt.Open() {
		return m.prompt.FullHelp()
	}
	return m.keys.FullHelp()
}
