// Package theme is the screen's one set of styles: semantic roles (ok,
// warn, fail, faint, selected…) built once, so no pane holds a colour of
// its own, and the symbols that say a status without colour.
package theme

import (
	"strings"

	"github.com/charmbracelet/lipgloss"

	"github.com/pgbluegreen/pgbluegreen/state"
)

// Styles are the semantic roles every pane draws with. Panes hold no colour
// of their own, so NO_COLOR (lipgloss drops colour then) and a light or dark
// terminal change one place. Colour is never the only signal: statuses carry
// a symbol and a word, focus a marker, warnings words.
type Styles struct {
	OK, Warn, Fail, Faint, Running lipgloss.Style
	// Plain is text with no role.
	Plain lipgloss.Style
	// Selected is the cursor's row in the focused pane; Cursor its row when
	// the pane is not focused.
	Selected, Cursor lipgloss.Style
	// Title is a pane's title, TitleFocused the focused pane's.
	Title, TitleFocused lipgloss.Style
	Phase, Label, Bold  lipgloss.Style
	// Loud is a banner that must not be missed (a slot about to be lost).
	Loud lipgloss.Style
}

// New builds the theme once; adaptive colours suit light and dark terminals.
func New() Styles {
	green := lipgloss.AdaptiveColor{Light: "#1a7f37", Dark: "#3fb950"}
	yellow := lipgloss.AdaptiveColor{Light: "#9a6700", Dark: "#d29922"}
	red := lipgloss.AdaptiveColor{Light: "#cf222e", Dark: "#f85149"}
	blue := lipgloss.AdaptiveColor{Light: "#0969da", Dark: "#58a6ff"}
	faint := lipgloss.AdaptiveColor{Light: "#6e7781", Dark: "#8b949e"}
	return Styles{
		Plain:        lipgloss.NewStyle(),
		OK:           lipgloss.NewStyle().Foreground(green),
		Warn:         lipgloss.NewStyle().Foreground(yellow).Bold(true),
		Fail:         lipgloss.NewStyle().Foreground(red).Bold(true),
		Faint:        lipgloss.NewStyle().Foreground(faint),
		Running:      lipgloss.NewStyle().Foreground(blue).Bold(true),
		Selected:     lipgloss.NewStyle().Reverse(true),
		Cursor:       lipgloss.NewStyle().Bold(true),
		Title:        lipgloss.NewStyle().Foreground(faint),
		TitleFocused: lipgloss.NewStyle().Foreground(blue).Bold(true),
		Phase:        lipgloss.NewStyle().Bold(true).Underline(true),
		Label:        lipgloss.NewStyle().Foreground(faint),
		Bold:         lipgloss.NewStyle().Bold(true),
		Loud:         lipgloss.NewStyle().Foreground(lipgloss.Color("#ffffff")).Background(red).Bold(true),
	}
}

// Brush applies a style by its escape sequences alone. lipgloss's Render
// measures every line it styles, which is most of a frame's cost for long
// runs of block characters (bars, sparklines) and log rows; a brush is for
// such one-line, already-fitted text in the hot paths.
type Brush struct{ pre, post string }

// NewBrush takes a style's opening and closing sequences from rendering one
// letter. Only for styles without padding, margins or width.
func NewBrush(st lipgloss.Style) Brush {
	out := st.Render("X")
	i := strings.Index(out, "X")
	if i < 0 {
		return Brush{}
	}
	return Brush{pre: out[:i], post: out[i+1:]}
}

// Paint styles one line.
func (b Brush) Paint(s string) string {
	if s == "" || (b.pre == "" && b.post == "") {
		return s
	}
	return b.pre + s + b.post
}

// Brushes are the brushes of the roles used in hot paths. A pane makes them
// on its first View, so the colour profile (NO_COLOR) is known by then.
type Brushes struct {
	OK, Warn, Fail, Faint Brush
}

// Brushes makes the hot paths' brushes.
func (s Styles) Brushes() *Brushes {
	return &Brushes{OK: NewBrush(s.OK), Warn: NewBrush(s.Warn), Fail: NewBrush(s.Fail), Faint: NewBrush(s.Faint)}
}

// Symbol gives every status a symbol of its own, so a list reads the same
// without colour.
func Symbol(s state.Status) string {
	switch s {
	case state.Done:
		return "✓"
	case state.Failed:
		return "✗"
	case state.Skipped:
		return "↷"
	case state.Interrupted:
		return "!"
	case state.Running:
		return "●"
	default:
		return "○"
	}
}

// Status maps a status to its role.
func (s Styles) Status(st state.Status) lipgloss.Style {
	switch st {
	case state.Done:
		return s.OK
	case state.Failed, state.Interrupted:
		return s.Fail
	case state.Running:
		return s.Running
	case state.Skipped:
		return s.Faint
	default:
		return s.Plain
	}
}
