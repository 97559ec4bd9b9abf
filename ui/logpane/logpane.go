// Package logpane is the log of the run: step output, the statements the
// run executed as the journal has them, and the screen's own notes; newest
// at the bottom, following new lines unless scrolled back.
package logpane

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/theme"
)

// Limit is how many lines the log keeps by default.
const Limit = 20000

type line struct {
	text  string
	level pane.Level
}

// Model is the log pane. Only the visible lines are drawn, so 10,000 lines
// cost no more per frame than 20.
type Model struct {
	ctx   pane.Context
	lines []line
	limit int
	// back is how many lines the view is scrolled back from the bottom;
	// 0 follows new lines.
	back          int
	focused       bool
	width, height int
	brush         *theme.Brushes // made on first View
}

var _ pane.Component = (*Model)(nil)

// New makes an empty log that keeps about limit lines.
func New(ctx pane.Context, limit int) *Model { return &Model{ctx: ctx, limit: limit} }

// Init does nothing: the log is fed.
func (m *Model) Init() tea.Cmd { return nil }

// SetSize gives the pane its size, title included.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// SetFocused says whether the pane has the keys.
func (m *Model) SetFocused(f bool) { m.focused = f }

// Update scrolls: pgup, pgdn and G (follow) wherever the focus is, the
// arrows and g (the top) when the pane is focused.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	keys, rows := m.ctx.Keys, m.height-pane.TitleHeight
	switch {
	case key.Matches(k, keys.Follow):
		m.back = 0
	case key.Matches(k, keys.PageUp):
		m.scroll(max(1, rows-1), rows)
	case key.Matches(k, keys.PageDn):
		m.scroll(-max(1, rows-1), rows)
	case !m.focused:
	case key.Matches(k, keys.Up):
		m.scroll(1, max(1, rows))
	case key.Matches(k, keys.Down):
		m.scroll(-1, max(1, rows))
	case key.Matches(k, keys.Top):
		m.scroll(len(m.lines), max(1, rows))
	}
	return m, nil
}

// ShortHelp is the pane's keys.
func (m *Model) ShortHelp() []key.Binding {
	k := m.ctx.Keys
	return []key.Binding{k.Up, k.Down, k.PageUp, k.PageDn, k.Follow}
}

// FullHelp is the pane's keys in columns.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.ctx.Keys
	return [][]key.Binding{{k.Up, k.Down, k.Top}, {k.PageUp, k.PageDn, k.Follow}}
}

// Add appends a line; a multi-line text becomes several lines. Past the
// limit the oldest half is dropped at once (amortised, not per line).
func (m *Model) Add(text string, level pane.Level) {
	for _, s := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		m.lines = append(m.lines, line{text: strings.ReplaceAll(s, "\t", "    "), level: level})
		if m.back > 0 {
			m.back++ // stay on the lines the reader is looking at
		}
	}
	if len(m.lines) > m.limit {
		drop := len(m.lines) - m.limit/2
		m.lines = append(m.lines[:0], m.lines[drop:]...)
	}
}

// Text is the whole log, a line each.
func (m *Model) Text() string {
	var b strings.Builder
	for _, l := range m.lines {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

// scroll moves the view by n lines (positive: back in time) for h rows.
func (m *Model) scroll(n, h int) {
	m.back = max(0, min(m.back+n, len(m.lines)-h))
}

// View draws the title and the newest lines that fit, exactly the pane's
// size.
func (m *Model) View() string {
	if m.height <= 0 {
		return ""
	}
	rows := m.height - pane.TitleHeight
	out := append([]string{m.ctx.Title(m.title(), m.width, m.focused)}, fit.Fill(m.rows(m.width, rows), rows)...)
	return strings.Join(out, "\n")
}

func (m *Model) title() string {
	t := fmt.Sprintf("Log · %d lines", len(m.lines))
	if m.back > 0 {
		t += fmt.Sprintf(" · scrolled back %d (G follows)", m.back)
	} else {
		t += " · following"
	}
	return t
}

// rows renders h rows of width w, newest at the bottom. Warnings and
// errors are wrapped (up to four rows) so their fix is readable; other
// lines, statements mostly, are cut to one row.
func (m *Model) rows(w, h int) []string {
	if m.brush == nil {
		m.brush = m.ctx.Styles.Brushes()
	}
	br := m.brush
	end := len(m.lines) - m.back
	rev := make([]string, 0, h+4)
	for i := end - 1; i >= 0 && len(rev) < h; i-- {
		ln := m.lines[i]
		var rows []string
		var style theme.Brush
		switch ln.level {
		case pane.Error:
			style = br.Fail
		case pane.Warn:
			style = br.Warn
		case pane.OK:
			style = br.OK
		case pane.SQL:
			style = br.Faint
		}
		if ln.level == pane.Error || ln.level == pane.Warn {
			rows = fit.Wrap(ln.text, w)
			if len(rows) > 4 {
				rows = append(rows[:3:3], fit.Truncate(strings.Join(rows[3:], " "), w))
			}
		} else {
			rows = []string{fit.Truncate(ln.text, w)}
		}
		for j := len(rows) - 1; j >= 0; j-- {
			rev = append(rev, style.Paint(rows[j]))
		}
	}
	if len(rev) > h {
		rev = rev[:h]
	}
	out := make([]string, len(rev))
	for i, r := range rev {
		out[len(rev)-1-i] = r
	}
	return out
}

// LevelOf maps a step's line level to the log's.
func LevelOf(l string) pane.Level {
	switch l {
	case "warn":
		return pane.Warn
	case "error":
		return pane.Error
	case "sql", "api", "plan":
		return pane.SQL
	}
	return pane.Info
}

// EntryLevel maps a journal entry to the log's level.
func EntryLevel(e state.Entry) pane.Level {
	switch {
	case e.Error != "" || e.Outcome == "error" || e.Outcome == "failed" || e.Outcome == state.OutcomeUnreadable:
		return pane.Error
	case e.Outcome == "warn" || e.Outcome == "refused" || e.Outcome == "interrupted":
		return pane.Warn
	case e.Outcome == "done":
		return pane.OK
	case e.Kind == "sql" || e.Kind == "api":
		return pane.SQL
	}
	return pane.Info
}
