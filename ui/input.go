package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
	"github.com/pgbluegreen/pgbluegreen/ui/values"
)

// syncKeys enables the keys that apply now, so help never offers a key that
// does nothing: no run key while a step runs or in watch mode, no value
// editing in watch mode, only confirm/cancel while a prompt is open.
func (m *Model) syncKeys() {
	k := m.keys
	prompt := m.prompt != promptNone
	canExec := !m.p.Watch && m.p.Runner != nil && m.running == "" && m.probing == "" && !m.quitting
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
	k.Confirm.SetEnabled(prompt && m.prompt != promptWays)
	k.Cancel.SetEnabled(prompt)
	k.WayFinish.SetEnabled(m.prompt == promptWays)
	k.WayUndo.SetEnabled(m.prompt == promptWays)
	if m.prompt == promptQuit {
		k.Confirm.SetHelp("y", "quit and cancel the step")
		k.Cancel.SetHelp("n/esc", "keep running")
	} else if m.prompt == promptWays {
		k.WayFinish.SetHelp("f", m.wayWords("finish"))
		k.WayUndo.SetHelp("u", m.wayWords("undo"))
		k.Cancel.SetHelp("esc", "leave it as it is")
	} else {
		k.Confirm.SetHelp("enter", "confirm")
		k.Cancel.SetHelp("esc", "cancel")
	}
}

// handleKey dispatches a key press.
func (m *Model) handleKey(msg tea.KeyMsg) tea.Cmd {
	if m.prompt != promptNone {
		return m.promptKey(msg)
	}
	if msg.String() == "ctrl+c" && m.quitting {
		return tea.Quit // second Ctrl+C: leave now; the next start marks the step interrupted
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Quit):
		if m.running != "" && !m.p.Watch {
			if m.quitting {
				return nil
			}
			m.openPrompt(promptQuit, "")
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
		case m.running != "":
			m.note(pane.Warn, fmt.Sprintf("%s is running: skip waits until it ends", m.running))
		default:
			m.confirmID = s.ID
			m.openPrompt(promptSkip, "")
		}
	case key.Matches(msg, k.Add):
		if !k.Add.Enabled() {
			return m.refuseWatch("add a value")
		}
		m.openPrompt(promptKey, "")
	}
	return nil
}

// move moves within the focused pane.
func (m *Model) move(d int) {
	switch m.focus {
	}
}

// toFocused hands a key to the focused pane.
func (m *Model) toFocused(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	switch {
	case m.focus == focusLog:
		return m.toLog(msg)
	case m.focus == focusValues:
		return m.toPane(m.values, msg)
	case m.focus == focusSteps:
		// A step newly under the cursor shows its detail from the top.
		m.detail.ScrollTop()
		return m.toPane(m.runbook, msg)
	case m.focus == focusDetail:
		return m.toPane(m.detail, msg)
	case m.focus == focusConns:
		return m.toPane(m.conns, msg)
	case key.Matches(msg, k.Up):
		m.move(-1)
	case key.Matches(msg, k.Down):
		m.move(1)
	case key.Matches(msg, k.Top):
		m.moveTop()
	}
	return nil
}

// toPane hands a message to a pane.
func (m *Model) toPane(p pane.Component, msg tea.Msg) tea.Cmd {
	_, cmd := p.Update(msg)
	return cmd
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

func (m *Model) moveTop() {
	switch m.focus {
	}
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
	case m.running != "":
		m.note(pane.Warn, fmt.Sprintf("%s is running: one step at a time", m.running))
		return nil
	case m.probing != "":
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
	case m.running != "" || m.probing != "":
		m.note(pane.Info, fmt.Sprintf("%s is running: the live dry run waits until it ends; the offline plan meanwhile", units.Or(m.running, m.probing)))
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
		m.openPrompt(promptKey, "")
		return nil
	}
	m.openPrompt(promptValue, k)
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
		m.openPrompt(promptKey, "")
		return nil
	}
	k := s.Needs[0]
	for _, n := range s.Needs {
		if v, ok := m.st.Get(n); !ok || v == "" {
			k = n
			break
		}
	}
	m.openPrompt(promptValue, k)
	return nil
}

// openPrompt opens a one-line prompt above the footer.
func (m *Model) openPrompt(kind promptKind, editKey string) {
	m.prompt, m.promptErr, m.editKey = kind, "", editKey
	m.input.Reset()
	m.input.Placeholder = ""
	switch kind {
	case promptConfirm, promptTerminate:
		m.input.Placeholder = m.p.Database
	case promptKey:
		m.input.Placeholder = "value name, e.g. green_start_lsn"
	case promptSkip:
		m.input.Placeholder = "why this step is not needed (journaled)"
	case promptValue:
		if v, ok := m.st.Get(editKey); ok && !values.IsSecret(editKey) {
			m.input.SetValue(v)
		}
	case promptReason:
		m.input.Placeholder = "why this value is set by hand (journaled)"
	}
}

func (m *Model) closePrompt() {
	m.prompt, m.promptErr, m.editKey, m.editValue, m.confirmID, m.way = promptNone, "", "", "", "", ""
}

// promptKey handles a key while a prompt is open.
func (m *Model) promptKey(msg tea.KeyMsg) tea.Cmd {
	if m.prompt == promptQuit {
		switch msg.String() {
		case "y", "Y":
			m.closePrompt()
			if m.running == "" {
				return tea.Quit
			}
			m.requestCancel()
		case "n", "N", "esc", "q":
			m.closePrompt()
		case "ctrl+c":
			m.closePrompt()
			m.requestCancel()
		}
		return nil
	}
	if m.prompt == promptWays {
		switch msg.String() {
		case "f":
			m.chooseWay("finish")
		case "u":
			m.chooseWay("undo")
		case "esc", "q", "ctrl+c":
			m.note(pane.Info, m.confirmID+": left half way; enter on it offers the ways out again")
			m.closePrompt()
		}
		return nil
	}
	switch msg.String() {
	case "esc", "ctrl+c":
		m.closePrompt()
		return nil
	case "enter":
		return m.submitPrompt()
	}
	m.input.Update(msg)
	return nil
}

// submitPrompt acts on the prompt's text.
func (m *Model) submitPrompt() tea.Cmd {
	v := strings.TrimSpace(m.input.Value())
	switch m.prompt {
	case promptConfirm:
		if v != m.p.Database || m.p.Database == "" {
			m.promptErr = fmt.Sprintf("%q is not the database's name; nothing ran", v)
			m.input.Reset()
			return nil
		}
		id, way := m.confirmID, m.way
		m.closePrompt()
		if m.running != "" {
			return nil
		}
		return m.startRun(id, steps.RunParams{Confirmed: true, Way: way})
	case promptTerminate:
		if v != m.p.Database || m.p.Database == "" {
			m.promptErr = fmt.Sprintf("%q is not the database's name; nothing was ended", v)
			m.input.Reset()
			return nil
		}
		t := m.kill
		m.closePrompt()
		return terminateCmd(m.p.Runner, t)
	case promptKey:
		switch {
		case v == "" || strings.ContainsAny(v, " \t="):
			m.promptErr = "a value name is one word (letters, digits, _)"
			return nil
		case values.IsSecret(v):
			m.promptErr = "secrets are never stored: the replication password comes from replication.password in the config"
			return nil
		}
		if _, ok := steps.ValueTypeOf(v); !ok {
			m.promptErr = fmt.Sprintf("no step needs or records %s (`pgbluegreen status` lists the values)", v)
			return nil
		}
		m.openPrompt(promptValue, v)
		return nil
	case promptSkip:
		if v == "" {
			m.promptErr = "skipping needs a reason; it is journaled"
			return nil
		}
		id := m.confirmID
		m.closePrompt()
		return skipCmd(m.p.Runner, id, v)
	case promptValue:
		k := m.editKey
		if values.IsSecret(k) {
			m.promptErr = "secrets are never stored"
			return nil
		}
		// The same check as `pgbluegreen value set`: a malformed value is
		// refused here, in one line, not by a later step.
		if err := steps.ValidateValue(k, v); err != nil {
			m.promptErr = err.Error()
			return nil
		}
		m.openPrompt(promptReason, k)
		m.editValue = v
		return nil
	case promptReason:
		if v == "" {
			m.promptErr = "an edit needs a reason; it is journaled"
			return nil
		}
		k, value := m.editKey, m.editValue
		m.closePrompt()
		return setValueCmd(m.p.Runner, k, value, v)
	}
	return nil
}
