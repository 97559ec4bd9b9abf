// Package uitest holds what the panes' tests share. Only tests import it:
// the program does not link it (go list -deps . lists no testing).
package uitest

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
)

// Lines strips a view's colours, splits it into lines, and fails tb for
// each line wider than w cells.
func Lines(tb testing.TB, view string, w int) (got string, lines []string) {
	tb.Helper()
	got = ansi.Strip(view)
	lines = strings.Split(got, "\n")
	for _, l := range lines {
		if ansi.StringWidth(l) > w {
			tb.Errorf("width %d: a line of %d cells: %q", w, ansi.StringWidth(l), l)
		}
	}
	return got, lines
}
