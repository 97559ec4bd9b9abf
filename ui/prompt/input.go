package prompt

import (
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/pgbluegreen/pgbluegreen/ui/theme"
)

// lineInput is a one-line text field. bubbles/textinput would do, but it
// pulls in a clipboard module this project does not carry; a prompt for a
// value or a database name needs none of that.
type lineInput struct {
	value       []rune
	pos         int
	Placeholder string
	limit       int
	cursor      lipgloss.Style
	faint       lipgloss.Style
}

func newLineInput(s theme.Styles) lineInput {
	return lineInput{limit: 400, cursor: s.Selected, faint: s.Faint}
}

// Reset empties the field.
func (l *lineInput) Reset() { l.value, l.pos = nil, 0 }

// SetValue replaces the text and puts the cursor at its end.
func (l *lineInput) SetValue(s string) {
	l.value = []rune(s)
	if len(l.value) > l.limit {
		l.value = l.value[:l.limit]
	}
	l.pos = len(l.value)
}

// Value returns the text.
func (l lineInput) Value() string { return string(l.value) }

// Update edits the text for one key.
func (l *lineInput) Update(msg tea.KeyMsg) {
	switch msg.Type {
	case tea.KeyRunes, tea.KeySpace:
		r := msg.Runes
		if msg.Type == tea.KeySpace {
			r = []rune{' '}
		}
		if len(l.value)+len(r) > l.limit {
			return
		}
		v := append([]rune{}, l.value[:l.pos]...)
		v = append(v, r...)
		l.value = append(v, l.value[l.pos:]...)
		l.pos += len(r)
	case tea.KeyBackspace:
		if l.pos > 0 {
			l.value = append(l.value[:l.pos-1], l.value[l.pos:]...)
			l.pos--
		}
	case tea.KeyDelete:
		if l.pos < len(l.value) {
			l.value = append(l.value[:l.pos], l.value[l.pos+1:]...)
		}
	case tea.KeyLeft:
		l.pos = max(0, l.pos-1)
	case tea.KeyRight:
		l.pos = min(len(l.value), l.pos+1)
	case tea.KeyHome, tea.KeyCtrlA:
		l.pos = 0
	case tea.KeyEnd, tea.KeyCtrlE:
		l.pos = len(l.value)
	case tea.KeyCtrlU:
		l.value, l.pos = l.value[l.pos:], 0
	}
}

// View draws the text with the cursor.
func (l lineInput) View() string {
	if len(l.value) == 0 {
		return l.cursor.Render(" ") + l.faint.Render(l.Placeholder)
	}
	before, cur, after := string(l.value[:l.pos]), " ", ""
	if l.pos < len(l.value) {
		cur, after = string(l.value[l.pos]), string(l.value[l.pos+1:])
	}
	return before + l.cursor.Render(cur) + after
}
