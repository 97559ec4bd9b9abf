package ui

import (
	"context"
	"fmt"
	"time"

	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/conns"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/prompt"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
)

// The runner's lifecycle as the screen drives it: a step started (after
// its refusals, the servers' answer and the typed confirmation), run in a
// command off the screen's loop, its outcome in the log; a value set or a
// step skipped through the runner; a session ended; and the way out when
// the operator quits or the terminal goes while a step runs.

// runState is the step this screen runs, and how it is ending.
type runState struct {
	// id is the step running ("" none); dry says it is a dry run or a
	// rehearsal, which change nothing; start is when it started.
	id    string
	dry   bool
	start time.Time
	// cancel cancels it; done is closed when its run has returned.
	cancel context.CancelFunc
	done   chan struct{}
	// quitting: the screen quits when the step ends.
	quitting bool
	// probing is the destructive step whose servers are being read before
	// the operator is asked; hungUp says the terminal is gone.
	probing string
	hungUp  bool
}

// The runner's answers.
type (
	valueSavedMsg struct {
		key string
		err error
	}
	skippedMsg struct {
		id  string
		err error
	}
	terminatedMsg struct {
		target prompt.Session
		ended  bool
		err    error
	}
)

// StepFinishedMsg reports the end of a run started from the screen.
type StepFinishedMsg struct {
	ID      string
	DryRun  bool
	Check   bool
	Outcome steps.Outcome
	Err     error
}

// HangupMsg says the terminal is gone (SIGHUP: an SSH session dropped
// outside tmux). The screen cancels a running step, lets it end by its own
// logic (a cutover aborts or, past its switch, finishes) and quits, which
// restores the terminal. main sends it.
type HangupMsg struct{}

// lifecycle takes the messages of the runner's lifecycle: the runner's
// answers, what the prompts answered, the spinner, a hangup, a quit; ok is
// false for any other message.
func (m *Model) lifecycle(msg tea.Msg) (cmd tea.Cmd, ok bool) {
	switch msg := msg.(type) {
	case StepFinishedMsg:
		return m.finished(msg), true
	case probeMsg:
		return m.takeProbe(msg), true
	case skippedMsg:
		if msg.err != nil {
			m.note(pane.Warn, fmt.Sprintf("%s not skipped: %s", msg.id, fit.OneLine(msg.err)))
		} else {
			m.note(pane.Info, fmt.Sprintf("%s skipped by the operator", msg.id))
		}
		m.refreshState()
		return m.followNow(), true
	case valueSavedMsg:
		if msg.err != nil {
			m.note(pane.Error, fmt.Sprintf("value %s not saved: %s", msg.key, fit.OneLine(msg.err)))
		} else {
			m.note(pane.Info, fmt.Sprintf("value %s recorded by the operator", msg.key))
		}
		m.refreshState()
		return nil, true
	case terminatedMsg:
		return m.takeTerminated(msg), true
	case prompt.RunMsg:
		if m.run.id != "" {
			return nil, true
		}
		return m.startRun(msg.ID, steps.RunParams{Confirmed: true, Way: msg.Way}), true
	case prompt.SkipMsg:
		return skipCmd(m.p.Runner, msg.ID, msg.Reason), true
	case prompt.SetValueMsg:
		return setValueCmd(m.p.Runner, msg.Key, msg.Value, msg.Reason), true
	case prompt.TerminateMsg:
		return terminateCmd(m.p.Runner, msg.Session), true
	case prompt.QuitMsg:
		if m.run.id == "" {
			return tea.Quit, true
		}
		m.requestCancel()
		return nil, true
	case prompt.CancelMsg:
		m.requestCancel()
		return nil, true
	case spinner.TickMsg:
		if m.run.id == "" {
			return nil, true // the spinner's chain ends with the step: no idle redraws
		}
		m.spinner, cmd = m.spinner.Update(msg)
		return cmd, true
	case HangupMsg:
		return m.hangup(), true
	case QuitRequestMsg:
		if m.run.cancel == nil {
			return tea.Quit, true
		}
		m.requestCancel()
		return nil, true
	}
	return nil, false
}

// startRun runs a step (or its dry run) in a command.
func (m *Model) startRun(id string, p steps.RunParams) tea.Cmd {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// A dry run and a rehearsal change nothing: the step is not "running".
	m.run.cancel, m.run.id, m.run.dry, m.run.start, m.run.done = cancel, id, p.DryRun || p.Check, m.now(), done
	switch {
	case p.DryRun:
		m.note(pane.Info, "dry run of "+id+": the plan read from the servers now (read-only); nothing is executed")
	case p.Check:
		m.note(pane.Info, "rehearsal of "+id+": every live precheck, then it stops; nothing changes")
	case p.Way != "":
		m.note(pane.Info, fmt.Sprintf("▶ running %s, way out %s", id, p.Way))
	default:
		m.note(pane.Info, "▶ running "+id)
	}
	return tea.Batch(runStepCmd(ctx, m.p.Runner, id, p, done), m.spinner.Tick)
}

// runStepCmd runs one step off the UI goroutine; ctx cancels it.
// done is closed when Run returns, for Model.Stop.
func runStepCmd(ctx context.Context, r Runner, id string, p steps.RunParams, done chan<- struct{}) tea.Cmd {
	return func() tea.Msg {
		out, err := r.Run(ctx, id, p)
		close(done)
		return StepFinishedMsg{ID: id, DryRun: p.DryRun, Check: p.Check, Outcome: out, Err: err}
	}
}

// finished ends a run.
func (m *Model) finished(msg StepFinishedMsg) tea.Cmd {
	m.run.id, m.run.cancel = "", nil
	m.refreshState()
	if m.p.JournalPath != "" && !m.run.quitting {
		// Hold the outcome until the journal read that starts after this
		// point: two reads if one is in flight now.
		m.follow.wait = 1
		if m.follow.journal.InFlight() {
			m.follow.wait = 2
		}
		m.follow.hold = true
		defer func() { m.follow.hold = false }()
	}
	d := units.Elapsed(m.now().Sub(m.run.start))
	switch {
	case msg.Err != nil && steps.IsRefused(msg.Err):
		m.note(pane.Warn, fit.OneLine(msg.Err))
	case msg.Err != nil && msg.Check:
		m.note(pane.Error, fmt.Sprintf("rehearsal of %s failed: %s; nothing changed", msg.ID, fit.OneLine(msg.Err)))
	case msg.Check:
		m.note(pane.OK, fmt.Sprintf("rehearsal of %s: every precheck passed (%s); nothing changed", msg.ID, d))
	case msg.Err != nil && msg.DryRun:
		m.note(pane.Error, fmt.Sprintf("dry run of %s failed: %s; nothing was executed", msg.ID, fit.OneLine(msg.Err)))
	case msg.Err != nil:
		rec := m.st.Step(msg.ID)
		m.note(pane.Error, fmt.Sprintf("%s %s after %s: %s", msg.ID, rec.Status, d, fit.OneLine(msg.Err)))
	case msg.DryRun:
		m.note(pane.Info, fmt.Sprintf("%s: dry run printed above; nothing was executed", msg.ID))
	default:
		m.note(pane.OK, fmt.Sprintf("%s: %s (%s)", msg.ID, msg.Outcome, d))
		// Done: the cursor moves on to the next step, the usual next key press.
		m.runbook.Advance(msg.ID)
	}
	if m.run.quitting {
		return tea.Quit
	}
	return m.followNow()
}

// requestCancel cancels the running step; the screen quits when it ends.
func (m *Model) requestCancel() {
	m.run.quitting = true
	if m.run.cancel != nil {
		m.run.cancel()
	}
	m.note(pane.Warn, fmt.Sprintf("cancelling %s; the screen closes when its state is saved (Ctrl+C again leaves at once)", m.run.id))
}

// hangup handles HangupMsg.
func (m *Model) hangup() tea.Cmd {
	m.run.hungUp = true
	m.prompt.Close()
	if m.run.cancel == nil {
		return tea.Quit
	}
	if !m.run.quitting {
		m.requestCancel()
	}
	return nil
}

// setValueCmd records an operator's value (checked against its type,
// journaled with the reason) through the runner.
func setValueCmd(r Runner, key, value, reason string) tea.Cmd {
	return func() tea.Msg { return valueSavedMsg{key: key, err: r.SetValue(key, value, reason)} }
}

// skipCmd marks a step skipped with the operator's reason (state and journal).
func skipCmd(r Runner, id, reason string) tea.Cmd {
	return func() tea.Msg { return skippedMsg{id: id, err: r.Skip(id, reason)} }
}

// terminateCmd ends the chosen session through the runner, which journals it.
func terminateCmd(r Runner, t prompt.Session) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		ended, err := r.TerminateSession(ctx, t.Server, t.PID, t.Started, t.Who)
		return terminatedMsg{target: t, ended: ended, err: err}
	}
}

// takeTerminated reports the end of a session and reads who is connected
// again.
func (m *Model) takeTerminated(msg terminatedMsg) tea.Cmd {
	t := msg.target
	switch {
	case msg.err != nil:
		m.note(pane.Error, fmt.Sprintf("session pid %d on %s not ended: %s", t.PID, t.Server, fit.OneLine(msg.err)))
	case msg.ended:
		m.note(pane.OK, fmt.Sprintf("session pid %d on %s (%s) ended (journaled)", t.PID, t.Server, t.Who))
	default:
		m.note(pane.Warn, fmt.Sprintf("session pid %d on %s was gone already; nothing ended", t.PID, t.Server))
	}
	return m.toPane(m.conns, poll.SoonMsg{Source: conns.Source})
}

// Before a destructive step asks for the database's name, the servers are
// asked (in a command) whether there is anything to do: a step whose
// check finds its work done is recorded so without a name typed, and a
// cutover or rollback that stopped half way offers its two ways out
// instead, f to finish forward, u to undo back, each naming the sub-steps
// it runs, then confirmed by the name like the step itself.

// probeTimeout bounds the reads before a destructive step: the cutover's
// reads PgBouncer's console and both servers.
const probeTimeout = 30 * time.Second

// probeMsg is what the servers said before a destructive step.
type probeMsg struct {
	id      string
	ways    steps.WaysOut
	halfWay bool
	outcome steps.Outcome
	detail  string
	err     error
}

// probeCmd reads whether step id stopped half way (cutover, rollback) or
// has its work done already (recording it so).
func probeCmd(r Runner, id string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		// Its reads are journaled under the step they are made for.
		ctx = steps.WithStep(ctx, id)
		msg := probeMsg{id: id}
		if msg.ways, msg.halfWay, msg.err = r.WaysOut(ctx, id); msg.err != nil || msg.halfWay {
			return msg
		}
		msg.outcome, msg.detail, msg.err = r.RecordIfDone(ctx, id)
		return msg
	}
}

// startProbe asks the servers about a destructive step before asking the
// operator.
func (m *Model) startProbe(id string) tea.Cmd {
	m.run.probing = id
	m.status.SetFlash("checking " + id + " against the servers…")
	return probeCmd(m.p.Runner, id)
}

// takeProbe acts on what the servers said: a refusal, nothing to do, the
// ways out, or the usual confirmation.
func (m *Model) takeProbe(msg probeMsg) tea.Cmd {
	m.run.probing = ""
	m.status.SetFlash("")
	m.refreshState()
	switch {
	case m.run.hungUp || m.run.quitting:
		return nil
	case msg.err != nil && steps.IsRefused(msg.err):
		m.note(pane.Warn, fit.OneLine(msg.err))
	case msg.err != nil:
		m.note(pane.Error, fmt.Sprintf("%s: the servers could not be read before asking: %s; nothing ran", msg.id, fit.OneLine(msg.err)))
	case msg.halfWay:
		m.prompt.OpenWays(msg.id, msg.ways)
		m.note(pane.Warn, fmt.Sprintf("%s stopped half way: %s; f finishes forward to %s, u undoes back to %s", msg.id, msg.ways.Where, msg.ways.To, msg.ways.From))
	case msg.outcome != "":
		m.note(pane.OK, fmt.Sprintf("%s: %s (%s): nothing to do, so no confirmation asked", msg.id, msg.outcome, units.Or(msg.detail, "its check found its work done")))
		m.runbook.Advance(msg.id)
		return m.followNow()
	default:
		m.prompt.OpenConfirm(msg.id)
	}
	return nil
}
