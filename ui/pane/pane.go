// Package pane is what every pane of the screen shares: the component
// contract (soft-serve's: a tea.Model that says its keys and takes its
// size), the context the screen hands each pane once, the one message a
// pane sends to the log, and the title line every pane draws.
package pane

import (
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/keys"
	"github.com/pgbluegreen/pgbluegreen/ui/theme"
)

// Component is one pane: it handles its messages, draws itself in the size
// it was given (never wider, never taller) and says which keys it takes.
type Component interface {
	tea.Model
	help.KeyMap
	// SetSize gives the pane its width and height in cells, title included.
	SetSize(width, height int)
}

// Context is what the screen hands every pane: the theme and the key map,
// each built once, and the clock (fixed in tests).
type Context struct {
	Styles theme.Styles
	// Keys is the screen's one key map; the screen enables the keys that
	// apply now, so a pane's help is always true.
	Keys     *keys.KeyMap
	Now      func() time.Time
	Location *time.Location
}

// NewContext builds the theme and the key map; now and loc default to
// time.Now and time.Local.
func NewContext(now func() time.Time, loc *time.Location) Context {
	if now == nil {
		now = time.Now
	}
	if loc == nil {
		loc = time.Local
	}
	k := keys.New()
	return Context{Styles: theme.New(), Keys: &k, Now: now, Location: loc}
}

// Clock writes a time of day in the screen's zone: 15:04:05.
func (c Context) Clock(t time.Time) string { return t.In(c.Location).Format("15:04:05") }

// Title draws a pane's title line, w cells wide; the focused pane's has a
// marker as well as a colour.
func (c Context) Title(text string, w int, focused bool) string {
	mark, rule, style := "  ", "─", c.Styles.Title
	if focused {
		mark, rule, style = "▶ ", "━", c.Styles.TitleFocused
	}
	t := fit.Truncate(mark+text+" ", w)
	return style.Render(t + strings.Repeat(rule, max(0, w-fit.Width(t))))
}

// TitleHeight is the lines a pane's title takes.
const TitleHeight = 1

// Level is how a line of the log reads: its role in the theme.
type Level uint8

// The levels of the log's lines.
const (
	Info Level = iota
	OK
	Warn
	Error
	// SQL is a statement or call the run made: faint, cut to one row.
	SQL
)

// NoteMsg is a pane's line for the log: something it saw that the operator
// should read (a drift, the end of the initial sync). The screen stamps it
// with the time.
type NoteMsg struct {
	Level Level
	Text  string
}

// Note returns the command that sends a NoteMsg.
func Note(level Level, text string) tea.Cmd {
	return func() tea.Msg { return NoteMsg{Level: level, Text: text} }
}
