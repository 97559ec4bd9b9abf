package ui

import (
	"fmt"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/prompt"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
)

// The keys: an open prompt takes them all; else the screen's own (quit,
// help, the focus, and what runs something: a step, its dry run or
// rehearsal, a skip, a value's edit, a session's end) are handled here, the
// log's keys go to the log wherever the focus is, and the rest to the
// focused pane.

// syncKeys enables the keys that apply now, so help never offers a key that
// does nothing: no run key while a step runs or in watch mode, no value
// editing in watch mode, only the prompt's answers while one is open.
func (m *Model) syncKeys() {
	k := m.keys
	prompt := m.prompt.Open()
	canExec := !m.p.Watch && m.p.Runner != nil && m.run.id == "" && m.run.probing == "" && !m.run.quitting
	for _, b := range []*key.Binding{&k.Up, &k.Down, &k.Focus, &k.Back, &k.PageUp, &k.PageDn, &k.Top, &k.Follow, &k.Help, &k.Quit} {
		b.SetEnabled(!prompt)
	}
	k.Run.SetEnabled(!prompt && canExec && (m.focus == focusSteps || m.focus == focusDetail))
	k.Expand.SetEnabled(!prompt && m.focus == focusConns)
	k.Terminate.SetEnabled(!prompt && m.focus == focusConns && !m.p.Watch && m.p.Runner != nil)
	if !prompt && !m.p.Watch && m.focus == focusValues {
		k.Run.SetEnabled(false)
	}
	runbook := m.focus != focusConns
	sel := m.selected()
	k.Rehearse.SetEnabled(!prompt && canExec && runbook && m.focus != focusValues && sel != nil && sel.Rehearse != nil)
	k.DryRun.SetEnabled(!prompt && m.p.Runner != nil && runbook)
	k.Edit.SetEnabled(!prompt && !m.p.Watch && m.p.Store != nil && runbook)
	k.Add.SetEnabled(!prompt && !m.p.Watch && m.p.Store != nil && runbook)
	k.Skip.SetEnabled(!prompt && canExec && m.focus != focusValues && runbook)
	// The prompt's own keys (confirm, cancel, the ways out) are the
	// prompt's to enable.
}

// handleKey dispatches a key press.
func (m *Model) handleKey(msg tea.KeyMsg) tea.Cmd {
	if m.prompt.Open() {
		return m.toPane(m.prompt, msg)
	}
	if msg.String() == "ctrl+c" && m.run.quitting {
		return tea.Quit // second Ctrl+C: leave now; the next start marks the step interrupted
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Quit):
		if m.run.id != "" && !m.p.Watch {
			if m.run.quitting {
				return nil
			}
			m.prompt.OpenQuit()
			return nil
		}
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.help.ShowAll = !m.help.ShowAll
	case key.Matches(msg, k.Focus):
		m.focus = (m.focus + 1) % focusCount
		return m.focusChanged()
	case key.Matches(msg, k.Back):
		m.focus = (m.focus + focusCount - 1) % focusCount
		return m.focusChanged()
	case key.Matches(msg, k.Up, k.Down, k.Top):
		return m.toFocused(msg)
	case key.Matches(msg, k.Follow, k.PageUp, k.PageDn):
		// The log's keys, wherever the focus is.
		return m.toLog(msg)
	case msg.String() == "enter" && m.focus == focusValues:
		return m.editSelectedValue()
	case m.focus == focusConns && msg.String() == "enter":
		return m.toPane(m.conns, msg)
	case m.focus == focusConns && key.Matches(msg, k.Terminate):
		return m.connTerminate()
	case m.focus == focusConns && (msg.String() == "r" || msg.String() == "p" || msg.String() == "s" || msg.String() == "e" || msg.String() == "a"):
		m.note(pane.Info, "the connections pane is read here; tab back to the runbook to run, plan, skip or edit")
	case msg.String() == "enter" || msg.String() == "r":
		return m.runSelected()
	case key.Matches(msg, k.DryRun):
		return m.dryRunKey()
	case key.Matches(msg, k.Rehearse):
		if s := m.selected(); s != nil {
			return m.startRun(s.ID, steps.RunParams{Check: true})
		}
	case key.Matches(msg, k.Edit):
		if m.focus == focusValues {
			return m.editSelectedValue()
		}
		return m.editNeeded()
	case key.Matches(msg, k.Skip):
		s := m.selected()
		switch {
		case s == nil:
		case m.p.Watch || m.p.Runner == nil:
			return m.refuseWatch("skip " + s.ID)
		case m.run.id != "":
			m.note(pane.Warn, fmt.Sprintf("%s is running: skip waits until it ends", m.run.id))
		default:
			m.prompt.OpenSkip(s.ID)
		}
	case key.Matches(msg, k.Add):
		if !k.Add.Enabled() {
			return m.refuseWatch("add a value")
		}
		m.prompt.OpenKey()
	}
	return nil
}

// toFocused hands a key to the focused pane.
func (m *Model) toFocused(msg tea.KeyMsg) tea.Cmd {
	switch m.focus {
	case focusSteps:
		// A step newly under the cursor shows its detail from the top.
		m.detail.ScrollTop()
		return m.toPane(m.runbook, msg)
	case focusDetail:
		return m.toPane(m.detail, msg)
	case focusValues:
		return m.toPane(m.values, msg)
	case focusLog:
		return m.toLog(msg)
	case focusConns:
		return m.toPane(m.conns, msg)
	}
	return nil
}

// toLog hands a key to the log, sized first: a page of the log is its
// height.
func (m *Model) toLog(msg tea.KeyMsg) tea.Cmd {
	m.layout()
	return m.toPane(m.log, msg)
}

// focusChanged starts reading who is connected as soon as its pane shows.
func (m *Model) focusChanged() tea.Cmd {
	if m.focus != focusConns {
		return nil
	}
	m.compose() // the pane reads as soon as it shows
	return m.pollDue()
}

// refuseWatch says, in the log, why watch mode does not do something.
func (m *Model) refuseWatch(what string) tea.Cmd {
	m.note(pane.Warn, "watch mode is read-only: it cannot "+what+"; the instance holding the lock drives the run")
	return nil
}

// runSelected runs the step under the cursor, after its refusals and, for a
// destructive step, the typed confirmation.
func (m *Model) runSelected() tea.Cmd {
	s := m.selected()
	switch {
	case s == nil:
		return nil
	case m.p.Watch || m.p.Runner == nil:
		return m.refuseWatch("run " + s.ID)
	case m.run.id != "":
		m.note(pane.Warn, fmt.Sprintf("%s is running: one step at a time", m.run.id))
		return nil
	case m.run.probing != "":
		return nil
	}
	if why := m.p.Runner.Preconditions(s.ID, steps.RunParams{Confirmed: true}); why != "" {
		m.note(pane.Warn, fmt.Sprintf("%s refused: %s", s.ID, why))
		return nil
	}
	if s.Destructive {
		// The servers first: nothing to do needs no name, and a cutover
		// stopped half way offers its ways out instead.
		return m.startProbe(s.ID)
	}
	return m.startRun(s.ID, steps.RunParams{})
}

// dryRunKey is p: the live dry run through the runner, in a command (the
// plan read from the servers now, read-only); watch mode, a step already
// running, or a step that would be refused get the offline plan, which
// needs no I/O.
func (m *Model) dryRunKey() tea.Cmd {
	s := m.selected()
	switch {
	case s == nil || m.p.Runner == nil:
		return nil
	case m.p.Watch:
	case m.run.id != "" || m.run.probing != "":
		m.note(pane.Info, fmt.Sprintf("%s is running: the live dry run waits until it ends; the offline plan meanwhile", units.Or(m.run.id, m.run.probing)))
	case m.p.Runner.Preconditions(s.ID, steps.RunParams{Confirmed: true}) == "":
		return m.startRun(s.ID, steps.RunParams{DryRun: true})
	}
	m.dryRun()
	return nil
}

// dryRun prints the selected step's offline plan into the log, with
// recorded values and secrets redacted, and why it would be refused now. It
// reads nothing, so it is rendered here rather than through the runner.
func (m *Model) dryRun() {
	s := m.selected()
	if s == nil || m.p.Runner == nil {
		return
	}
	m.note(pane.Info, "plan of "+s.ID+", offline (recorded values; nothing is executed):")
	for _, a := range s.OfflinePlan(m.p.Runner.Env(s.ID)) {
		m.log.Add(fmt.Sprintf("  [%s %s] %s", a.Target, a.Kind, a.Text), pane.SQL)
	}
	if why := m.p.Runner.Preconditions(s.ID, steps.RunParams{Confirmed: true}); why != "" {
		m.log.Add("  it would be refused now: "+why, pane.Warn)
	}
}

// editSelectedValue opens the value editor on the values pane's row.
func (m *Model) editSelectedValue() tea.Cmd {
	if m.p.Watch || m.p.Store == nil {
		return m.refuseWatch("edit values")
	}
	k, ok := m.values.Selected()
	if !ok {
		m.prompt.OpenKey()
		return nil
	}
	m.prompt.OpenValue(k)
	return nil
}

// editNeeded opens the value editor on the first value the selected step
// needs and lacks (or its first need), so a missing value is one key away.
func (m *Model) editNeeded() tea.Cmd {
	if m.p.Watch || m.p.Store == nil {
		return m.refuseWatch("edit values")
	}
	s := m.selected()
	if s == nil || len(s.Needs) == 0 {
		m.prompt.OpenKey()
		return nil
	}
	k := s.Needs[0]
	for _, n := range s.Needs {
		if v, ok := m.st.Get(n); !ok || v == "" {
			k = n
			break
		}
	}
	m.prompt.OpenValue(k)
	return nil
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
