package logpane

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/uitest"
)

func TestMain(m *testing.M) {
	lipgloss.SetColorProfile(termenv.Ascii)
	os.Exit(m.Run())
}

func newLog(n int) *Model {
	m := New(pane.NewContext(func() time.Time { return time.Time{} }, time.UTC), Limit)
	for i := 0; i < n; i++ {
		m.Add(fmt.Sprintf("12:00:%02d step [blue sql] SELECT %d", i%60, i), pane.SQL)
	}
	return m
}

// TestLogView: the pane is exactly its size at two widths, the newest line
// at the bottom, a long statement cut to one row, a warning wrapped.
func TestLogView(t *testing.T) {
	m := newLog(30)
	m.Add("WARN "+strings.Repeat("the fix is spelled out here ", 4), pane.Warn)
	for _, w := range []int{40, 100} {
		m.SetSize(w, 8)
		_, lines := uitest.Lines(t, m.View(), w)
		if len(lines) != 8 {
			t.Fatalf("width %d: %d lines, want 8", w, len(lines))
		}
		if !strings.HasPrefix(lines[0], "  Log · 31 lines · following") {
			t.Errorf("title %q", lines[0])
		}
		if !strings.Contains(lines[7], "spelled out here") {
			t.Errorf("width %d: the warning is not last: %q", w, lines[7])
		}
	}
	m.SetSize(40, 8)
	if n := strings.Count(ansi.Strip(m.View()), "WARN"); n != 1 {
		t.Errorf("the warning shows %d times", n)
	}
}

// TestLogKeys: pgup scrolls back a page and the title says so, G follows
// again; the arrows scroll only when the pane is focused.
func TestLogKeys(t *testing.T) {
	m := newLog(100)
	m.SetSize(80, 10)
	m.Update(tea.KeyMsg{Type: tea.KeyPgUp})
	if !strings.Contains(m.View(), "scrolled back 8 (G follows)") {
		t.Errorf("pgup: %s", m.View())
	}
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("G")})
	if !strings.Contains(m.View(), "following") {
		t.Errorf("G did not follow")
	}
	m.Update(tea.KeyMsg{Type: tea.KeyUp})
	if strings.Contains(m.View(), "scrolled back") {
		t.Errorf("an unfocused log scrolled on up")
	}
	m.SetFocused(true)
	m.Update(tea.KeyMsg{Type: tea.KeyUp})
	if !strings.Contains(m.View(), "▶ Log · 100 lines · scrolled back 1") {
		t.Errorf("up on the focused log: %s", m.View())
	}
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("g")})
	if !strings.Contains(m.View(), "scrolled back 91") {
		t.Errorf("g did not go to the top: %s", m.View())
	}
}

// TestLogLimit: past its limit the log drops its oldest half at once.
func TestLogLimit(t *testing.T) {
	m := New(pane.NewContext(nil, time.UTC), 10)
	for i := 0; i < 11; i++ {
		m.Add(fmt.Sprint(i), pane.Info)
	}
	if got := m.Text(); !strings.HasPrefix(got, "6\n") || strings.Count(got, "\n") != 5 {
		t.Errorf("after the limit: %q", got)
	}
}
