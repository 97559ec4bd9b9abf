package ui

import (
	"context"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
)

// Where the application's writes go, read from the servers on a slow tick
// (PgBouncer's SHOW DATABASES, the roles' LOGIN, read-only settings) and
// said first on the status line, with a symbol and a word.

// TrafficFunc reads where writes go; steps.Monitor.Traffic fits it.
type TrafficFunc func(ctx context.Context) (steps.Traffic, error)

// slowEvery paces the reads that need not follow every second: where the
// traffic is and the schemas' fingerprints.
const slowEvery = 5 * time.Second

// takeTraffic takes in a read of where writes go.
func (m *Model) takeTraffic(msg poll.Msg[steps.Traffic]) {
	if !m.trafficPoll.Take(msg, m.now()) {
		return
	}
	if msg.Err != nil {
		m.traffic = steps.Traffic{Target: "unknown", How: m.trafficPoll.LastErr()}
		return
	}
	m.traffic = msg.Value
	switch msg.Value.Target {
	case "green":
		m.lastFeed = feedReverse
	case "blue":
		m.lastFeed = feedForward
	}
}

// trafficWord is the status line's first part: where writes go, as a
// symbol and a word (colour is never the only signal).
func (m *Model) trafficWord() string {
	if m.p.Traffic == nil {
		return ""
	}
	st := m.styles
	if m.trafficPoll.LastOK().IsZero() && m.trafficPoll.LastErr() == "" {
		return st.Faint.Render("writes → … (reading)")
	}
	switch m.traffic.Target {
	case "blue":
		return st.Running.Render("◧ writes → BLUE")
	case "green":
		return st.OK.Render("◨ writes → GREEN")
	case "paused":
		return st.Warn.Render("‖ writes PAUSED")
	}
	return st.Fail.Render("? writes → UNKNOWN")
}

// trafficLines are the warnings of the last read (writes may land on both
// sides), and, on a wide screen, how it was determined; above the status
// line.
func (m *Model) trafficLines(w int) []string {
	var out []string
	for _, warn := range m.traffic.Warnings {
		out = append(out, m.styles.Loud.Render(fit.Truncate("⚠ "+warn, w)))
	}
	if m.traffic.Target == "unknown" && m.traffic.How != "" {
		out = append(out, m.styles.Fail.Render(fit.Truncate("? where writes go is unknown: "+strings.Join(strings.Fields(m.traffic.How), " "), w)))
	}
	return out
}
