// Package poll is how the screen reads anything on a schedule: one
// re-armed tea.Tick chain tagged with a generation number, and on its ticks
// one Poller per source, with one read in flight at most, each read
// bounded by a timeout and run in a command, and a backoff after failures
// counted in ticks of the chain, so a server that is down never doubles
// the rate. A result tagged with an older generation is dropped.
//
// The lag, green's subscriptions, the servers' versions, where the writes
// go, who is connected, the schemas' drift and the initial sync's progress
// are each a Poller on the screen's one chain; the journal the screen
// follows is a Poller on a second chain of its own pace.
package poll

import (
	"context"
	"errors"
	"net"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/ui/fit"
)

// MaxBackoff bounds the wait between reads of a source that fails.
const MaxBackoff = 30 * time.Second

// TickMsg is one tick of a chain.
type TickMsg struct {
	Chain string
	Gen   int
}

// Chain is one re-armed tick: its handler arms the next (Tick), so one
// tick is in flight at a time, and a restart leaves the old generation's
// ticks and reads to be dropped when they arrive.
type Chain struct {
	name string
	gen  int
}

// NewChain makes a chain; name tells its ticks from another chain's.
func NewChain(name string) *Chain { return &Chain{name: name} }

// Gen is the chain's generation: what its ticks and reads are tagged with.
func (c *Chain) Gen() int { return c.gen }

// Tick arms the chain's next tick, every from now. The tick's handler
// calls it again: a tick that is not re-armed ends the chain.
func (c *Chain) Tick(every time.Duration) tea.Cmd {
	msg := c.Msg()
	return tea.Tick(every, func(time.Time) tea.Msg { return msg })
}

// Msg is the chain's current tick, for reading now rather than at the next.
func (c *Chain) Msg() TickMsg { return TickMsg{Chain: c.name, Gen: c.gen} }

// Current says whether msg is a tick of this chain's current generation.
func (c *Chain) Current(msg TickMsg) bool { return msg.Chain == c.name && msg.Gen == c.gen }

// Restart starts a new generation (a new pace, a reconnection) and arms its
// first tick: the old generation's ticks and reads are dropped.
func (c *Chain) Restart(every time.Duration) tea.Cmd {
	c.gen++
	return c.Tick(every)
}

// Msg is one read's result, tagged with its source and the generation of
// the chain it was read on.
type Msg[T any] struct {
	Source string
	Gen    int
	Value  T
	Err    error
}

// SoonMsg asks the poller of Source to read at the next tick, whatever its
// pace or backoff (a pane just shown, a session just ended).
type SoonMsg struct{ Source string }

// Params describe one source.
type Params[T any] struct {
	// Source names the source; its results carry it.
	Source string
	// Read reads the source once; nil: the source is not read.
	Read func(context.Context) (T, error)
	// Every is the least time between two reads (0: at every tick).
	Every time.Duration
	// Backoff is the wait after a failure, doubled with each failure in a
	// row up to MaxBackoff (0: the next tick retries).
	Backoff time.Duration
	// Timeout bounds each read.
	Timeout time.Duration
}

// Poller paces one source on a chain's ticks.
type Poller[T any] struct {
	chain *Chain
	p     Params[T]
	// flight is the generation of the read in flight, plus one (0: none):
	// a read of an older generation does not hold the source back.
	flight int
	// again asks for one more read when the one in flight returns: it may
	// have started before what it was asked for was there.
	again    bool
	failures int
	nextAt   time.Time
	lastOK   time.Time
	lastErr  string
}

// New makes a poller of one source on chain c.
func New[T any](c *Chain, p Params[T]) *Poller[T] { return &Poller[T]{chain: c, p: p} }

// Source is the source's name.
func (p *Poller[T]) Source() string { return p.p.Source }

// Enabled says whether the source is read at all.
func (p *Poller[T]) Enabled() bool { return p.p.Read != nil }

// InFlight says whether a read of the current generation is under way.
func (p *Poller[T]) InFlight() bool { return p.flight == p.chain.gen+1 }

// Due says whether a read may start now: none in flight, and the pace and
// the backoff allow it.
func (p *Poller[T]) Due(now time.Time) bool { return !p.InFlight() && !now.Before(p.nextAt) }

// Poll starts a read when the source is read and due; nil otherwise.
func (p *Poller[T]) Poll(now time.Time) tea.Cmd {
	if !p.Enabled() || !p.Due(now) {
		return nil
	}
	return p.start(p.p.Read)
}

// ReadNow starts read now, whatever the pace, for a source whose read
// changes from one call to the next (the journal, read from an offset).
// With a read in flight it starts nothing and asks for one more (Again).
func (p *Poller[T]) ReadNow(read func(context.Context) (T, error)) tea.Cmd {
	if p.InFlight() {
		p.again = true
		return nil
	}
	return p.start(read)
}

// Again says, once, whether one more read was asked for while the last
// was in flight.
func (p *Poller[T]) Again() bool {
	a := p.again
	p.again = false
	return a
}

// start runs one read in a command, bounded by the timeout; the command is
// built from values, never from the model.
func (p *Poller[T]) start(read func(context.Context) (T, error)) tea.Cmd {
	gen, source, timeout := p.chain.gen, p.p.Source, p.p.Timeout
	p.flight = gen + 1
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		v, err := read(ctx)
		return Msg[T]{Source: source, Gen: gen, Value: v, Err: err}
	}
}

// Mine says whether msg is a result of this source in the chain's current
// generation: one to take (or, for another pane, to look at).
func (p *Poller[T]) Mine(msg Msg[T]) bool { return msg.Source == p.p.Source && msg.Gen == p.chain.gen }

// Take records a result read at now: a failure schedules the retry with
// its backoff, a success the next read. It reports false for a result that
// is not the source's or is of an older generation: drop it.
func (p *Poller[T]) Take(msg Msg[T], now time.Time) bool {
	if !p.Mine(msg) {
		return false
	}
	p.flight = 0
	if msg.Err != nil {
		p.failures++
		back := p.p.Backoff << min(p.failures-1, 10)
		back = min(max(back, p.p.Backoff), MaxBackoff)
		p.nextAt = now.Add(back)
		p.lastErr = Reason(msg.Err)
		return true
	}
	p.failures, p.lastErr, p.nextAt, p.lastOK = 0, "", time.Time{}, now
	if p.p.Every > 0 {
		p.nextAt = now.Add(p.p.Every)
	}
	return true
}

// Soon makes the source due at the next tick.
func (p *Poller[T]) Soon() { p.nextAt = time.Time{} }

// Failures is how many reads in a row failed.
func (p *Poller[T]) Failures() int { return p.failures }

// LastErr is why the last read failed ("" after a success).
func (p *Poller[T]) LastErr() string { return p.lastErr }

// LastOK is when the last read succeeded (zero: none yet).
func (p *Poller[T]) LastOK() time.Time { return p.lastOK }

// NextAt is when the source may be read next (zero: at the next tick).
func (p *Poller[T]) NextAt() time.Time { return p.nextAt }

// Pacer is a poller of any source, as SoonMsg's handler sees it.
type Pacer interface {
	Source() string
	Soon()
}

// Hurry makes due at the next tick the one of ps that msg names.
func Hurry(msg SoonMsg, ps ...Pacer) {
	for _, p := range ps {
		if p.Source() == msg.Source {
			p.Soon()
		}
	}
}

// Reason is the part of a read's error that says why: a connection error
// from pgx carries its context twice over, and what matters is the
// network's answer (dial tcp host:port: connection refused) or the timeout.
func Reason(err error) string {
	var op *net.OpError
	switch {
	case errors.As(err, &op):
		return fit.OneLine(op)
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer before the poll's deadline"
	}
	return fit.OneLine(err)
}
