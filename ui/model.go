// Package ui is pgbluegreen's full-screen program: the runbook as a
// navigable list with each step's detail, the values table, the live lag
// gauge of blue's slots and green's subscriptions, and the log of the run.
//
// Each pane is a component of its own package (runbook, detail, values,
// lag, logpane, conns, prompt, statusline: soft-serve's contract, a
// tea.Model that says its keys and takes its size), drawn with one theme
// and one key map. This package composes them: it sizes them, hands the
// focused one its keys and every other message to all of them, and drives
// the runner's lifecycle (running a step, following the journal, quitting).
//
// The model never does I/O itself: steps run, servers are polled and files
// are followed in commands, and their results come back as messages. Every
// poll is a poll.Poller on one re-armed tick chain tagged with a
// generation number.
package ui

import (
	"fmt"
	"os"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/conns"
	"github.com/pgbluegreen/pgbluegreen/ui/detail"
	"github.com/pgbluegreen/pgbluegreen/ui/keys"
	"github.com/pgbluegreen/pgbluegreen/ui/lag"
	"github.com/pgbluegreen/pgbluegreen/ui/logpane"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/prompt"
	"github.com/pgbluegreen/pgbluegreen/ui/runbook"
	"github.com/pgbluegreen/pgbluegreen/ui/statusline"
	"github.com/pgbluegreen/pgbluegreen/ui/stepstate"
	"github.com/pgbluegreen/pgbluegreen/ui/values"
)

type focus int

// The panes, in tab order.
const (
	focusSteps focus = iota
	focusDetail
	focusValues
	focusLog
	// focusConns is the connections pane, which takes the top of the
	// screen while focused.
	focusConns
	focusCount
)

// Model is the whole screen.
type Model struct {
	p   Params
	ctx pane.Context
	// keys is the context's key map, the screen's one.
	keys    *keys.KeyMap
	help    help.Model
	spinner spinner.Model

	width, height int
	focus         focus
	// st is the run's state as this screen last read it; checks the
	// PASS/WARN/FAIL lines of each step's last run.
	st     *state.State
	checks *stepstate.Checks

	// The panes.
	runbook *runbook.Model
	detail  *detail.Model
	values  *values.Model
	lag     *lag.Model
	log     *logpane.Model
	conns   *conns.Model
	prompt  *prompt.Model
	status  *statusline.Model

	// ticks is the one chain every poll of the servers is read on, every
	// interval.
	ticks    *poll.Chain
	interval time.Duration
	// follow is the journal and the state file followed into the log.
	follow following
	// run is the step this screen runs, and its way to the end.
	run runState
}

// New builds the screen.
func New(p Params) *Model {
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Location == nil {
		p.Location = time.Local
	}
	if p.PollTimeout <= 0 {
		p.PollTimeout = 5 * time.Second
	}
	ctx := pane.NewContext(p.Now, p.Location)
	m := &Model{p: p, ctx: ctx, keys: ctx.Keys, help: help.New(), interval: time.Second}
	var caughtUp int64
	if p.Config != nil {
		if p.Config.Lag.Interval.Duration > 0 {
			m.interval = p.Config.Lag.Interval.Duration
		}
		caughtUp = p.Config.Cutover.MaxLagBytes
	}
	m.st = &state.State{}
	if p.Store != nil {
		m.st = p.Store.Snapshot()
	}
	m.checks = &stepstate.Checks{}
	m.ticks = poll.NewChain("poll")
	t := p.PollTimeout
	m.runbook = runbook.New(ctx, p.Steps, m.st, m.checks)
	m.detail = detail.New(ctx, p.Runner, p.Watch, m.checks)
	m.values = values.New(ctx)
	m.lag = lag.New(ctx, lag.Params{Chain: m.ticks, Slots: p.Lag, Subscriptions: p.Subscriptions, SyncProgress: p.SyncProgress, Drift: p.Drift,
		Interval: m.interval, Timeout: t, CaughtUp: caughtUp, Alerts: p.Alerts})
	m.log = logpane.New(ctx, logpane.Limit)
	m.conns = conns.New(ctx, m.ticks, p.Connections, 2*t)
	m.prompt = prompt.New(ctx, p.Database)
	sp := statusline.Params{Chain: m.ticks, Traffic: p.Traffic, BlueVersion: p.BlueVersion, GreenVersion: p.GreenVersion, Timeout: t, Watch: p.Watch}
	if p.Config != nil {
		sp.Strategy = p.Config.Strategy
	}
	m.status = statusline.New(ctx, sp)
	m.status.SetLock(p.Holder)
	m.follow = newFollowing(t)
	m.spinner = spinner.New(spinner.WithSpinner(spinner.Line), spinner.WithStyle(ctx.Styles.Running))
	if p.AlertsNote != "" {
		m.note(pane.Info, p.AlertsNote)
	}
	m.compose()
	return m
}

func (m *Model) now() time.Time { return m.p.Now() }

// Init starts the polling and following chains and the output listener.
func (m *Model) Init() tea.Cmd {
	cmds := []tea.Cmd{m.ticks.Tick(m.interval), m.pollDue(), waitLineCmd(m.p.Lines)}
	if m.p.JournalPath != "" || m.p.Watch {
		cmds = append(cmds, m.follow.ticks.Tick(m.followEvery()), m.followNow())
	}
	return tea.Batch(cmds...)
}

// Update handles one message, then hands the panes what it changed.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.update(msg)
	m.compose()
	return m, cmd
}

// update takes the screen's own messages (its size, the keys, its ticks,
// the runner's lifecycle, the journal) and hands every other to every pane.
func (m *Model) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
		return nil
	case tea.KeyMsg:
		return m.handleKey(msg)
	case poll.TickMsg:
		return m.tick(msg)
	case pane.NoteMsg:
		m.note(msg.Level, msg.Text)
		return nil
	}
	if cmd, ok := m.lifecycle(msg); ok {
		return cmd
	}
	if cmd, ok := m.takeOutput(msg); ok {
		return cmd
	}
	return m.fanOut(msg)
}

// resize takes the terminal's size: the footer's panes are as wide, the
// others are sized from what the footer and the lag pane measure.
func (m *Model) resize(w, h int) {
	m.width, m.height = w, h
	m.help.Width = w
	m.status.SetSize(w, h)
	m.prompt.SetSize(w, h)
	m.layout()
}

// tick re-arms the chain whose tick it is: the polls' (the panes read
// what is due, the alerts see the state) or the journal's.
func (m *Model) tick(msg poll.TickMsg) tea.Cmd {
	switch {
	case m.ticks.Current(msg):
		return tea.Batch(m.ticks.Tick(m.interval), m.pollDue(), m.observeState())
	case m.follow.ticks.Current(msg):
		return tea.Batch(m.follow.ticks.Tick(m.followEvery()), m.followNow())
	}
	return nil
}

// pollDue starts the polls whose time has come: the panes that read
// something take the chain's tick, now.
func (m *Model) pollDue() tea.Cmd { return m.fanOut(m.ticks.Msg()) }

// panes are the screen's panes, for the messages every one may take.
func (m *Model) panes() []pane.Component {
	return []pane.Component{m.runbook, m.detail, m.values, m.lag, m.log, m.conns, m.prompt, m.status}
}

// fanOut hands a message to every pane and batches what they return.
func (m *Model) fanOut(msg tea.Msg) tea.Cmd {
	var cmds []tea.Cmd
	for _, p := range m.panes() {
		_, cmd := p.Update(msg)
		cmds = append(cmds, cmd)
	}
	return tea.Batch(cmds...)
}

// toPane hands a message to one pane.
func (m *Model) toPane(p pane.Component, msg tea.Msg) tea.Cmd {
	_, cmd := p.Update(msg)
	return cmd
}

// compose hands the panes what changed in the screen's own state: the
// state, the step running, the selected step, the focus, and the keys
// that apply now.
func (m *Model) compose() {
	run := m.runInfo()
	m.runbook.SetState(m.st)
	m.runbook.SetRun(run)
	m.runbook.SetFocused(m.focus == focusSteps)
	m.detail.SetStep(m.runbook.Selected())
	m.detail.SetState(m.st)
	m.detail.SetRun(run)
	m.detail.SetFocused(m.focus == focusDetail)
	m.values.SetState(m.st)
	m.values.SetFocused(m.focus == focusValues)
	m.log.SetFocused(m.focus == focusLog)
	m.conns.SetFocused(m.focus == focusConns)
	m.prompt.SetState(m.st)
	m.prompt.SetRunning(m.run.id)
	going := ""
	if m.run.quitting {
		going = m.run.id
	}
	m.status.SetCancelling(going)
	m.syncKeys()
}

// selected returns the step under the runbook's cursor.
func (m *Model) selected() *steps.Step { return m.runbook.Selected() }

// runInfo is the step running now, for the panes that show it.
func (m *Model) runInfo() stepstate.Run {
	return stepstate.Run{ID: m.run.id, Dry: m.run.dry, Start: m.run.start, Spinner: m.spinner.View(), Watch: m.p.Watch}
}

// observeState hands the state (steps finished, attempts ended) to the
// alerts, off the screen's loop; nil without alerts. The lag pane hands
// over what it reads itself.
func (m *Model) observeState() tea.Cmd {
	a, st := m.p.Alerts, m.st
	if a == nil {
		return nil
	}
	return func() tea.Msg {
		a.ObserveState(st)
		return nil
	}
}

// Running returns the step running now, or "".
func (m *Model) Running() string { return m.run.id }

// Stop cancels a step still running after the program ended (a second
// Ctrl+C leaves at once) and returns a channel closed when its run has
// returned and its state is saved; nil when nothing runs. The caller must
// keep reading the runner's Out until then.
func (m *Model) Stop() <-chan struct{} {
	if m.run.id == "" || m.p.Watch || m.run.cancel == nil {
		return nil
	}
	m.run.cancel()
	return m.run.done
}

// QuitRequestMsg asks the screen to end as soon as it safely can: a running
// step is cancelled and the screen quits when its state is saved. main sends
// it for SIGINT/SIGTERM through tea.WithFilter.
type QuitRequestMsg struct{}

// Filter is a tea.WithFilter function: a quit that comes from outside the
// model (a signal) while a step runs becomes a QuitRequestMsg, so the step is
// cancelled cleanly rather than abandoned mid-statement.
func Filter(model tea.Model, msg tea.Msg) tea.Msg {
	m, ok := model.(*Model)
	if !ok || m.run.cancel == nil {
		return msg // nothing of this process runs (watch mode shows another's step)
	}
	switch msg.(type) {
	case tea.QuitMsg, tea.InterruptMsg:
		return QuitRequestMsg{}
	}
	return msg
}

// pidText describes this process for the status line.
func pidText() string { return fmt.Sprintf("this screen (pid %d)", os.Getpid()) }

// HolderSelf is the Holder text main passes in drive mode.
func HolderSelf() string { return pidText() }
