package ui

import (
	"context"
	"fmt"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
)

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
	m.probing = id
	m.status.SetFlash("checking " + id + " against the servers…")
	return probeCmd(m.p.Runner, id)
}

// takeProbe acts on what the servers said: a refusal, nothing to do, the
// ways out, or the usual confirmation.
func (m *Model) takeProbe(msg probeMsg) tea.Cmd {
	m.probing = ""
	m.status.SetFlash("")
	m.refreshState()
	switch {
	case m.hungUp || m.quitting:
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

// HangupMsg says the terminal is gone (SIGHUP: an SSH session dropped
// outside tmux). The screen cancels a running step, lets it end by its own
// logic (a cutover aborts or, past its switch, finishes) and quits, which
// restores the terminal. main sends it.
type HangupMsg struct{}

// hangup handles HangupMsg.
func (m *Model) hangup() tea.Cmd {
	m.hungUp = true
	m.prompt.Close()
	if m.cancel == nil {
		return tea.Quit
	}
	if !m.quitting {
		m.requestCancel()
	}
	return nil
}
