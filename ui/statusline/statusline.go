// Package statusline is the screen's last lines: where the application's
// writes go (read from the servers on a slow tick: PgBouncer's SHOW
// DATABASES, the roles' LOGIN, read-only settings) as a symbol and a word,
// with its warnings above; then the mode, the strategy, both servers'
// versions, who holds the lock, and the latest notice.
package statusline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
)

// The sources the line reads (poll.Msg.Source, poll.SoonMsg).
const (
	SourceTraffic      = "traffic"
	SourceBlueVersion  = "blue version"
	SourceGreenVersion = "green version"
)

// TrafficEvery paces the reads of where writes go: they need not follow
// every second.
const TrafficEvery = 5 * time.Second

// Params are what the line is built from.
type Params struct {
	// Chain is the screen's tick chain the reads are made on.
	Chain *poll.Chain
	// Traffic reads where writes go; the versions read each server's.
	// Any may be nil (not read).
	Traffic                   func(context.Context) (monitor.Traffic, error)
	BlueVersion, GreenVersion func(context.Context) (string, error)
	// Timeout bounds each read.
	Timeout time.Duration
	// Watch says the screen is read-only; Strategy is the run's ("": none).
	Watch    bool
	Strategy string
}

// Model is the status line.
type Model struct {
	ctx                  pane.Context
	p                    Params
	trafficPoll          *poll.Poller[monitor.Traffic]
	traffic              monitor.Traffic
	bluePoll, greenPoll  *poll.Poller[string]
	blueVer, greenVer    string
	blueDown, greenDown  bool
	holder, flash, going string
	width                int
}

var _ pane.Component = (*Model)(nil)

// New makes the line.
func New(ctx pane.Context, p Params) *Model {
	return &Model{ctx: ctx, p: p,
		trafficPoll: poll.New(p.Chain, poll.Params[monitor.Traffic]{Source: SourceTraffic, Read: p.Traffic, Every: TrafficEvery, Backoff: TrafficEvery, Timeout: p.Timeout}),
		// A version is read once; a failure is retried at the next tick.
		bluePoll:  poll.New(p.Chain, poll.Params[string]{Source: SourceBlueVersion, Read: p.BlueVersion, Timeout: p.Timeout}),
		greenPoll: poll.New(p.Chain, poll.Params[string]{Source: SourceGreenVersion, Read: p.GreenVersion, Timeout: p.Timeout}),
	}
}

// Init does nothing: the reads start with the ticks.
func (m *Model) Init() tea.Cmd { return nil }

// SetSize gives the line its width; its height is its own: the status
// line and the traffic's warnings.
func (m *Model) SetSize(w, _ int) { m.width = w }

// SetLock says who holds the run's lock.
func (m *Model) SetLock(holder string) { m.holder = holder }

// SetFlash shows the latest notice ("": none).
func (m *Model) SetFlash(s string) { m.flash = s }

// SetCancelling says the step being cancelled ("": none).
func (m *Model) SetCancelling(id string) { m.going = id }

// ShortHelp: the line takes no keys.
func (m *Model) ShortHelp() []key.Binding { return nil }

// FullHelp: the line takes no keys.
func (m *Model) FullHelp() [][]key.Binding { return nil }

// Update reads on the ticks and takes what was read. The lag's and green's
// reads go by too: a version is read only from a server that answers, so a
// server that is down costs one query per backoff, not two.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	now := m.ctx.Now()
	switch msg := msg.(type) {
	case poll.TickMsg:
		cmds := []tea.Cmd{m.trafficPoll.Poll(now)}
		if m.blueVer == "" && !m.blueDown {
			cmds = append(cmds, m.bluePoll.Poll(now))
		}
		if m.greenVer == "" && !m.greenDown {
			cmds = append(cmds, m.greenPoll.Poll(now))
		}
		return m, tea.Batch(cmds...)
	case poll.SoonMsg:
		poll.Hurry(msg, m.trafficPoll, m.bluePoll, m.greenPoll)
	case poll.Msg[monitor.Traffic]:
		if !m.trafficPoll.Take(msg, now) {
			break
		}
		m.traffic = msg.Value
		if msg.Err != nil {
			m.traffic = monitor.Traffic{Target: "unknown", How: m.trafficPoll.LastErr()}
		}
	case poll.Msg[string]:
		if m.bluePoll.Take(msg, now) && msg.Err == nil {
			m.blueVer = msg.Value
		}
		if m.greenPoll.Take(msg, now) && msg.Err == nil {
			m.greenVer = msg.Value
		}
	case poll.Msg[monitor.LagSample]:
		if msg.Gen == m.p.Chain.Gen() {
			m.blueDown = msg.Err != nil
		}
	case poll.Msg[[]monitor.Subscription]:
		if msg.Gen == m.p.Chain.Gen() {
			m.greenDown = msg.Err != nil
		}
	}
	return m, nil
}

// View is the traffic's warnings, when any, and the status line.
func (m *Model) View() string {
	return strings.Join(append(m.trafficLines(m.width), m.statusLine()), "\n")
}

// word is the status line's first part: where writes go, as a symbol and a
// word (colour is never the only signal).
func (m *Model) word() string {
	if !m.trafficPoll.Enabled() {
		return ""
	}
	st := m.ctx.Styles
	if m.trafficPoll.LastOK().IsZero() && m.trafficPoll.LastErr() == "" {
		return st.Faint.Render("writes → … (reading)")
	}
	switch m.traffic.Target {
	case "blue":
		return st.Running.Render("◧ writes → BLUE")
	case "green":
		return st.OK.Render("◨ writes → GREEN")
	case "paused":
		return st.Warn.Render("‖ writes PAUSED")
	}
	return st.Fail.Render("? writes → UNKNOWN")
}

// trafficLines are the warnings of the last read (writes may land on both
// sides), and how it was determined when it could not be: above the
// status line.
func (m *Model) trafficLines(w int) []string {
	var out []string
	for _, warn := range m.traffic.Warnings {
		out = append(out, m.ctx.Styles.Loud.Render(fit.Truncate("⚠ "+warn, w)))
	}
	if m.traffic.Target == "unknown" && m.traffic.How != "" {
		out = append(out, m.ctx.Styles.Fail.Render(fit.Truncate("? where writes go is unknown: "+strings.Join(strings.Fields(m.traffic.How), " "), w)))
	}
	return out
}

// statusLine: where writes go, mode, strategy, versions, lock holder, and
// the latest notice.
func (m *Model) statusLine() string {
	st := m.ctx.Styles
	var parts []string
	if t := m.word(); t != "" {
		parts = append(parts, t)
	}
	if m.p.Watch {
		parts = append(parts, st.Warn.Render("WATCH (read-only)"))
	}
	if m.p.Strategy != "" {
		parts = append(parts, "strategy "+m.p.Strategy)
	}
	bv, gv := m.blueVer, m.greenVer
	if bv == "" {
		bv = "?"
	}
	if gv == "" {
		gv = "?"
	}
	parts = append(parts, fmt.Sprintf("blue %s → green %s", bv, gv))
	if m.holder != "" {
		parts = append(parts, "lock: "+m.holder)
	}
	if m.going != "" {
		parts = append(parts, st.Warn.Render("cancelling "+m.going+"…"))
	}
	if m.flash != "" {
		parts = append(parts, m.flash)
	}
	line := st.Faint.Render(" " + strings.Join(parts, " · "))
	if m.width > 0 {
		line = fit.Truncate(line, m.width)
	}
	return line
}
