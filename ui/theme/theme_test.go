package theme

import (
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/pgbluegreen/pgbluegreen/state"
)

// TestSymbolsAndBrushes: every status has a symbol of its own; a brush
// paints what its style renders, and nothing without colour.
func TestSymbolsAndBrushes(t *testing.T) {
	seen := map[string]state.Status{}
	for _, s := range []state.Status{state.Pending, state.Running, state.Done, state.Failed, state.Skipped, state.Interrupted} {
		if o, dup := seen[Symbol(s)]; dup {
			t.Errorf("%s and %s share %q", s, o, Symbol(s))
		}
		seen[Symbol(s)] = s
	}
	st := New()
	lipgloss.SetColorProfile(termenv.ANSI256)
	if got, want := NewBrush(st.Fail).Paint("boom"), st.Fail.Render("boom"); got != want {
		t.Errorf("brush %q, style %q", got, want)
	}
	lipgloss.SetColorProfile(termenv.Ascii)
	if got := st.Brushes().Fail.Paint("boom"); got != "boom" {
		t.Errorf("without colour: %q", got)
	}
}
