// Package lag is the lag pane: the slots of the feed in use (blue's
// forward feed before a cutover, green's reverse feed after it), each with
// its lag in bytes and in time, a bar against the cutover's lag gate, its
// rate and ETA, and the WAL it holds against the room its server leaves
// it; the other feed's slots marked idle; green's subscriptions; the
// initial sync while tables copy (COPYING, then CATCHING UP); and, loud at
// the top, an unreachable blue, a slot about to be lost, a schema drift.
// It reads blue's slots and green's subscriptions at every tick, the
// drift and the initial sync's progress at their own slower paces.
package lag

import (
	"context"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/theme"
)

// The monitor's types the pane shows, named here once.
type (
	lagSample    = monitor.LagSample
	slotLag      = monitor.SlotLag
	subscription = monitor.Subscription
	syncProgress = monitor.SyncProgress
	schemaDrift  = monitor.Drift
	traffic      = monitor.Traffic
)

var isTableSyncSlot = monitor.IsTableSyncSlot

// The sources the pane reads (poll.Msg.Source, poll.SoonMsg).
const (
	SourceSlots         = "lag"
	SourceSubscriptions = "subscriptions"
	SourceSync          = "sync"
	SourceDrift         = "drift"
)

// Alerts take what the pane reads; *steps.Alerter fits it. It never
// blocks: it queues the sends for its own goroutine.
type Alerts interface {
	ObserveLag(s lagSample, feed string)
	ObserveSubscriptions(subs []subscription)
	ObserveDrift(d schemaDrift)
	ObserveReach(server string, err error)
}

// Params are what the pane is built from.
type Params struct {
	// Chain is the screen's tick chain the reads are made on.
	Chain *poll.Chain
	// The reads; any may be nil (not read).
	Slots         func(context.Context) (lagSample, error)
	Subscriptions func(context.Context) ([]subscription, error)
	SyncProgress  func(context.Context) (syncProgress, error)
	Drift         func(context.Context) (schemaDrift, error)
	// Interval is the chain's pace: the title says it, and a server that
	// does not answer is retried after it, doubled per failure.
	Interval time.Duration
	// Timeout bounds each read (the drift's comparison twice over).
	Timeout time.Duration
	// CaughtUp is the cutover's lag gate: the bar is full at it, a slot
	// within it is caught up.
	CaughtUp int64
	// Alerts, when set, see every read.
	Alerts Alerts
}

// Model is the lag pane.
type Model struct {
	ctx   pane.Context
	p     Params
	gauge gauge
	sync  syncView

	drift      schemaDrift
	driftPoll  *poll.Poller[schemaDrift]
	driftSince time.Time

	// target is where writes go, as the last read of the traffic said;
	// lastFeed the feed in use the last time it was known.
	target, lastFeed string

	width, height int
	// screenH is the terminal's height: a tall screen lists the tables in
	// flight one per line.
	screenH int
	brush   *theme.Brushes // made on first View
}

var _ pane.Component = (*Model)(nil)

// New makes the pane.
func New(ctx pane.Context, p Params) *Model {
	m := &Model{ctx: ctx, p: p}
	t := p.Timeout
	m.gauge.caughtUp = p.CaughtUp
	m.gauge.blue = poll.New(p.Chain, poll.Params[lagSample]{Source: SourceSlots, Read: p.Slots, Backoff: p.Interval, Timeout: t})
	m.gauge.green = poll.New(p.Chain, poll.Params[[]subscription]{Source: SourceSubscriptions, Read: p.Subscriptions, Backoff: p.Interval, Timeout: t})
	m.sync.poll = poll.New(p.Chain, poll.Params[syncProgress]{Source: SourceSync, Read: p.SyncProgress, Every: SyncEvery, Backoff: SyncEvery, Timeout: t})
	m.driftPoll = poll.New(p.Chain, poll.Params[schemaDrift]{Source: SourceDrift, Read: p.Drift, Every: DriftEvery, Backoff: DriftEvery, Timeout: 2 * t})
	return m
}

// Init does nothing: the reads start with the ticks.
func (m *Model) Init() tea.Cmd { return nil }

// SetSize gives the pane its width and the most lines it may take, title
// included; it takes fewer when it has less to say.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// SetScreenHeight gives the terminal's height.
func (m *Model) SetScreenHeight(h int) { m.screenH = h }

// ShortHelp: the pane takes no keys.
func (m *Model) ShortHelp() []key.Binding { return nil }

// FullHelp: the pane takes no keys.
func (m *Model) FullHelp() [][]key.Binding { return nil }

// Stage is where the initial sync stands.
func (m *Model) Stage() Stage { return m.sync.stage }

// Slots is how many slots the pane shows (table-sync slots are counted
// under their subscription, not shown).
func (m *Model) Slots() int { return len(m.gauge.slots) }

// Update reads on the ticks and takes what was read; where writes go (the
// status line's read) says which feed is in use.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	now := m.ctx.Now()
	switch msg := msg.(type) {
	case poll.TickMsg:
		cmds := []tea.Cmd{m.gauge.blue.Poll(now), m.gauge.green.Poll(now), m.driftPoll.Poll(now)}
		if m.syncWanted() {
			cmds = append(cmds, m.sync.poll.Poll(now))
		}
		return m, tea.Batch(cmds...)
	case poll.SoonMsg:
		poll.Hurry(msg, m.gauge.blue, m.gauge.green, m.sync.poll, m.driftPoll)
	case poll.Msg[lagSample]:
		if !m.gauge.blue.Take(msg, now) {
			break
		}
		var done tea.Cmd
		if msg.Err == nil {
			m.gauge.add(msg.Value)
			done = m.advanceSync()
		}
		feed := m.activeFeed()
		return m, tea.Batch(done, m.observe(func(a Alerts) {
			a.ObserveReach("blue", msg.Err)
			if msg.Err == nil {
				a.ObserveLag(msg.Value, feed)
			}
		}))
	case poll.Msg[[]subscription]:
		if !m.gauge.green.Take(msg, now) {
			break
		}
		var done tea.Cmd
		if msg.Err == nil {
			m.gauge.subs = msg.Value
			done = m.advanceSync()
		}
		return m, tea.Batch(done, m.observe(func(a Alerts) {
			a.ObserveReach("green", msg.Err)
			if msg.Err == nil {
				a.ObserveSubscriptions(msg.Value)
			}
		}))
	case poll.Msg[syncProgress]:
		return m, m.takeSync(msg)
	case poll.Msg[schemaDrift]:
		return m, m.takeDrift(msg)
	case poll.Msg[traffic]:
		m.takeTraffic(msg)
	}
	return m, nil
}

// observe hands a read to the alerts off the screen's loop; nil without
// alerts.
func (m *Model) observe(f func(Alerts)) tea.Cmd {
	a := m.p.Alerts
	if a == nil {
		return nil
	}
	return func() tea.Msg {
		f(a)
		return nil
	}
}

// takeTraffic follows where writes go (the status line reads it).
func (m *Model) takeTraffic(msg poll.Msg[traffic]) {
	if msg.Gen != m.p.Chain.Gen() {
		return
	}
	if msg.Err != nil {
		m.target = "unknown"
		return
	}
	m.target = msg.Value.Target
	switch m.target {
	case "green":
		m.lastFeed = feedReverse
	case "blue":
		m.lastFeed = feedForward
	}
}

// View draws the title and what the pane has to say, loud lines first, at
// most its height: a line at the end says how many more a taller terminal
// would show.
func (m *Model) View() string {
	if m.height <= 0 {
		return ""
	}
	if m.brush == nil {
		m.brush = m.ctx.Styles.Brushes()
	}
	// gaugeLines fits its lines to the width itself: measuring them again
	// here would double the cost of a frame.
	lines := m.gaugeLines(m.width)
	n := min(pane.TitleHeight+max(1, len(lines)), m.height)
	out := append([]string{m.ctx.Title(m.gaugeTitle(), m.width, false)}, fit.Fill(m.clipGauge(lines, n-pane.TitleHeight), n-pane.TitleHeight)...)
	return strings.Join(out, "\n")
}
