package lag

import (
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
	"github.com/pgbluegreen/pgbluegreen/ui/uitest"
)

func TestMain(m *testing.M) {
	lipgloss.SetColorProfile(termenv.Ascii)
	os.Exit(m.Run())
}

var epoch = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func newPane() (*Model, *poll.Chain) {
	chain := poll.NewChain("test")
	m := New(pane.NewContext(func() time.Time { return epoch }, time.UTC), Params{Chain: chain, Interval: time.Second, Timeout: time.Second, CaughtUp: 1 << 20})
	m.SetScreenHeight(24)
	return m, chain
}

func slot(behind int64) monitor.SlotLag {
	return monitor.SlotLag{Slot: "pgbg_all", Server: "blue", Direction: "blue -> green", Active: true, BehindBytes: behind, RetainedBytes: behind + 1000, WALStatus: "reserved", SafeWALBytes: -1}
}

func sample(m *Model, chain *poll.Chain, at time.Duration, slots ...monitor.SlotLag) tea.Cmd {
	_, cmd := m.Update(poll.Msg[monitor.LagSample]{Source: SourceSlots, Gen: chain.Gen(), Value: monitor.LagSample{At: epoch.Add(at), Slots: slots}})
	return cmd
}

// TestRateAndETA: the catch-up rate over the samples, and the time to the
// lag gate at that rate; none while green falls behind.
func TestRateAndETA(t *testing.T) {
	m, chain := newPane()
	for i, behind := range []int64{100 << 20, 90 << 20, 80 << 20} {
		sample(m, chain, time.Duration(i*10)*time.Second, slot(behind))
	}
	v := m.gauge.slots[0]
	if r, ok := v.rate(); !ok || int64(r) != (20<<20)/20 {
		t.Errorf("rate %v (%v), want 1 MB/s", r, ok)
	}
	if eta, ok := v.eta(m.gauge.caughtUp); !ok || eta != 79*time.Second {
		t.Errorf("eta %v (%v), want 79s ((80 MB - 1 MB) at 1 MB/s)", eta, ok)
	}
	sample(m, chain, 30*time.Second, slot(200<<20))
	if _, ok := m.gauge.slots[0].eta(m.gauge.caughtUp); ok {
		t.Errorf("a growing lag has an ETA")
	}
}

// TestLagView: at two widths the pane is no taller than its height and no
// line wider than its width; a slot takes two lines at 80 columns, one at
// 160; a table-sync slot is counted under its subscription (a line of its
// own when the subscription is not known), not drawn as a slot.
func TestLagView(t *testing.T) {
	m, chain := newPane()
	for i, behind := range []int64{30 << 20, 20 << 20} {
		sample(m, chain, time.Duration(i*10)*time.Second, slot(behind), monitor.SlotLag{Slot: "pg_16400_sync_16385_7391234567890123456", Server: "blue"})
	}
	for _, c := range []struct{ w, lines int }{{80, 4}, {160, 3}} {
		m.SetSize(c.w, 8)
		got, lines := uitest.Lines(t, m.View(), c.w)
		if len(lines) != c.lines {
			t.Errorf("width %d: %d lines, want %d:\n%s", c.w, len(lines), c.lines, got)
		}
		if !strings.Contains(lines[0], "Lag blue → green · every 1s · read 12:00:00 · bar full at") || !strings.Contains(got, "pgbg_all") || strings.Contains(got, "_sync_") {
			t.Errorf("width %d:\n%s", c.w, got)
		}
	}
	if m.Slots() != 1 {
		t.Errorf("%d slots shown, want 1", m.Slots())
	}
	m.SetSize(80, 2)
	if got := ansi.Strip(m.View()); !strings.Contains(got, "… 3 more (a taller terminal shows them)") {
		t.Errorf("a short pane does not say what it hides:\n%s", got)
	}
}

// TestLagUnreachable: a failed read says why with its retry's countdown,
// and the next read waits the backoff.
func TestLagUnreachable(t *testing.T) {
	m, chain := newPane()
	m.p.Slots = nil
	m.Update(poll.Msg[monitor.LagSample]{Source: SourceSlots, Gen: chain.Gen(), Err: errors.New("dial tcp 10.0.0.1:5432: connect: connection refused")})
	m.SetSize(100, 6)
	if got := ansi.Strip(m.View()); !strings.Contains(got, "✗ blue unreachable: dial tcp 10.0.0.1:5432: connect: connection refused, retrying in 1s") {
		t.Errorf("unreachable:\n%s", got)
	}
	// A stale result is dropped.
	m.Update(poll.Msg[monitor.LagSample]{Source: SourceSlots, Gen: chain.Gen() - 1, Value: monitor.LagSample{At: epoch, Slots: []monitor.SlotLag{slot(1)}}})
	if got := ansi.Strip(m.View()); !strings.Contains(got, "blue unreachable") {
		t.Errorf("a stale result was taken:\n%s", got)
	}
}

// TestDriftSaid: a drift is loud at the top and said once in the log (a
// pane.NoteMsg); it goes when the schemas match again.
func TestDriftSaid(t *testing.T) {
	m, chain := newPane()
	m.SetSize(100, 8)
	drift := func(diff ...string) tea.Cmd {
		_, cmd := m.Update(poll.Msg[monitor.Drift]{Source: SourceDrift, Gen: chain.Gen(), Value: monitor.Drift{Compared: true, Objects: 75, Differences: diff}})
		return cmd
	}
	cmd := drift("only on blue: column public.accounts.note text null")
	note, ok := cmd().(pane.NoteMsg)
	if !ok || note.Level != pane.Error || !strings.HasPrefix(note.Text, "schema drift: ") {
		t.Fatalf("no note: %+v", note)
	}
	if got := ansi.Strip(m.View()); !strings.Contains(got, "⚠ SCHEMA DRIFT since 12:00:00") {
		t.Errorf("not loud:\n%s", got)
	}
	if cmd := drift("only on blue: column public.accounts.note text null"); cmd != nil {
		t.Errorf("the same drift said twice")
	}
	drift()
	if got := ansi.Strip(m.View()); strings.Contains(got, "SCHEMA DRIFT") {
		t.Errorf("still loud with equal schemas:\n%s", got)
	}
}
