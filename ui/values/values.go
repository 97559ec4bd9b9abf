// Package values is the values table: every value a step or the operator
// recorded, with who recorded it; secrets are never shown.
package values

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
)

// Model is the values pane.
type Model struct {
	ctx           pane.Context
	st            *state.State
	cursor        int
	focused       bool
	width, height int
}

var _ pane.Component = (*Model)(nil)

// New makes the pane; SetState gives it the values.
func New(ctx pane.Context) *Model { return &Model{ctx: ctx, st: &state.State{}} }

// Init does nothing: the values come with the state.
func (m *Model) Init() tea.Cmd { return nil }

// SetState gives the pane the run's state, whose values it shows.
func (m *Model) SetState(st *state.State) { m.st = st }

// SetSize gives the pane its size, title included.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// SetFocused says whether the pane has the keys.
func (m *Model) SetFocused(f bool) { m.focused = f }

// Update moves the cursor: the arrows, and g to the top.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok || !m.focused {
		return m, nil
	}
	switch keys := m.ctx.Keys; {
	case key.Matches(k, keys.Up):
		m.move(-1)
	case key.Matches(k, keys.Down):
		m.move(1)
	case key.Matches(k, keys.Top):
		m.cursor = 0
	}
	return m, nil
}

func (m *Model) move(d int) { m.cursor = max(0, min(m.cursor+d, len(m.st.Values)-1)) }

// ShortHelp is the pane's keys.
func (m *Model) ShortHelp() []key.Binding {
	k := m.ctx.Keys
	return []key.Binding{k.Edit, k.Add, k.Up, k.Down}
}

// FullHelp is the pane's keys in columns.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.ctx.Keys
	return [][]key.Binding{{k.Up, k.Down, k.Top}, {k.Edit, k.Add}}
}

// Selected is the name of the value under the cursor; false when there is
// none.
func (m *Model) Selected() (string, bool) {
	keys := m.st.ValueKeys()
	if len(keys) == 0 {
		return "", false
	}
	return keys[max(0, min(m.cursor, len(keys)-1))], true
}

// View draws the table, keeping the cursor in view.
func (m *Model) View() string {
	w, h := m.width, m.height
	if h <= 0 {
		return ""
	}
	st := m.ctx.Styles
	keys := m.st.ValueKeys()
	out := []string{m.ctx.Title(fmt.Sprintf("Values · %d", len(keys)), w, m.focused)}
	hh := h - pane.TitleHeight
	if len(keys) == 0 {
		out = append(out, st.Faint.Render(" none recorded yet (a adds one)"))
		return strings.Join(fit.Fill(out, h), "\n")
	}
	m.cursor = max(0, min(m.cursor, len(keys)-1))
	off := max(0, m.cursor-hh+1)
	keyW := 8
	for _, k := range keys {
		keyW = max(keyW, len(k))
	}
	keyW = min(keyW, 28)
	for i := off; i < len(keys) && i < off+hh; i++ {
		k := keys[i]
		v := m.st.Values[k]
		marker := "  "
		if i == m.cursor && m.focused {
			marker = "› "
		}
		line := marker + fit.Pad(k, keyW) + " " + strings.Join(strings.Fields(Display(k, v.Value)), " ")
		by := st.Faint.Render(" (" + v.RecordedBy + ")")
		if room := w - fit.Width(by); fit.Width(line) < room {
			line += by
		}
		if i == m.cursor && m.focused {
			line = st.Selected.Render(ansi.Strip(fit.Pad(line, w)))
		}
		out = append(out, fit.Truncate(line, w))
	}
	return strings.Join(fit.Fill(out, h), "\n")
}

// IsSecret says whether a value's name says it holds a secret. An ARN
// names a secret without being one, so it is shown.
func IsSecret(k string) bool {
	k = strings.ToLower(k)
	if strings.HasSuffix(k, "_arn") || strings.HasSuffix(k, "arn") {
		return false
	}
	for _, w := range []string{"password", "passwd", "secret", "token", "private_key"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// Display is what the screen shows of a value: never a secret.
func Display(k, v string) string {
	if IsSecret(k) {
		return state.Mask
	}
	return state.Redact(v)
}
