package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
)

// syncKeys enables the keys that apply now, so help never offers a key that
// does nothing: no run key while a step runs or in watch mode, no value
// editing in watch mode, only confirm/cancel while a prompt is open.
func (m *Model) syncKeys() {
	k := &m.keys
	prompt := m.prompt != promptNone
	canExec := !m.p.Watch && m.p.Runner != nil && m.running == "" && !m.quitting
	for _, b := range []*key.Binding{&k.Up, &k.Down, &k.Focus, &k.Back, &k.PageUp, &k.PageDn, &k.Top, &k.Follow, &k.Help, &k.Quit} {
		b.SetEnabled(!prompt)
	}
	k.Run.SetEnabled(!prompt && canExec && (m.focus == focusSteps || m.focus == focusDetail))
	if !prompt && !m.p.Watch && m.focus == focusValues {
		k.Run.SetEnabled(false)
	}
	k.DryRun.SetEnabled(!prompt && m.p.Runner != nil)
	k.Edit.SetEnabled(!prompt && !m.p.Watch && m.p.Store != nil)
	k.Add.SetEnabled(!prompt && !m.p.Watch && m.p.Store != nil)
	k.Skip.SetEnabled(!prompt && canExec && m.focus != focusValues)
	k.Confirm.SetEnabled(prompt)
	k.Cancel.SetEnabled(prompt)
	if m.prompt == promptQuit {
		k.Confirm.SetHelp("y", "quit and cancel the step")
		k.Cancel.SetHelp("n/esc", "keep running")
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
	case key.Matches(msg, k.Back):
		m.focus = (m.focus + focusCount - 1) % focusCount
	case key.Matches(msg, k.Up):
		m.move(-1)
	case key.Matches(msg, k.Down):
		m.move(1)
	case key.Matches(msg, k.Top):
		m.moveTop()
	case key.Matches(msg, k.Follow):
		m.log.back = 0
	case key.Matches(msg, k.PageUp):
		m.log.scroll(max(1, m.layout().log-2), m.layout().log-1)
	case key.Matches(msg, k.PageDn):
		m.log.scroll(-max(1, m.layout().log-2), m.layout().log-1)
	case msg.String() == "enter" && m.focus == focusValues:
		return m.editSelectedValue()
	case msg.String() == "enter" || msg.String() == "r":
		return m.runSelected()
	case key.Matches(msg, k.DryRun):
		m.dryRun()
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
			m.note(levelWarn, fmt.Sprintf("%s is running: skip waits until it ends", m.running))
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
	case focusSteps:
		m.cursor = max(0, min(m.cursor+d, len(m.p.Steps)-1))
		m.detailOff = 0
	case focusDetail:
		m.detailOff = max(0, m.detailOff+d)
	case focusValues:
		m.valCursor = max(0, min(m.valCursor+d, len(m.st.Values)-1))
	case focusLog:
		m.log.scroll(-d, max(1, m.layout().log-1))
	}
}

func (m *Model) moveTop() {
	switch m.focus {
	case focusSteps:
		m.cursor, m.detailOff = 0, 0
	case focusDetail:
		m.detailOff = 0
	case focusValues:
		m.valCursor = 0
	case focusLog:
		m.log.scroll(len(m.log.lines), max(1, m.layout().log-1))
	}
}

// refuseWatch says, in the log, why watch mode does not do something.
func (m *Model) refuseWatch(what string) tea.Cmd {
	m.note(levelWarn, "watch mode is read-only: it cannot "+what+"; the instance holding the lock drives the run")
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
		m.note(levelWarn, fmt.Sprintf("%s is running: one step at a time", m.running))
		return nil
	}
	if why := m.p.Runner.Preconditions(s.ID, steps.RunParams{Confirmed: true}); why != "" {
		m.note(levelWarn, fmt.Sprintf("%s refused: %s", s.ID, why))
		return nil
	}
	if s.Destructive {
		m.confirmID = s.ID
		m.openPrompt(promptConfirm, "")
		return nil
	}
	return m.startRun(s.ID, steps.RunParams{})
}

// dryRun prints the selected step's plan into the log, with current values
// and secrets redacted. It executes nothing, so it is rendered here rather
// than through the runner, and watch mode has it too.
func (m *Model) dryRun() {
	s := m.selected()
	if s == nil || m.p.Runner == nil {
		return
	}
	m.note(levelInfo, "dry run of "+s.ID+" (nothing is executed):")
	for _, a := range s.OfflinePlan(m.p.Runner.Env(s.ID)) {
		m.log.add(fmt.Sprintf("  [%s %s] %s", a.Target, a.Kind, a.Text), levelSQL)
	}
	if why := m.p.Runner.Preconditions(s.ID, steps.RunParams{Confirmed: true}); why != "" {
		m.log.add("  it would be refused now: "+why, levelWarn)
	}
}

// editSelectedValue opens the value editor on the values pane's row.
func (m *Model) editSelectedValue() tea.Cmd {
	if m.p.Watch || m.p.Store == nil {
		return m.refuseWatch("edit values")
	}
	keys := m.st.ValueKeys()
	if len(keys) == 0 {
		m.openPrompt(promptKey, "")
		return nil
	}
	k := keys[max(0, min(m.valCursor, len(keys)-1))]
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
	case promptConfirm:
		m.input.Placeholder = m.p.Database
	case promptKey:
		m.input.Placeholder = "value name, e.g. green_start_lsn"
	case promptSkip:
		m.input.Placeholder = "why this step is not needed (journaled)"
	case promptValue:
		if v, ok := m.st.Get(editKey); ok && !isSecretKey(editKey) {
			m.input.SetValue(v)
		}
	case promptReason:
		m.input.Placeholder = "why this value is set by hand (journaled)"
	}
}

func (m *Model) closePrompt() {
	m.prompt, m.promptErr, m.editKey, m.editValue, m.confirmID = promptNone, "", "", "", ""
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
		id := m.confirmID
		m.closePrompt()
		if m.running != "" {
			return nil
		}
		return m.startRun(id, steps.RunParams{Confirmed: true})
	case promptKey:
		switch {
		case v == "" || strings.ContainsAny(v, " \t="):
			m.promptErr = "a value name is one word (letters, digits, _)"
			return nil
		case isSecretKey(v):
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
		if isSecretKey(k) {
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

// isSecretKey says whether a value's name says it holds a secret. An ARN
// names a secret without being one, so it is shown.
func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	if strings.HasSuffix(k, "_arn") || strings.HasSuffix(k, "arn") {
		return false
	}
	for _, w := range []string{"password", "passwd", "secret", "token", "private_key"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// displayValue is what the screen shows of a value: never a secret.
func displayValue(k, v string) string {
	if isSecretKey(k) {
		return state.Mask
	}
	return state.Redact(v)
}
