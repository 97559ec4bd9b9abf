package keys

import (
	"testing"

	"github.com/charmbracelet/bubbles/help"
)

// TestHelpShowsEnabledKeysOnly: a disabled key is not offered, and the
// full help fits 80 columns with every key the screen has.
func TestHelpShowsEnabledKeysOnly(t *testing.T) {
	k := New()
	h := help.New()
	h.Width = 80
	if got := h.View(k); got == "" {
		t.Fatal("no short help")
	}
	k.Run.SetEnabled(false)
	for _, b := range k.ShortHelp() {
		if b.Enabled() && b.Help().Desc == "run step" {
			t.Errorf("a disabled key is offered")
		}
	}
	h.ShowAll = true
	if n := len(k.FullHelp()); n != 3 {
		t.Errorf("%d columns of full help, want 3", n)
	}
}
