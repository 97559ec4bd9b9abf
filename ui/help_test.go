package ui

import (
	"strings"
	"testing"
)

// TestFullHelpFitsEightyColumns: at the smallest supported size the full
// help shows every binding, quit included, uncut.
func TestFullHelpFitsEightyColumns(t *testing.T) {
	h, _ := flowModel(t, nil)
	h.send(tea_WindowSize(80, 24))
	h.key("?")
	screen := h.screen()
	for _, want := range []string{"run step", "dry run", "skip step", "edit value", "log back", "follow log", "quit"} {
		if !strings.Contains(screen, want) {
			t.Errorf("full help at 80x24 lacks %q:\n%s", want, screen)
		}
	}
	for _, line := range strings.Split(screen, "\n") {
		if strings.Contains(line, "log back") && strings.HasSuffix(strings.TrimRight(line, " "), "…") {
			t.Errorf("full help cut at 80 columns: %q", line)
		}
	}
}
