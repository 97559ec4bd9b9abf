package lag

import (
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
)

// The schema drift guard on the screen: blue's and green's schemas
// compared on the slow tick while replication runs; a difference is loud
// at the top of the lag pane, with the objects, until they match again.

// DriftEvery paces the schemas' comparisons: they need not follow every
// second.
const DriftEvery = 5 * time.Second

// takeDrift takes in a comparison; a drift keeps the time it was first
// seen and is said in the log; the alerts see every comparison.
func (m *Model) takeDrift(msg poll.Msg[schemaDrift]) tea.Cmd {
	if !m.driftPoll.Take(msg, m.ctx.Now()) || msg.Err != nil {
		return nil
	}
	var note tea.Cmd
	switch {
	case !msg.Value.Drifted():
		m.driftSince = time.Time{}
	case !m.drift.Drifted():
		m.driftSince = m.ctx.Now()
		note = pane.Note(pane.Error, "schema drift: "+msg.Value.Summary(2))
	}
	m.drift = msg.Value
	return tea.Batch(note, m.observe(func(a Alerts) { a.ObserveDrift(msg.Value) }))
}

// driftLines are the loud lines of a drift: what differs, since when, and
// that the cutover refuses, two lines at most, wrapped to w; then, when
// blue records DDL, the two newest statements, a line each.
func (m *Model) driftLines(w int) []string {
	if !m.drift.Drifted() {
		return nil
	}
	text := "⚠ SCHEMA DRIFT since " + m.ctx.Clock(m.driftSince) + ": " + m.drift.Summary(3) +
		". The cutover refuses until they match."
	lines := fit.Wrap(text, w)
	if len(lines) > 2 {
		lines = lines[:2]
		lines[1] = fit.Truncate(lines[1]+" …", w)
	}
	for i := range lines {
		lines[i] = m.ctx.Styles.Loud.Render(lines[i])
	}
	// With the DDL recorder on blue (record-ddl), what ran and when: the
	// newest two statements, one line each, the statement's own text
	// rather than its tag and object, which it repeats (status has both).
	for i, r := range m.drift.Recorded {
		if i == 2 {
			break
		}
		what := r.FirstLine()
		if strings.HasPrefix(what, "(") || what == "" { // not recorded: may hold a password
			what = strings.TrimSpace(r.CommandTag + " " + r.Object)
		}
		l := "  DDL on blue " + m.ctx.Clock(r.At) + " " + r.User + ": " + state.Redact(what)
		lines = append(lines, m.ctx.Styles.Warn.Render(fit.Truncate(l, w)))
	}
	return lines
}
