package ui

import (
	"context"
	"fmt"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/ui/conns"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/prompt"
)

// Ending a session from the connections pane: x on a session asks for the
// database's name, then the runner ends it and journals it.

type terminatedMsg struct {
	target prompt.Session
	ended  bool
	err    error
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

// connTerminate asks for the database's name to end the session under the
// connections pane's cursor.
func (m *Model) connTerminate() tea.Cmd {
	if m.p.Watch || m.p.Runner == nil {
		return m.refuseWatch("end a session")
	}
	s, ok := m.conns.Selected()
	if !ok {
		m.note(pane.Info, "x ends a session: put the cursor on one (enter on a group lists its sessions)")
		return nil
	}
	if s.Ours {
		m.note(pane.Warn, fmt.Sprintf("pid %d is pgbluegreen's own session: not ended", s.PID))
		return nil
	}
	m.prompt.OpenTerminate(prompt.Session{Server: s.Server, PID: s.PID, Started: s.BackendStart, Who: s.Who()})
	return nil
}
