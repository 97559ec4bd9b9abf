package ui

import (
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
)

// The screen's reads feed the alerts, so the driving screen and the
// headless `watch --alerts` alert alike. Each observation is handed over
// in a command, built from values; the Alerter never blocks (it queues
// the sends for its own goroutine).

// AlertSink takes what the screen reads; *steps.Alerter fits it.
type AlertSink interface {
	ObserveLag(s steps.LagSample, feed string)
	ObserveSubscriptions(subs []steps.Subscription)
	ObserveDrift(d steps.Drift)
	ObserveReach(server string, err error)
	ObserveState(st *state.State)
}

// observeCmd runs one observation off the UI goroutine; nil without alerts.
func observeCmd(sink AlertSink, f func(AlertSink)) tea.Cmd {
	if sink == nil {
		return nil
	}
	return func() tea.Msg {
		f(sink)
		return nil
	}
}

// observeLag hands a lag poll to the alerts.
func (m *Model) observeLag(msg poll.Msg[steps.LagSample]) tea.Cmd {
	feed := m.activeFeed()
	return observeCmd(m.p.Alerts, func(a AlertSink) {
		a.ObserveReach("blue", msg.Err)
		if msg.Err == nil {
			a.ObserveLag(msg.Value, feed)
		}
	})
}

// observeSubs hands a read of green's subscriptions to the alerts.
func (m *Model) observeSubs(msg poll.Msg[[]steps.Subscription]) tea.Cmd {
	return observeCmd(m.p.Alerts, func(a AlertSink) {
		a.ObserveReach("green", msg.Err)
		if msg.Err == nil {
			a.ObserveSubscriptions(msg.Value)
		}
	})
}

// observeState hands the state (steps finished, attempts ended) to the alerts.
func (m *Model) observeState() tea.Cmd {
	st := m.st
	return observeCmd(m.p.Alerts, func(a AlertSink) { a.ObserveState(st) })
}
