package poll

import (
	"context"
	"errors"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

var epoch = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// run runs a read's command at once and returns its result.
func run[T any](t *testing.T, cmd tea.Cmd) Msg[T] {
	t.Helper()
	if cmd == nil {
		t.Fatal("no read started")
	}
	msg, ok := cmd().(Msg[T])
	if !ok {
		t.Fatalf("the command returned %T", msg)
	}
	return msg
}

// TestOneInFlight: a source due is read once; while its read is in flight
// no other starts; a slow source waits Every after a success.
func TestOneInFlight(t *testing.T) {
	c := NewChain("test")
	reads := 0
	p := New(c, Params[int]{Source: "n", Every: 5 * time.Second, Timeout: time.Second,
		Read: func(context.Context) (int, error) { reads++; return reads, nil }})
	cmd := p.Poll(epoch)
	if p.Poll(epoch) != nil || !p.InFlight() {
		t.Fatal("a second read started while one is in flight")
	}
	msg := run[int](t, cmd)
	if msg.Value != 1 || msg.Source != "n" || msg.Gen != c.Gen() {
		t.Errorf("result %+v", msg)
	}
	if !p.Take(msg, epoch) || p.InFlight() || p.LastOK() != epoch {
		t.Fatal("the result was not taken")
	}
	if p.Due(epoch.Add(4*time.Second)) || !p.Due(epoch.Add(5*time.Second)) {
		t.Errorf("a slow source is not paced at Every")
	}
	p.Soon()
	if !p.Due(epoch.Add(time.Second)) {
		t.Errorf("Soon did not make the source due")
	}
	Hurry(SoonMsg{Source: "other"}, p)
	if New(c, Params[int]{}).Poll(epoch) != nil {
		t.Errorf("a source without a read was read")
	}
}

// TestBackoff: after failures the retry waits the backoff, doubled per
// failure up to MaxBackoff, and the reason is kept; a success clears it.
func TestBackoff(t *testing.T) {
	c := NewChain("test")
	fail := errors.New("dial tcp 10.0.0.1:5432: connect: connection refused")
	p := New(c, Params[int]{Source: "n", Backoff: time.Second, Timeout: time.Second,
		Read: func(context.Context) (int, error) { return 0, fail }})
	p.Take(run[int](t, p.Poll(epoch)), epoch)
	p.Take(run[int](t, p.Poll(p.NextAt())), epoch)
	// Two failures in a row: the next read two seconds on.
	if p.Failures() != 2 || p.Due(epoch.Add(time.Second)) || !p.Due(epoch.Add(2*time.Second)) {
		t.Errorf("backoff after two failures is not 2s (next at %v)", p.NextAt())
	}
	if p.LastErr() != "dial tcp 10.0.0.1:5432: connect: connection refused" {
		t.Errorf("reason %q", p.LastErr())
	}
	for i := 0; i < 20; i++ {
		p.Take(run[int](t, p.Poll(p.NextAt())), epoch)
	}
	if got := p.NextAt().Sub(epoch); got != MaxBackoff {
		t.Errorf("backoff grew to %v, want at most %v", got, MaxBackoff)
	}
	p.Take(Msg[int]{Source: "n", Gen: c.Gen()}, epoch)
	if p.Failures() != 0 || p.LastErr() != "" || !p.Due(epoch) {
		t.Errorf("a success did not clear the failures")
	}
}

// TestStaleDropped: after a restart, the old generation's ticks and reads
// are dropped, and its read in flight does not hold the source back.
func TestStaleDropped(t *testing.T) {
	c := NewChain("test")
	p := New(c, Params[int]{Source: "n", Timeout: time.Second, Read: func(context.Context) (int, error) { return 1, nil }})
	old := run[int](t, p.Poll(epoch))
	tick := c.Msg()
	c.Restart(time.Hour)
	if c.Current(tick) || !c.Current(c.Msg()) || c.Current(TickMsg{Chain: "other", Gen: c.Gen()}) {
		t.Errorf("a tick of another generation or chain is current")
	}
	if p.Take(old, epoch) {
		t.Errorf("a stale result was taken")
	}
	if p.Poll(epoch) == nil {
		t.Errorf("the old generation's read holds the source back")
	}
}

// TestReadNowAgain: a read asked for while one is in flight starts when it
// returns (Again), once.
func TestReadNowAgain(t *testing.T) {
	c := NewChain("follow")
	p := New(c, Params[string]{Source: "journal", Timeout: time.Second})
	read := func(from int) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return "from " + string(rune('0'+from)), nil }
	}
	cmd := p.ReadNow(read(0))
	if p.ReadNow(read(1)) != nil {
		t.Fatal("two reads in flight")
	}
	p.Take(run[string](t, cmd), epoch)
	if !p.Again() || p.Again() {
		t.Errorf("Again is not said once")
	}
}

// TestReadBounded: each read gets a deadline of Timeout.
func TestReadBounded(t *testing.T) {
	c := NewChain("test")
	p := New(c, Params[int]{Source: "n", Timeout: 10 * time.Millisecond, Read: func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	}})
	msg := run[int](t, p.Poll(epoch))
	p.Take(msg, epoch)
	if p.LastErr() != "no answer before the poll's deadline" {
		t.Errorf("reason %q", p.LastErr())
	}
}
