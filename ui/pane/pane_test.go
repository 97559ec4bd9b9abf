package pane

import (
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
)

// TestTitle: a title is exactly its width at two widths, cut when it must
// be; the focused pane's has a marker and a heavier rule, so focus does
// not rest on colour.
func TestTitle(t *testing.T) {
	lipgloss.SetColorProfile(termenv.Ascii)
	c := NewContext(nil, time.UTC)
	for _, c2 := range []struct {
		w       int
		focused bool
		want    string
	}{
		{20, false, "  Log · 3 lines ────"},
		{20, true, "▶ Log · 3 lines ━━━━"},
		{10, false, "  Log · 3…"},
	} {
		got := ansi.Strip(c.Title("Log · 3 lines", c2.w, c2.focused))
		if got != c2.want || ansi.StringWidth(got) != c2.w {
			t.Errorf("width %d, focused %t: %q", c2.w, c2.focused, got)
		}
	}
	if got := c.Clock(time.Date(2026, 11, 21, 12, 0, 5, 0, time.UTC)); got != "12:00:05" {
		t.Errorf("clock %q", got)
	}
	if msg, ok := Note(Warn, "x")().(NoteMsg); !ok || msg.Level != Warn || msg.Text != "x" {
		t.Errorf("note %+v", msg)
	}
}
