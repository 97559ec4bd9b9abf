package prompt

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
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/uitest"
)

func TestMain(m *testing.M) {
	lipgloss.SetColorProfile(termenv.Ascii)
	os.Exit(m.Run())
}

func newPrompt() *Model { return New(pane.NewContext(nil, time.UTC), "app") }

// press sends keys: "enter", "esc", "ctrl+c", or runes typed one by one;
// it returns what the last key sent up.
func press(m *Model, keys ...string) tea.Msg {
	var cmd tea.Cmd
	for _, k := range keys {
		switch k {
		case "enter":
			_, cmd = m.Update(tea.KeyMsg{Type: tea.KeyEnter})
		case "esc":
			_, cmd = m.Update(tea.KeyMsg{Type: tea.KeyEsc})
		case "ctrl+c":
			_, cmd = m.Update(tea.KeyMsg{Type: tea.KeyCtrlC})
		default:
			for _, r := range k {
				_, cmd = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
			}
		}
	}
	if cmd == nil {
		return nil
	}
	return cmd()
}

// TestWaysView: the ways out, wrapped at two widths with the key standing
// alone at the left; f asks for the database's name for that way.
func TestWaysView(t *testing.T) {
	m := newPrompt()
	m.OpenWays("cutover", steps.WaysOut{Step: "cutover", From: "blue", To: "green", Where: "PgBouncer lab paused, pointing at green",
		Finish: []string{"resume", "verify target is green", "fence blue"}, Undo: []string{"repoint to blue", "resume"}})
	for _, w := range []int{40, 100} {
		m.SetSize(w, 0)
		got, _ := uitest.Lines(t, m.View(), w)
		if !strings.Contains(got, "  f  finish forward to green: runs") || !strings.Contains(got, "  u  undo back to blue: runs") {
			t.Errorf("width %d:\n%s", w, got)
		}
	}
	m.SetSize(40, 0)
	if n := strings.Count(m.View(), "\n"); n < 4 {
		t.Errorf("at 40 columns the ways take %d lines", n+1)
	}
	if m.ShortHelp()[0].Help().Desc != "finish forward to green" {
		t.Errorf("help: %q", m.ShortHelp()[0].Help().Desc)
	}
	press(m, "f")
	if m.Kind() != Confirm || !strings.Contains(m.View(), "cutover's way out, finish forward to green, changes the servers") {
		t.Fatalf("f: %s", m.View())
	}
	if got := press(m, "app", "enter"); got != (RunMsg{ID: "cutover", Way: "finish"}) || m.Open() {
		t.Errorf("answer %#v", got)
	}
}

// TestConfirmKeys: a wrong name runs nothing and says so; esc closes; the
// right name sends RunMsg.
func TestConfirmKeys(t *testing.T) {
	m := newPrompt()
	m.OpenConfirm("drop")
	if got := press(m, "ap", "enter"); got != nil || !strings.Contains(m.View(), `✗ "ap" is not the database's name; nothing ran`) {
		t.Fatalf("a wrong name: %#v\n%s", got, m.View())
	}
	press(m, "esc")
	if m.Open() {
		t.Fatal("esc did not close")
	}
	m.OpenConfirm("drop")
	if got := press(m, "app", "enter"); got != (RunMsg{ID: "drop"}) {
		t.Errorf("answer %#v", got)
	}
}

// TestValueKeys: a value's name, then its value (a malformed one refused,
// a secret's name refused), then a reason: SetValueMsg.
func TestValueKeys(t *testing.T) {
	m := newPrompt()
	st := &state.State{}
	st.Set("green_start_lsn", "0/1", "operator")
	m.SetState(st)
	m.OpenKey()
	press(m, "replication_password", "enter")
	if !strings.Contains(m.View(), "secrets are never stored") {
		t.Errorf("a secret's name: %s", m.View())
	}
	m.OpenKey()
	press(m, "green_start_lsn", "enter")
	if m.Kind() != Value || !strings.Contains(ansi.Strip(m.View()), "Value of green_start_lsn (") || !strings.Contains(m.View(), "0/1") {
		t.Fatalf("the value's prompt: %s", m.View())
	}
	press(m, "zz", "enter")
	if m.Kind() != Value || !strings.Contains(m.View(), "is not an LSN") {
		t.Fatalf("a malformed value: %s", m.View())
	}
	m.OpenValue("green_start_lsn")
	for i := 0; i < 3; i++ {
		m.Update(tea.KeyMsg{Type: tea.KeyBackspace})
	}
	press(m, "0/5000028", "enter")
	if got := press(m, "enter"); got != nil || !strings.Contains(m.View(), "an edit needs a reason") {
		t.Fatalf("no reason: %#v %s", got, m.View())
	}
	if got := press(m, "by hand", "enter"); got != (SetValueMsg{Key: "green_start_lsn", Value: "0/5000028", Reason: "by hand"}) {
		t.Errorf("answer %#v", got)
	}
}

// TestQuitKeys: y quits, n keeps running, Ctrl+C cancels at once; esc on
// the ways out says in the log that it was left half way.
func TestQuitKeys(t *testing.T) {
	m := newPrompt()
	m.SetRunning("slow")
	m.OpenQuit()
	if !strings.Contains(m.View(), "slow is running. Quit and cancel it?") {
		t.Errorf("quit: %s", m.View())
	}
	if press(m, "n") != nil || m.Open() {
		t.Errorf("n")
	}
	m.OpenQuit()
	if got := press(m, "y"); got != (QuitMsg{}) {
		t.Errorf("y: %#v", got)
	}
	m.OpenQuit()
	if got := press(m, "ctrl+c"); got != (CancelMsg{}) {
		t.Errorf("ctrl+c: %#v", got)
	}
	m.OpenWays("cutover", steps.WaysOut{})
	if got, ok := press(m, "esc").(pane.NoteMsg); !ok || !strings.Contains(got.Text, "cutover: left half way") {
		t.Errorf("esc on the ways: %#v", got)
	}
}
