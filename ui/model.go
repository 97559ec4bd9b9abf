// Package ui is pgbluegreen's full-screen program: the runbook as a
// navigable list with each step's detail, the values table, the live lag
// gauge of blue's slots and green's subscriptions, and the log of the run.
//
// The model never does I/O itself: steps run, servers are polled and files
// are followed in commands, and their results come back as messages. Polling
// is one re-armed tick chain tagged with a generation number.
package ui

import (
	"context"
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
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/keys"
	"github.com/pgbluegreen/pgbluegreen/ui/lag"
	"github.com/pgbluegreen/pgbluegreen/ui/logpane"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/prompt"
	"github.com/pgbluegreen/pgbluegreen/ui/runbook"
	"github.com/pgbluegreen/pgbluegreen/ui/statusline"
	"github.com/pgbluegreen/pgbluegreen/ui/stepstate"
	"github.com/pgbluegreen/pgbluegreen/ui/theme"
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
	p       Params
	ctx     pane.Context
	styles  theme.Styles
	keys    *keys.KeyMap
	help    help.Model
	spinner spinner.Model

	width, height int
	focus         focus
	st            *state.State

	runbook *runbook.Model
	detail  *detail.Model
	values  *values.Model
	log     *logpane.Model
	lag     *lag.Model

	interval time.Duration
	// ticks is the one chain every poll of the servers is read on; the
	// journal is followed on a chain of its own pace.
	ticks, followTicks *poll.Chain
	journal            *poll.Poller[followed]
	journalOff         int64
	// pending are the screen's notes about a finished step, held until the
	// journal read that follows the step, so they come after its lines.
	pending     []heldNote
	pendingWait int
	holdNotes   bool

	status *statusline.Model

	conns *conns.Model

	running  string
	runDry   bool
	runStart time.Time
	cancel   context.CancelFunc
	runDone  chan struct{}
	quitting bool
	// probing is the destructive step whose servers are being read before
	// the operator is asked; hungUp says the terminal is gone.
	probing string
	hungUp  bool

	prompt *prompt.Model

	// checks are the PASS/WARN/FAIL lines of each step's last run.
	checks *stepstate.Checks
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
	m := &Model{p: p, ctx: ctx, styles: ctx.Styles, keys: ctx.Keys, help: help.New(), interval: time.Second}
	var caughtUp int64
	if p.Config != nil {
		if p.Config.Lag.Interval.Duration > 0 {
			m.interval = p.Config.Lag.Interval.Duration
		}
		caughtUp = p.Config.Cutover.MaxLagBytes
	}
	m.ticks, m.followTicks = poll.NewChain("poll"), poll.NewChain("follow")
	t := p.PollTimeout
	m.lag = lag.New(m.ctx, lag.Params{Chain: m.ticks, Slots: p.Lag, Subscriptions: p.Subscriptions, SyncProgress: p.SyncProgress, Drift: p.Drift,
		Interval: m.interval, Timeout: t, CaughtUp: caughtUp, Alerts: p.Alerts})
	m.conns = conns.New(m.ctx, m.ticks, p.Connections, 2*t)
	sp := statusline.Params{Chain: m.ticks, Traffic: p.Traffic, BlueVersion: p.BlueVersion, GreenVersion: p.GreenVersion, Timeout: t, Watch: p.Watch}
	if p.Config != nil {
		sp.Strategy = p.Config.Strategy
	}
	m.status = statusline.New(m.ctx, sp)
	m.status.SetLock(p.Holder)
	m.journal = poll.New(m.followTicks, poll.Params[followed]{Source: sourceJournal, Timeout: t})
	m.spinner = spinner.New(spinner.WithSpinner(spinner.Line), spinner.WithStyle(m.styles.Running))
	m.prompt = prompt.New(m.ctx, p.Database)
	m.log = logpane.New(m.ctx, logpane.Limit)
	m.values = values.New(m.ctx)
	if p.Store != nil {
		m.st = p.Store.Snapshot()
	}
	if m.st == nil {
		m.st = &state.State{}
	}
	m.checks = &stepstate.Checks{}
	m.runbook = runbook.New(m.ctx, p.Steps, m.st, m.checks)
	m.detail = detail.New(m.ctx, p.Runner, p.Watch, m.checks)
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
		cmds = append(cmds, m.followTicks.Tick(m.followEvery()), m.followNow())
	}
	return tea.Batch(cmds...)
}

// followEvery is the pace of following the files: brisk while a step runs,
// so its statements show as they happen.
func (m *Model) followEvery() time.Duration {
	if m.running != "" {
		return 300 * time.Millisecond
	}
	return time.Second
}

// pollDue starts the polls whose time has come: the panes that read
// something take the chain's tick, now.
func (m *Model) pollDue() tea.Cmd { return m.fanOut(m.ticks.Msg()) }

// Running returns the step running now, or "".
func (m *Model) Running() string { return m.running }

// Stop cancels a step still running after the program ended (a second
// Ctrl+C leaves at once) and returns a channel closed when its run has
// returned and its state is saved; nil when nothing runs. The caller must
// keep reading the runner's Out until then.
func (m *Model) Stop() <-chan struct{} {
	if m.running == "" || m.p.Watch || m.cancel == nil {
		return nil
	}
	m.cancel()
	return m.runDone
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
	if !ok || m.cancel == nil {
		return msg // nothing of this process runs (watch mode shows another's step)
	}
	switch msg.(type) {
	case tea.QuitMsg, tea.InterruptMsg:
		return QuitRequestMsg{}
	}
	return msg
}

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.update(msg)
	m.compose()
	return m, cmd
}

func (m *Model) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.Width = msg.Width
		m.status.SetSize(msg.Width, msg.Height)
		m.prompt.SetSize(msg.Width, msg.Height)
		m.layout()
		return nil
	case tea.KeyMsg:
		return m.handleKey(msg)
	case poll.TickMsg:
		switch {
		case m.ticks.Current(msg):
			return tea.Batch(m.ticks.Tick(m.interval), m.pollDue(), m.observeState())
		case m.followTicks.Current(msg):
			return tea.Batch(m.followTicks.Tick(m.followEvery()), m.followNow())
		}
		return nil
	case poll.Msg[followed]:
		if !m.journal.Take(msg, m.now()) {
			return nil
		}
		m.applyFollow(msg.Value)
		if m.journal.Again() {
			return m.followNow()
		}
		return nil
	case lineMsg:
		m.refreshState()
		if m.p.JournalPath == "" {
			m.checks.TakeLine(msg.Step, msg.Text)
			m.log.Add(m.lineText(steps.Line(msg)), logpane.LevelOf(msg.Level))
			return waitLineCmd(m.p.Lines)
		}
		// The journal has the line too, in order with the statements the
		// step ran: read it now rather than show the line out of order.
		return tea.Batch(waitLineCmd(m.p.Lines), m.followNow())
	case linesClosedMsg:
		return nil
	case StepFinishedMsg:
		return m.finished(msg)
	case skippedMsg:
		if msg.err != nil {
			m.note(pane.Warn, fmt.Sprintf("%s not skipped: %s", msg.id, fit.OneLine(msg.err)))
		} else {
			m.note(pane.Info, fmt.Sprintf("%s skipped by the operator", msg.id))
		}
		m.refreshState()
		return m.followNow()
	case valueSavedMsg:
		if msg.err != nil {
			m.note(pane.Error, fmt.Sprintf("value %s not saved: %s", msg.key, fit.OneLine(msg.err)))
		} else {
			m.note(pane.Info, fmt.Sprintf("value %s recorded by the operator", msg.key))
		}
		m.refreshState()
		return nil
	case spinner.TickMsg:
		if m.running == "" {
			return nil // the spinner's chain ends with the step: no idle redraws
		}
		var cmd tea.Cmd
		m.spinner, cmd = m.spinner.Update(msg)
		return cmd
	case probeMsg:
		return m.takeProbe(msg)
	case terminatedMsg:
		return m.takeTerminated(msg)
	case prompt.RunMsg:
		if m.running != "" {
			return nil
		}
		return m.startRun(msg.ID, steps.RunParams{Confirmed: true, Way: msg.Way})
	case prompt.TerminateMsg:
		return terminateCmd(m.p.Runner, msg.Session)
	case prompt.SkipMsg:
		return skipCmd(m.p.Runner, msg.ID, msg.Reason)
	case prompt.SetValueMsg:
		return setValueCmd(m.p.Runner, msg.Key, msg.Value, msg.Reason)
	case prompt.QuitMsg:
		if m.running == "" {
			return tea.Quit
		}
		m.requestCancel()
		return nil
	case prompt.CancelMsg:
		m.requestCancel()
		return nil
	case pane.NoteMsg:
		m.note(msg.Level, msg.Text)
		return nil
	case HangupMsg:
		return m.hangup()
	case QuitRequestMsg:
		if m.cancel == nil {
			return tea.Quit
		}
		m.requestCancel()
		return nil
	}
	return m.fanOut(msg)
}

// panes are the screen's panes, for the messages every one may take.
func (m *Model) panes() []pane.Component {
	return []pane.Component{m.runbook, m.detail, m.values, m.log, m.lag, m.conns, m.status}
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

// compose hands the panes what changed in the screen's own state: the
// focus, and the keys that apply now.
func (m *Model) compose() {
	m.log.SetFocused(m.focus == focusLog)
	m.values.SetFocused(m.focus == focusValues)
	m.runbook.SetFocused(m.focus == focusSteps)
	m.runbook.SetState(m.st)
	m.runbook.SetRun(m.runInfo())
	m.detail.SetStep(m.runbook.Selected())
	m.detail.SetFocused(m.focus == focusDetail)
	m.detail.SetState(m.st)
	m.detail.SetRun(m.runInfo())
	m.conns.SetFocused(m.focus == focusConns)
	going := ""
	if m.quitting {
		going = m.running
	}
	m.status.SetCancelling(going)
	m.prompt.SetState(m.st)
	m.prompt.SetRunning(m.running)
	m.values.SetState(m.st)
	m.syncKeys()
}

// selected returns the step under the cursor.
func (m *Model) selected() *steps.Step { return m.runbook.Selected() }

// runInfo is the step running now, for the panes that show it.
func (m *Model) runInfo() stepstate.Run {
	return stepstate.Run{ID: m.running, Dry: m.runDry, Start: m.runStart, Spinner: m.spinner.View(), Watch: m.p.Watch}
}

// pidText describes this process for the status line.
func pidText() string { return fmt.Sprintf("this screen (pid %d)", os.Getpid()) }

// HolderSelf is the Holder text main passes in drive mode.
func HolderSelf() string { return pidText() }
