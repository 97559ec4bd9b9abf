// Package keys is the screen's one key map: every key declared once with its
// help text, so help always says what a key does. The screen disables the
// keys that do not apply in the current state, so the help line is true.
package keys

import "github.com/charmbracelet/bubbles/key"

// KeyMap is every key of the screen, declared once with its help text.
// Keys that do not apply in the current state are disabled (ui's
// Model.syncKeys), so the help line is always true.
type KeyMap struct {
	Up, Down       key.Binding
	Focus, Back    key.Binding
	PageUp, PageDn key.Binding
	Top, Follow    key.Binding
	Run, DryRun    key.Binding
	// Rehearse runs the cutover's (or rollback's) live prechecks only.
	Rehearse   key.Binding
	Edit, Add  key.Binding
	Skip       key.Binding
	Help, Quit key.Binding
	// Confirm and Cancel answer a prompt.
	Confirm, Cancel key.Binding
	// WayFinish and WayUndo choose a way out of a cutover stopped half way.
	WayFinish, WayUndo key.Binding
	// Expand opens a group of the connections pane; Terminate ends the
	// session under the cursor there.
	Expand, Terminate key.Binding
}

// New returns the default key map.
func New() KeyMap {
	return KeyMap{
		Up:     key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:   key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Focus:  key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next pane")),
		Back:   key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous pane")),
		PageUp: key.NewBinding(key.WithKeys("pgup", "ctrl+u"), key.WithHelp("pgup", "log back")),
		PageDn: key.NewBinding(key.WithKeys("pgdown", "ctrl+d"), key.WithHelp("pgdn", "log forward")),
		Top:    key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g/home", "top")),
		Follow: key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G/end", "follow log")),
		Run:    key.NewBinding(key.WithKeys("enter", "r"), key.WithHelp("enter", "run step")),
		DryRun: key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "dry run")),
		// Enabled only on a step that has a rehearsal (cutover, rollback).
		Rehearse: key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "rehearse (prechecks only)"), key.WithDisabled()),
		Edit:     key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "edit value")),
		Add:      key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "add value")),
		Skip:     key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "skip step (with a reason)")),
		Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "more keys")),
		Quit:     key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		Confirm:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "confirm")),
		Cancel:   key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
		// Enabled only while the ways out are offered (syncKeys).
		WayFinish: key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "finish forward"), key.WithDisabled()),
		WayUndo:   key.NewBinding(key.WithKeys("u"), key.WithHelp("u", "undo back"), key.WithDisabled()),
		// Enabled only in the connections pane.
		Expand:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open group"), key.WithDisabled()),
		Terminate: key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "end session"), key.WithDisabled()),
	}
}

// ShortHelp is the one-line help: what can be done now. A prompt has help
// of its own (Prompt).
func (k KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Run, k.Expand, k.Terminate, k.DryRun, k.Rehearse, k.Edit, k.Up, k.Down, k.Focus, k.Help, k.Quit}
}

// FullHelp is the help shown by ?, in columns.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.Top, k.Focus, k.Back},
		{k.Run, k.DryRun, k.Rehearse, k.Skip, k.Edit, k.Add, k.Expand, k.Terminate},
		// Three columns, so the whole help fits 80 columns (quit included).
		{k.PageUp, k.PageDn, k.Follow, k.Help, k.Quit},
	}
}

// Prompt is the help while a prompt is open: its answers only.
func (k KeyMap) Prompt() []key.Binding {
	if k.WayFinish.Enabled() {
		return []key.Binding{k.WayFinish, k.WayUndo, k.Cancel}
	}
	return []key.Binding{k.Confirm, k.Cancel}
}
