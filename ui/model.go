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
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/keys"
	"github.com/pgbluegreen/pgbluegreen/ui/theme"
)

// Runner is what the screen uses of *steps.Runner; tests give a fake.
type Runner interface {
	Run(ctx context.Context, id string, p steps.RunParams) (steps.Outcome, error)
	Preconditions(id string, p steps.RunParams) string
	Env(step string) *steps.Env
	Skip(id, reason string) error
	// WaysOut says whether a cutover or rollback stopped half way, and its
	// two ways out.
	WaysOut(ctx context.Context, step string) (steps.WaysOut, bool, error)
	// RecordIfDone records a step done when its check finds its work done.
	RecordIfDone(ctx context.Context, id string) (steps.Outcome, string, error)
	// TerminateSession ends one client session, journaled.
	TerminateSession(ctx context.Context, server string, pid int32, started time.Time, who string) (bool, error)
	// SetValue records an operator's value: typed, journaled with the reason.
	SetValue(key, value, reason string) error
}

// Store is what the screen uses of *state.Store.
type Store interface {
	Snapshot() *state.State
	Update(fn func(*state.State) error) error
	Reload() (*state.State, error)
}

// LagFunc reads blue's slots once; SubscriptionsFunc green's subscriptions;
// VersionFunc one server's version. steps.Monitor's methods fit them.
type (
	LagFunc           func(ctx context.Context) (steps.LagSample, error)
	SubscriptionsFunc func(ctx context.Context) ([]steps.Subscription, error)
	VersionFunc       func(ctx context.Context) (string, error)
)

// Params are what the screen is built from.
type Params struct {
	Config *steps.Config
	// Steps are the strategy's steps, in order.
	Steps  []*steps.Step
	Runner Runner
	Store  Store
	// Lines is the runner's Out: step output, streamed into the log.
	Lines <-chan steps.Line
	// Lag, Subscriptions and the versions are polled; any may be nil.
	Lag                       LagFunc
	Subscriptions             SubscriptionsFunc
	BlueVersion, GreenVersion VersionFunc
	// Traffic says where writes go; read every slowEvery.
	Traffic TrafficFunc
	// Connections says who is connected; read every connsEvery while the
	// connections pane is shown.
	Connections ConnectionsFunc
	// Drift compares blue's and green's schemas; read every slowEvery.
	Drift DriftFunc
	// SyncProgress reads the initial sync's progress; read every syncEvery
	// while a subscription has tables still to sync.
	SyncProgress SyncProgressFunc
	// Alerts, when set, is fed every read (nil: no alerts from this screen);
	// AlertsNote says where they go, or who sends them, in the log at start.
	Alerts     AlertSink
	AlertsNote string
	// PollTimeout bounds every poll (default 5 s).
	PollTimeout time.Duration
	// JournalPath is followed into the log; StatePath names the lock to
	// report in watch mode.
	JournalPath, StatePath string
	// Database is blue's database name, typed to confirm a destructive step.
	Database string
	// Watch shows the same screen read-only: it follows the files of the
	// instance that drives and offers no key that executes anything.
	Watch bool
	// Holder describes this instance as the lock's holder (drive mode).
	Holder string
	// Now and Location make the clock fixed in tests; defaults time.Now, time.Local.
	Now      func() time.Time
	Location *time.Location
}

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

type promptKind int

const (
	promptNone promptKind = iota
	promptConfirm
	promptKey
	promptValue
	promptQuit
	promptSkip
	// promptWays offers the two ways out of a cutover stopped half way.
	promptWays
	// promptTerminate confirms ending a session by the database's name.
	promptTerminate
	promptReason
)

// Model is the whole screen.
type Model struct {
	p       Params
	styles  theme.Styles
	brush   *theme.Brushes // made on first View
	keys    keys.KeyMap
	help    help.Model
	spinner spinner.Model
	input   lineInput

	width, height int
	focus         focus
	st            *state.State

	cursor, listOff, detailOff, valCursor int
	log                                   logPane
	gauge                                 gauge

	interval          time.Duration
	lagGen, followGen int
	journalOff        int64
	journalLoaded     bool
	followInFlight    bool
	// followAgain asks for another read when the one in flight returns:
	// it may have started before the lines it was asked for were written.
	followAgain bool
	// pending are the screen's notes about a finished step, held until the
	// journal read that follows the step, so they come after its lines.
	pending           []logLine
	pendingWait       int
	holdNotes         bool
	verInFlight       [2]bool
	blueVer, greenVer string
	holder            string

	traffic     steps.Traffic
	trafficPoll poller
	// lastFeed is the feed in use the last time the traffic was known.
	lastFeed string

	sync syncView

	drift      steps.Drift
	driftPoll  poller
	driftSince time.Time

	conns               steps.Connections
	connsPoll           poller
	connCursor, connOff int
	expanded            map[string]bool
	kill                killTarget

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

	prompt    promptKind
	promptErr string
	editKey   string
	editValue string // the value promptReason asks a reason for
	confirmID string
	// way is the way out being confirmed ("finish", "undo"), ways the two
	// offered.
	way   string
	ways  steps.WaysOut
	flash string

	detail detailCache
	// checks are the PASS/WARN/FAIL lines of each step's last run;
	// checksGen changes with them (the detail pane's cache key).
	checks    map[string]*checkTally
	checksGen int
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
	m := &Model{p: p, styles: theme.New(), keys: keys.New(), help: help.New(), interval: time.Second}
	m.trafficPoll.every = slowEvery
	m.connsPoll.every = connsEvery
	m.driftPoll.every = slowEvery
	m.sync.poll.every = syncEvery
	if p.Config != nil {
		if p.Config.Lag.Interval.Duration > 0 {
			m.interval = p.Config.Lag.Interval.Duration
		}
		m.gauge.caughtUp = p.Config.Cutover.MaxLagBytes
	}
	m.spinner = spinner.New(spinner.WithSpinner(spinner.Line), spinner.WithStyle(m.styles.Running))
	m.input = newLineInput(m.styles)
	m.log = newLogPane(20000)
	m.holder = p.Holder
	if p.Store != nil {
		m.st = p.Store.Snapshot()
	}
	if m.st == nil {
		m.st = &state.State{}
	}
	// Start on the first step still to do: after a restart that is where
	// the run stands. An optional step that a later step went past (`run
	// --through` passes over optional steps) is not.
	past := -1 // the last step done
	for i, s := range p.Steps {
		if m.st.Step(s.ID).Status == state.Done {
			past = i
		}
	}
	for i, s := range p.Steps {
		if r := m.st.Step(s.ID); r.Status != state.Done && r.Status != state.Skipped && !(s.Optional && i < past) {
			m.cursor = i
			break
		}
	}
	if p.AlertsNote != "" {
		m.note(levelInfo, p.AlertsNote)
	}
	m.syncKeys()
	return m
}

func (m *Model) now() time.Time { return m.p.Now() }

// Init starts the polling and following chains and the output listener.
func (m *Model) Init() tea.Cmd {
	cmds := []tea.Cmd{lagTickCmd(m.lagGen, m.interval), m.pollDue(), waitLineCmd(m.p.Lines)}
	if m.p.JournalPath != "" || m.p.Watch {
		m.followInFlight = true
		cmds = append(cmds, followTickCmd(m.followGen, m.followEvery()),
			followCmd(m.followGen, m.p.JournalPath, m.journalOff, m.p.Store, m.p.StatePath, m.p.Watch))
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

// pollDue starts the polls whose time has come.
func (m *Model) pollDue() tea.Cmd {
	now := m.now()
	var cmds []tea.Cmd
	if m.p.Lag != nil && m.gauge.blue.due(now) {
		m.gauge.blue.inFlight = true
		cmds = append(cmds, pollLagCmd(m.lagGen, m.p.Lag, m.p.PollTimeout))
	}
	if m.p.Subscriptions != nil && m.gauge.green.due(now) {
		m.gauge.green.inFlight = true
		cmds = append(cmds, pollSubsCmd(m.lagGen, m.p.Subscriptions, m.p.PollTimeout))
	}
	if m.p.Traffic != nil && m.trafficPoll.due(now) {
		m.trafficPoll.inFlight = true
		cmds = append(cmds, pollTrafficCmd(m.lagGen, m.p.Traffic, m.p.PollTimeout))
	}
	if m.p.Drift != nil && m.driftPoll.due(now) {
		m.driftPoll.inFlight = true
		cmds = append(cmds, pollDriftCmd(m.lagGen, m.p.Drift, m.p.PollTimeout))
	}
	if m.syncWanted() && m.sync.poll.due(now) {
		m.sync.poll.inFlight = true
		cmds = append(cmds, pollSyncCmd(m.lagGen, m.p.SyncProgress, m.p.PollTimeout))
	}
	if m.p.Connections != nil && m.focus == focusConns && m.connsPoll.due(now) {
		m.connsPoll.inFlight = true
		cmds = append(cmds, pollConnsCmd(m.lagGen, m.p.Connections, m.p.PollTimeout))
	}
	// Versions once, and only from a server that answers, so a server that
	// is down costs one query per backoff, not two.
	if m.blueVer == "" && m.p.BlueVersion != nil && !m.verInFlight[0] && m.gauge.blue.failures == 0 {
		m.verInFlight[0] = true
		cmds = append(cmds, versionCmd(true, m.p.BlueVersion, m.p.PollTimeout))
	}
	if m.greenVer == "" && m.p.GreenVersion != nil && !m.verInFlight[1] && m.gauge.green.failures == 0 {
		m.verInFlight[1] = true
		cmds = append(cmds, versionCmd(false, m.p.GreenVersion, m.p.PollTimeout))
	}
	return tea.Batch(cmds...)
}

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
	m.syncKeys()
	return m, cmd
}

func (m *Model) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.Width = msg.Width
		return nil
	case tea.KeyMsg:
		return m.handleKey(msg)
	case lagTickMsg:
		if msg.gen != m.lagGen {
			return nil
		}
		return tea.Batch(lagTickCmd(m.lagGen, m.interval), m.pollDue(), m.observeState())
	case lagResultMsg:
		if msg.gen != m.lagGen {
			return nil
		}
		if msg.err != nil {
			m.gauge.blue.failed(m.now(), m.interval, msg.err)
			return m.observeLag(msg)
		}
		m.gauge.blue.succeeded(m.now())
		m.gauge.add(msg.sample)
		m.advanceSync()
		return m.observeLag(msg)
	case subsResultMsg:
		if msg.gen != m.lagGen {
			return nil
		}
		if msg.err != nil {
			m.gauge.green.failed(m.now(), m.interval, msg.err)
			return m.observeSubs(msg)
		}
		m.gauge.green.succeeded(m.now())
		m.gauge.subs = msg.subs
		m.advanceSync()
		return m.observeSubs(msg)
	case trafficMsg:
		if msg.gen == m.lagGen {
			m.takeTraffic(msg)
		}
		return nil
	case syncMsg:
		if msg.gen == m.lagGen {
			m.takeSync(msg)
		}
		return nil
	case versionMsg:
		i := 1
		if msg.blue {
			i = 0
		}
		m.verInFlight[i] = false
		if msg.err == nil {
			if msg.blue {
				m.blueVer = msg.version
			} else {
				m.greenVer = msg.version
			}
		}
		return nil
	case followTickMsg:
		if msg.gen != m.followGen {
			return nil
		}
		return tea.Batch(followTickCmd(m.followGen, m.followEvery()), m.followNow())
	case followMsg:
		if msg.gen != m.followGen {
			return nil
		}
		m.applyFollow(msg)
		if m.followAgain {
			m.followAgain = false
			return m.followNow()
		}
		return nil
	case lineMsg:
		m.refreshState()
		if m.p.JournalPath == "" {
			m.takeLine(steps.Line(msg))
			m.log.add(m.lineText(steps.Line(msg)), levelOf(msg.Level))
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
			m.note(levelWarn, fmt.Sprintf("%s not skipped: %s", msg.id, fit.OneLine(msg.err)))
		} else {
			m.note(levelInfo, fmt.Sprintf("%s skipped by the operator", msg.id))
		}
		m.refreshState()
		return m.followNow()
	case valueSavedMsg:
		if msg.err != nil {
			m.note(levelError, fmt.Sprintf("value %s not saved: %s", msg.key, fit.OneLine(msg.err)))
		} else {
			m.note(levelInfo, fmt.Sprintf("value %s recorded by the operator", msg.key))
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
	case connsMsg:
		if msg.gen == m.lagGen {
			m.takeConns(msg)
		}
		return nil
	case driftMsg:
		if msg.gen != m.lagGen {
			return nil
		}
		m.takeDrift(msg)
		d := msg.d
		return observeCmd(m.p.Alerts, func(a AlertSink) {
			if msg.err == nil {
				a.ObserveDrift(d)
			}
		})
	case terminatedMsg:
		m.takeTerminated(msg)
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
	return nil
}

// selected returns the step under the cursor.
func (m *Model) selected() *steps.Step {
	if m.cursor < 0 || m.cursor >= len(m.p.Steps) {
		return nil
	}
	return m.p.Steps[m.cursor]
}

// pidText describes this process for the status line.
func pidText() string { return fmt.Sprintf("this screen (pid %d)", os.Getpid()) }

// HolderSelf is the Holder text main passes in drive mode.
func HolderSelf() string { return pidText() }
