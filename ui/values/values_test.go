package values

import (
	"os"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/uitest"
)

func TestMain(m *testing.M) {
	lipgloss.SetColorProfile(termenv.Ascii)
	os.Exit(m.Run())
}

func newValues() *Model {
	st := &state.State{}
	st.Set("slot_lsn", "0/3000148", "create-slots")
	st.Set("replication_password", "hunter2", "operator")
	st.Set("secret_arn", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgbg-repl", "operator")
	m := New(pane.NewContext(nil, time.UTC))
	m.SetState(st)
	return m
}

// TestValuesView: at two widths the table is exactly its size, a secret is
// masked, an ARN shown, and who recorded a value said where it fits.
func TestValuesView(t *testing.T) {
	m := newValues()
	for _, w := range []int{40, 100} {
		m.SetSize(w, 6)
		got, lines := uitest.Lines(t, m.View(), w)
		if len(lines) != 6 {
			t.Fatalf("width %d: %d lines", w, len(lines))
		}
		if strings.Contains(got, "hunter2") || !strings.Contains(got, "replication_password ********") {
			t.Errorf("width %d: the secret is not masked:\n%s", w, got)
		}
		if !strings.Contains(got, "slot_lsn") || !strings.HasPrefix(lines[0], "  Values · 3") {
			t.Errorf("width %d:\n%s", w, got)
		}
	}
	if got := ansi.Strip(m.View()); !strings.Contains(got, "0/3000148 (create-slots)") || !strings.Contains(got, "arn:aws:secretsmanager") {
		t.Errorf("at 100 columns:\n%s", got)
	}
	m.SetState(&state.State{})
	if got := ansi.Strip(m.View()); !strings.Contains(got, "none recorded yet (a adds one)") {
		t.Errorf("empty:\n%s", got)
	}
}

// TestValuesKeys: the arrows move the cursor within the table when the pane
// is focused; Selected names the row.
func TestValuesKeys(t *testing.T) {
	m := newValues()
	m.SetSize(60, 6)
	m.Update(tea.KeyMsg{Type: tea.KeyDown})
	if k, _ := m.Selected(); k != "replication_password" {
		t.Errorf("an unfocused pane moved: %q", k)
	}
	m.SetFocused(true)
	for i := 0; i < 5; i++ {
		m.Update(tea.KeyMsg{Type: tea.KeyDown})
	}
	if k, _ := m.Selected(); k != "slot_lsn" {
		t.Errorf("after five downs: %q", k)
	}
	if !strings.Contains(ansi.Strip(m.View()), "› slot_lsn") {
		t.Errorf("the cursor is not marked:\n%s", ansi.Strip(m.View()))
	}
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("g")})
	if k, _ := m.Selected(); k != "replication_password" {
		t.Errorf("g: %q", k)
	}
	if IsSecret("secret_arn") || !IsSecret("api_token") {
		t.Errorf("IsSecret")
	}
}
