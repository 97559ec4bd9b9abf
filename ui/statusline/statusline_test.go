package statusline

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
)

func TestMain(m *testing.M) {
	lipgloss.SetColorProfile(termenv.Ascii)
	os.Exit(m.Run())
}

var epoch = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// runAll runs the commands a tick returned and feeds their results back.
func runAll(m *Model, cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	switch msg := cmd().(type) {
	case tea.BatchMsg:
		for _, c := range msg {
			runAll(m, c)
		}
	case nil:
	default:
		m.Update(msg)
	}
}

// TestStatusLineView: where writes go leads, with its warning above, then
// the strategy and the versions; at two widths no line is wider.
func TestStatusLineView(t *testing.T) {
	chain := poll.NewChain("test")
	m := New(pane.NewContext(func() time.Time { return epoch }, time.UTC), Params{Chain: chain, Strategy: "copy", Timeout: time.Second,
		Traffic: func(context.Context) (monitor.Traffic, error) {
			return monitor.Traffic{Target: "green", Warnings: []string{"writes may land on both"}}, nil
		},
		BlueVersion:  func(context.Context) (string, error) { return "15.14", nil },
		GreenVersion: func(context.Context) (string, error) { return "17.5", nil }})
	m.SetSize(100, 2)
	if got := ansi.Strip(m.View()); !strings.Contains(got, "writes → … (reading)") || !strings.Contains(got, "blue ? → green ?") {
		t.Errorf("before any read: %q", got)
	}
	_, cmd := m.Update(chain.Msg())
	runAll(m, cmd)
	m.SetLock("pid 4242 ops@jumpbox")
	want := []string{"⚠ writes may land on both", " ◨ writes → GREEN · strategy copy · blue 15.14 → green 17.5 · lock: pid 4242 ops@jumpbox"}
	if got := strings.Split(ansi.Strip(m.View()), "\n"); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("100 columns: %q", got)
	}
	m.SetSize(40, 2)
	for _, l := range strings.Split(ansi.Strip(m.View()), "\n") {
		if ansi.StringWidth(l) > 40 {
			t.Errorf("40 columns: %q", l)
		}
	}
}

// TestVersionsFromServersThatAnswer: a version is not read from a server
// whose lag read failed, and is read once it answers again.
func TestVersionsFromServersThatAnswer(t *testing.T) {
	chain := poll.NewChain("test")
	reads := 0
	m := New(pane.NewContext(func() time.Time { return epoch }, time.UTC), Params{Chain: chain, Timeout: time.Second,
		BlueVersion: func(context.Context) (string, error) { reads++; return "15.14", nil }})
	m.SetSize(80, 1)
	m.Update(poll.Msg[monitor.LagSample]{Gen: chain.Gen(), Err: errors.New("connection refused")})
	_, cmd := m.Update(chain.Msg())
	runAll(m, cmd)
	if reads != 0 {
		t.Fatalf("a version read from a server that does not answer")
	}
	m.Update(poll.Msg[monitor.LagSample]{Gen: chain.Gen()})
	_, cmd = m.Update(chain.Msg())
	runAll(m, cmd)
	_, cmd = m.Update(chain.Msg())
	runAll(m, cmd)
	if reads != 1 || !strings.Contains(m.View(), "blue 15.14") {
		t.Errorf("%d reads, line %q", reads, m.View())
	}
}
