// Package prompt is the screen's dialogs, one line or two above the help:
// the database's name typed to confirm a destructive step, a way out of a
// cutover stopped half way or the end of a session; a value's name, its
// value and the reason it is set by hand; the reason a step is skipped;
// and, while a step runs, whether to quit. Each is checked here (a wrong
// name, a malformed value, a secret, a missing reason say so in a line and
// keep the prompt open); what the operator chose goes up as a message.
package prompt

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/values"
)

// Kind is which prompt is open.
type Kind int

// The prompts.
const (
	None Kind = iota
	// Confirm asks for the database's name before a destructive step (or
	// one of its ways out) runs.
	Confirm
	// Key asks for a value's name, Value for the value, Reason for why it
	// is set by hand.
	Key
	Value
	// Quit asks whether to quit while a step runs.
	Quit
	// Skip asks why a step is skipped.
	Skip
	// Ways offers the two ways out of a cutover stopped half way.
	Ways
	// Terminate asks for the database's name before a session is ended.
	Terminate
	Reason
)

// Session is the session a Terminate prompt is about.
type Session struct {
	Server  string
	PID     int32
	Started time.Time
	// Who says whose it is: user@client application.
	Who string
}

// What the operator chose, sent up to the screen.
type (
	// RunMsg: the database's name was typed; run step ID (its way out Way,
	// when one was chosen), confirmed.
	RunMsg struct{ ID, Way string }
	// TerminateMsg: the database's name was typed; end the session.
	TerminateMsg struct{ Session Session }
	// SkipMsg: skip step ID, for Reason.
	SkipMsg struct{ ID, Reason string }
	// SetValueMsg: record Key = Value, for Reason.
	SetValueMsg struct{ Key, Value, Reason string }
	// QuitMsg: quit, cancelling the step that runs.
	QuitMsg struct{}
	// CancelMsg: cancel the step that runs now (Ctrl+C at the quit prompt).
	CancelMsg struct{}
)

// Model is the open prompt, if any.
type Model struct {
	ctx pane.Context
	// database is the name typed to confirm.
	database string
	st       *state.State
	// running is the step the quit prompt is about.
	running string

	kind  Kind
	err   string
	input lineInput
	// id is the step asked about; key and value the value being set; way
	// the way out being confirmed ("finish", "undo") of the ways offered;
	// session the session to end.
	id, key, value, way string
	ways                steps.WaysOut
	session             Session
	width               int
}

var _ pane.Component = (*Model)(nil)

// New makes the prompts; database is the name typed to confirm.
func New(ctx pane.Context, database string) *Model {
	m := &Model{ctx: ctx, database: database, st: &state.State{}, input: newLineInput(ctx.Styles)}
	m.syncKeys()
	return m
}

// Init does nothing.
func (m *Model) Init() tea.Cmd { return nil }

// SetSize gives the prompt its width; its height is its own.
func (m *Model) SetSize(w, _ int) { m.width = w }

// SetState gives the prompt the run's state: a value's prompt starts from
// the value recorded.
func (m *Model) SetState(st *state.State) { m.st = st }

// SetRunning says which step runs (the quit prompt names it).
func (m *Model) SetRunning(id string) { m.running = id }

// Kind is the prompt open (None: none).
func (m *Model) Kind() Kind { return m.kind }

// Open says whether a prompt is open.
func (m *Model) Open() bool { return m.kind != None }

// OpenConfirm asks for the database's name before step id runs.
func (m *Model) OpenConfirm(id string) { m.open(Confirm, id, "") }

// OpenWays offers the ways out of step id, stopped half way.
func (m *Model) OpenWays(id string, ways steps.WaysOut) {
	m.ways = ways
	m.open(Ways, id, "")
}

// OpenTerminate asks for the database's name before s is ended.
func (m *Model) OpenTerminate(s Session) {
	m.open(Terminate, "", "")
	m.session = s
}

// OpenKey asks for a value's name.
func (m *Model) OpenKey() { m.open(Key, "", "") }

// OpenValue asks for the value of key, starting from the value recorded
// (never from a secret).
func (m *Model) OpenValue(key string) { m.open(Value, "", key) }

// OpenSkip asks why step id is skipped.
func (m *Model) OpenSkip(id string) { m.open(Skip, id, "") }

// OpenQuit asks whether to quit while a step runs.
func (m *Model) OpenQuit() { m.open(Quit, "", "") }

// open opens a prompt of kind about step id or value key.
func (m *Model) open(kind Kind, id, key string) {
	m.kind, m.err, m.id, m.key = kind, "", id, key
	m.input.Reset()
	m.input.Placeholder = ""
	switch kind {
	case Confirm, Terminate:
		m.input.Placeholder = m.database
	case Key:
		m.input.Placeholder = "value name, e.g. green_start_lsn"
	case Skip:
		m.input.Placeholder = "why this step is not needed (journaled)"
	case Value:
		if v, ok := m.st.Get(key); ok && !values.IsSecret(key) {
			m.input.SetValue(v)
		}
	case Reason:
		m.input.Placeholder = "why this value is set by hand (journaled)"
	}
	m.syncKeys()
}

// Close closes the prompt, answering nothing.
func (m *Model) Close() {
	m.kind, m.err, m.key, m.value, m.id, m.way = None, "", "", "", "", ""
	m.syncKeys()
}

// syncKeys enables the prompt's keys while it is open, with help that
// says what they do here.
func (m *Model) syncKeys() {
	k := m.ctx.Keys
	k.Confirm.SetEnabled(m.kind != None && m.kind != Ways)
	k.Cancel.SetEnabled(m.kind != None)
	k.WayFinish.SetEnabled(m.kind == Ways)
	k.WayUndo.SetEnabled(m.kind == Ways)
	switch m.kind {
	case Quit:
		k.Confirm.SetHelp("y", "quit and cancel the step")
		k.Cancel.SetHelp("n/esc", "keep running")
	case Ways:
		k.WayFinish.SetHelp("f", m.wayWords("finish"))
		k.WayUndo.SetHelp("u", m.wayWords("undo"))
		k.Cancel.SetHelp("esc", "leave it as it is")
	default:
		k.Confirm.SetHelp("enter", "confirm")
		k.Cancel.SetHelp("esc", "cancel")
	}
}

// ShortHelp is the prompt's answers.
func (m *Model) ShortHelp() []key.Binding { return m.ctx.Keys.Prompt() }

// FullHelp is the prompt's answers.
func (m *Model) FullHelp() [][]key.Binding { return [][]key.Binding{m.ctx.Keys.Prompt()} }

// send is the command that sends msg up.
func send(msg tea.Msg) tea.Cmd { return func() tea.Msg { return msg } }

// Update handles a key while a prompt is open.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok || m.kind == None {
		return m, nil
	}
	switch m.kind {
	case Quit:
		switch k.String() {
		case "y", "Y":
			m.Close()
			return m, send(QuitMsg{})
		case "n", "N", "esc", "q":
			m.Close()
		case "ctrl+c":
			m.Close()
			return m, send(CancelMsg{})
		}
		return m, nil
	case Ways:
		switch k.String() {
		case "f":
			m.chooseWay("finish")
		case "u":
			m.chooseWay("undo")
		case "esc", "q", "ctrl+c":
			id := m.id
			m.Close()
			return m, pane.Note(pane.Info, id+": left half way; enter on it offers the ways out again")
		}
		return m, nil
	}
	switch k.String() {
	case "esc", "ctrl+c":
		m.Close()
		return m, nil
	case "enter":
		return m, m.submit()
	}
	m.input.Update(k)
	return m, nil
}

// chooseWay answers the ways out: the chosen way is confirmed by the
// database's name like the step itself.
func (m *Model) chooseWay(way string) {
	id := m.id
	m.open(Confirm, id, "")
	m.way = way
}

// submit acts on the prompt's text: a checked answer goes up, anything
// else stays with a line that says why.
func (m *Model) submit() tea.Cmd {
	v := strings.TrimSpace(m.input.Value())
	switch m.kind {
	case Confirm:
		if v != m.database || m.database == "" {
			m.err = fmt.Sprintf("%q is not the database's name; nothing ran", v)
			m.input.Reset()
			return nil
		}
		answer := RunMsg{ID: m.id, Way: m.way}
		m.Close()
		return send(answer)
	case Terminate:
		if v != m.database || m.database == "" {
			m.err = fmt.Sprintf("%q is not the database's name; nothing was ended", v)
			m.input.Reset()
			return nil
		}
		answer := TerminateMsg{Session: m.session}
		m.Close()
		return send(answer)
	case Key:
		switch {
		case v == "" || strings.ContainsAny(v, " \t="):
			m.err = "a value name is one word (letters, digits, _)"
			return nil
		case values.IsSecret(v):
			m.err = "secrets are never stored: the replication password comes from replication.password in the config"
			return nil
		}
		if _, ok := steps.ValueTypeOf(v); !ok {
			m.err = fmt.Sprintf("no step needs or records %s (`pgbluegreen status` lists the values)", v)
			return nil
		}
		m.open(Value, "", v)
		return nil
	case Skip:
		if v == "" {
			m.err = "skipping needs a reason; it is journaled"
			return nil
		}
		answer := SkipMsg{ID: m.id, Reason: v}
		m.Close()
		return send(answer)
	case Value:
		k := m.key
		if values.IsSecret(k) {
			m.err = "secrets are never stored"
			return nil
		}
		// The same check as `pgbluegreen value set`: a malformed value is
		// refused here, in one line, not by a later step.
		if err := steps.ValidateValue(k, v); err != nil {
			m.err = err.Error()
			return nil
		}
		m.open(Reason, "", k)
		m.value = v
		return nil
	case Reason:
		if v == "" {
			m.err = "an edit needs a reason; it is journaled"
			return nil
		}
		answer := SetValueMsg{Key: m.key, Value: m.value, Reason: v}
		m.Close()
		return send(answer)
	}
	return nil
}

// View is the open prompt and, under it, why its last answer was refused;
// "" when none is open.
func (m *Model) View() string {
	p := m.line()
	if p == "" {
		return ""
	}
	if m.err != "" {
		p += "\n" + m.ctx.Styles.Fail.Render("✗ "+m.err)
	}
	return p
}

// line is the open prompt, or "".
func (m *Model) line() string {
	st := m.ctx.Styles
	switch m.kind {
	case Confirm:
		what := m.id + " is destructive"
		if m.way != "" {
			what = fmt.Sprintf("%s's way out, %s, changes the servers", m.id, m.wayWords(m.way))
		}
		// Two lines, so the field stays on screen at 80 columns.
		return st.Warn.Render(fmt.Sprintf("⚠ %s: type the database's name (%s) to run it", what, m.database)) +
			"\n" + st.Bold.Render("database name: ") + m.input.View()
	case Ways:
		return strings.Join(m.waysLines(m.width), "\n")
	case Terminate:
		s := m.session
		return st.Warn.Render(fmt.Sprintf("⚠ end session pid %d on %s (%s): type the database's name (%s)", s.PID, s.Server, s.Who, m.database)) +
			"\n" + st.Bold.Render("database name: ") + m.input.View()
	case Key:
		return st.Bold.Render("New value's name: ") + m.input.View()
	case Value:
		what := ""
		if t, ok := steps.ValueTypeOf(m.key); ok {
			what = " (" + t.Name + ", e.g. " + t.Example + ")"
		}
		return st.Bold.Render(fmt.Sprintf("Value of %s%s: ", m.key, what)) + m.input.View()
	case Reason:
		return st.Bold.Render(fmt.Sprintf("Why set %s = %s: ", m.key, m.value)) + m.input.View()
	case Skip:
		return st.Bold.Render(fmt.Sprintf("Skip %s because: ", m.id)) + m.input.View()
	case Quit:
		return st.Warn.Render(fmt.Sprintf("⚠ %s is running. Quit and cancel it? Its state will say interrupted. [y/N]", m.running))
	}
	return ""
}

// wayWords says where a way out leads.
func (m *Model) wayWords(way string) string {
	if way == "finish" {
		return "finish forward to " + m.ways.To
	}
	return "undo back to " + m.ways.From
}

// waysLines is the ways-out prompt, wrapped to w: where the servers are,
// then each way with the sub-steps it runs.
func (m *Model) waysLines(w int) []string {
	st := m.ctx.Styles
	w = max(w, 20)
	var out []string
	for _, l := range fit.Wrap(fmt.Sprintf("⚠ %s stopped half way: %s", m.id, m.ways.Where), w) {
		out = append(out, st.Warn.Render(l))
	}
	wo := m.ways
	for _, way := range []struct {
		key, name string
		subs      []string
		then      string
	}{{"f", "finish", wo.Finish, wo.FinishThen}, {"u", "undo", wo.Undo, wo.UndoThen}} {
		runs := strings.Join(way.subs, ", ")
		if runs == "" {
			runs = "nothing left to change"
		}
		if way.then != "" {
			runs += "; then " + way.then
		}
		// A hanging indent: the key stands alone at the left.
		const indent = "     "
		text := fmt.Sprintf("%s: runs %s", m.wayWords(way.name), runs)
		for k, l := range fit.Wrap(text, w-len(indent)) {
			lead := indent
			if k == 0 {
				lead = "  " + way.key + "  "
			}
			out = append(out, st.Bold.Render(lead+l))
		}
	}
	return out
}
