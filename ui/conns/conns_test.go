package conns

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/uitest"
)

func TestMain(m *testing.M) {
	lipgloss.SetColorProfile(termenv.Ascii)
	os.Exit(m.Run())
}

var epoch = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// fixture is blue with two application sessions through PgBouncer and a
// psql session straight to blue, in a long transaction.
func fixture() monitor.Connections {
	sess := func(pid int32, app, client, st string, xact time.Duration) monitor.SessionView {
		return monitor.SessionView{Activity: monitor.Activity{Session: monitor.Session{PID: pid, User: "app", Application: app, Client: client, State: st, XactAge: xact}}}
	}
	blue := []monitor.SessionView{sess(4101, "", "127.0.0.1:40001", "idle", 0), sess(4102, "", "127.0.0.1:40002", "idle", 0),
		sess(4242, "psql", "10.0.3.7:51234", "idle in transaction", 65*time.Second)}
	blue[0].Via, blue[1].Via = "lab", "lab"
	blue[2].Direct, blue[2].Long = true, true
	c := monitor.Connections{At: epoch, LongAfter: 10 * time.Second, Flagged: 1, Servers: []monitor.ServerSessions{{Name: "blue", Sessions: blue}}}
	c.Servers[0].Groups = monitor.GroupSessions(blue)
	return c
}

// newPane is the pane with what read reads, read once.
func newPane(t *testing.T) (*Model, *atomic.Int32) {
	var reads atomic.Int32
	chain := poll.NewChain("test")
	m := New(pane.NewContext(func() time.Time { return epoch }, time.UTC), chain, func(context.Context) (monitor.Connections, error) {
		reads.Add(1)
		return fixture(), nil
	}, time.Second)
	if _, cmd := m.Update(chain.Msg()); cmd != nil {
		t.Fatal("an unfocused pane read who is connected")
	}
	m.SetFocused(true)
	_, cmd := m.Update(chain.Msg())
	if cmd == nil {
		t.Fatal("a focused pane did not read")
	}
	m.Update(cmd())
	return m, &reads
}

// TestConnsView: at two widths the pane is exactly its size; the direct
// session in a long transaction has a line of its own, the others are
// counted in their group.
func TestConnsView(t *testing.T) {
	m, _ := newPane(t)
	for _, w := range []int{80, 160} {
		m.SetSize(w, 10)
		got, lines := uitest.Lines(t, m.View(), w)
		if len(lines) != 10 {
			t.Fatalf("width %d: %d lines", w, len(lines))
		}
		for _, want := range []string{"▶ Connections · blue 3 · ⚠ 1 marked", "⚠ 1 DIRECT", "pid 4242"} {
			if !strings.Contains(got, want) {
				t.Errorf("width %d: no %q:\n%s", w, want, got)
			}
		}
		if strings.Contains(got, "pid 4101") {
			t.Errorf("width %d: a closed group lists its sessions:\n%s", w, got)
		}
	}
}

// TestConnsKeys: the arrows reach a session (Selected says whose), enter
// opens a group.
func TestConnsKeys(t *testing.T) {
	m, _ := newPane(t)
	m.SetSize(120, 12)
	m.View()
	down := tea.KeyMsg{Type: tea.KeyDown}
	if _, ok := m.Selected(); ok {
		t.Errorf("a heading is a session")
	}
	m.Update(down)
	m.Update(down)
	s, ok := m.Selected()
	if !ok || s.PID != 4242 || s.Server != "blue" || s.Who() != "app@10.0.3.7:51234 psql" {
		t.Fatalf("selected %+v (%t)", s, ok)
	}
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("g")})
	for i := 0; i < 3; i++ {
		m.Update(down)
	}
	m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	if got := ansi.Strip(m.View()); strings.Contains(got, "pid 4101") {
		t.Errorf("enter opened a group while the screen disables it:\n%s", got)
	}
	m.ctx.Keys.Expand.SetEnabled(true) // the screen's part: the pane is focused
	m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	if got := ansi.Strip(m.View()); !strings.Contains(got, "pid 4101") {
		t.Errorf("enter did not open the group:\n%s", got)
	}
}
