package ui

import (
	tea "github.com/charmbracelet/bubbletea"
)

// observeState hands the state (steps finished, attempts ended) to the
// alerts, off the screen's loop; nil without alerts. The lag pane hands
// over what it reads itself.
func (m *Model) observeState() tea.Cmd {
	a, st := m.p.Alerts, m.st
	if a == nil {
		return nil
	}
	return func() tea.Msg {
		a.ObserveState(st)
		return nil
	}
}
