package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
)

// The connections pane (tab reaches it; it takes the top of the screen):
// blue's and green's sessions grouped by user, application and client,
// the sessions that matter to a cutover on lines of their own with a
// symbol and a word (a long transaction aborts the pause; a session that
// bypasses PgBouncer keeps writing where it is after the switch), and
// each PgBouncer's databases and pools. Read every connsEvery while shown.
// x ends the session under the cursor, after the database's name is typed.

// ConnectionsFunc reads who is connected; steps.Monitor.Connections fits it.
type ConnectionsFunc func(ctx context.Context) (steps.Connections, error)

// connsEvery paces the reads of who is connected while the pane is shown.
const connsEvery = 2 * time.Second

type terminatedMsg struct {
	target killTarget
	ended  bool
	err    error
}

// killTarget is the session x chose.
type killTarget struct {
	server string
	s      steps.SessionView
}

func (k killTarget) who() string {
	return fmt.Sprintf("%s@%s %s", k.s.User, k.s.Client, units.Or(k.s.Application, "no application name"))
}

// terminateCmd ends the chosen session through the runner, which journals it.
func terminateCmd(r Runner, t killTarget) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		ended, err := r.TerminateSession(ctx, t.server, t.s.PID, t.s.BackendStart, t.who())
		return terminatedMsg{target: t, ended: ended, err: err}
	}
}

// connRow is one line of the pane.
type connRow struct {
	text string
	// server, group and session locate it (-1 when it is not one).
	server, group, session int
}

// takeConns takes in a read of who is connected.
func (m *Model) takeConns(msg poll.Msg[steps.Connections]) {
	if m.connsPoll.Take(msg, m.now()) && msg.Err == nil {
		m.conns = msg.Value
	}
}

// takeTerminated reports the end of a session and reads again.
func (m *Model) takeTerminated(msg terminatedMsg) {
	t := msg.target
	switch {
	case msg.err != nil:
		m.note(pane.Error, fmt.Sprintf("session pid %d on %s not ended: %s", t.s.PID, t.server, fit.OneLine(msg.err)))
	case msg.ended:
		m.note(pane.OK, fmt.Sprintf("session pid %d on %s (%s) ended (journaled)", t.s.PID, t.server, t.who()))
	default:
		m.note(pane.Warn, fmt.Sprintf("session pid %d on %s was gone already; nothing ended", t.s.PID, t.server))
	}
	m.connsPoll.Soon()
}

// groupKey names a group for its expanded state.
func groupKey(server string, g steps.SessionGroup) string {
	return strings.Join([]string{server, g.User, g.Application, g.Client, g.Via}, "\x00")
}

// connRows builds the pane's lines at width w.
func (m *Model) connRows(w int) []connRow {
	st := m.styles
	c := m.conns
	var out []connRow
	add := func(text string, server, group, session int) {
		out = append(out, connRow{text: fit.Truncate(text, w), server: server, group: group, session: session})
	}
	if m.connsPoll.LastOK().IsZero() {
		if m.connsPoll.LastErr() != "" {
			add(st.Fail.Render("✗ who is connected could not be read: "+m.connsPoll.LastErr()), -1, -1, -1)
		} else {
			add(st.Faint.Render("reading who is connected…"), -1, -1, -1)
		}
		return out
	}
	for si, srv := range c.Servers {
		head := fmt.Sprintf("%s · %d session(s)", srv.Name, len(srv.Sessions))
		direct, long := 0, 0
		for _, s := range srv.Sessions {
			direct += b2i(s.Direct)
			long += b2i(s.Long)
		}
		if direct > 0 {
			head += fmt.Sprintf(" · ⚠ %d DIRECT (not through PgBouncer)", direct)
		}
		if long > 0 {
			head += fmt.Sprintf(" · ⚠ %d LONG TX (> %s)", long, units.Duration(c.LongAfter))
		}
		if srv.Err != "" {
			head += " · ✗ " + srv.Err
		}
		add(st.Phase.Render(head), si, -1, -1)
		for gi, g := range srv.Groups {
			add(m.groupLine(g), si, gi, -1)
			open := m.expanded[groupKey(srv.Name, g)]
			for _, k := range g.Members {
				if s := srv.Sessions[k]; open || s.Direct || s.Long {
					add(m.sessionLine(s), si, gi, k)
				}
			}
		}
	}
	for _, b := range c.Bouncers {
		head := "PgBouncer " + b.Name
		if b.Err != "" {
			head += " · ✗ " + b.Err
		}
		add(st.Phase.Render(head), -1, -1, -1)
		for _, d := range b.Databases {
			if d.Name == "pgbouncer" {
				continue
			}
			text := fmt.Sprintf("  %s → %s:%d/%s", d.Name, d.Host, d.Port, d.Database)
			if side := c.Sides[b.Name][d.Name]; side != "" {
				text += " (" + side + ")"
			}
			if d.Paused {
				add(st.Warn.Render(text+" · ‖ PAUSED"), -1, -1, -1)
			} else {
				add(text+" · not paused", -1, -1, -1)
			}
		}
		for _, p := range b.Pools {
			if p.Database == "pgbouncer" {
				continue
			}
			text := fmt.Sprintf("  pool %s/%s: clients %d active, %d waiting · servers %d active, %d idle · max wait %s",
				p.Database, p.User, p.ClActive, p.ClWaiting, p.SvActive, p.SvIdle, units.Age(p.MaxWait))
			if p.ClWaiting > 0 {
				text = st.Warn.Render(text)
			}
			add(text, -1, -1, -1)
		}
	}
	return out
}

// groupLine is one group: how many, who, from where, their states, the
// oldest transaction, what they wait on, and the marks.
func (m *Model) groupLine(g steps.SessionGroup) string {
	st := m.styles
	who := g.User + "@" + g.Client
	app := units.Or(g.Application, "-")
	via := ""
	switch {
	case g.Ours:
		via = " · this program's own"
	case g.Via != "":
		via = " · via PgBouncer " + g.Via
	}
	text := fmt.Sprintf("%3d %s %s%s · %s", g.Sessions, who, app, via, g.StatesText())
	if g.OldestXact > 0 {
		text += " · oldest tx " + units.Age(g.OldestXact)
	}
	if len(g.WaitEvents) > 0 {
		text += " · waits " + strings.Join(g.WaitEvents, " ")
	}
	var marks []string
	if g.Direct > 0 {
		marks = append(marks, fmt.Sprintf("⚠ %d DIRECT", g.Direct))
	}
	if g.Long > 0 {
		marks = append(marks, fmt.Sprintf("⚠ %d LONG TX", g.Long))
	}
	if len(marks) > 0 {
		return "  " + st.Warn.Render(strings.Join(marks, " ")) + " " + strings.TrimLeft(text, " ")
	}
	return "  " + text
}

// sessionLine is one session, marked when it matters to a cutover.
func (m *Model) sessionLine(s steps.SessionView) string {
	st := m.styles
	var marks []string
	if s.Direct {
		marks = append(marks, "⚠ DIRECT")
	}
	if s.Long {
		marks = append(marks, "⚠ LONG TX "+units.Age(s.XactAge))
	}
	text := fmt.Sprintf("      pid %d %s@%s %s · %s %s", s.PID, s.User, s.Client, units.Or(s.Application, "-"), units.Or(s.State, "?"), units.Age(s.StateAge))
	if s.XactAge > 0 && !s.Long {
		text += " · tx " + units.Age(s.XactAge)
	}
	if s.WaitEvent != "" {
		text += " · waits " + s.WaitEvent
	}
	if q := strings.Join(strings.Fields(s.Query), " "); q != "" {
		text += " · " + q
	}
	if len(marks) > 0 {
		return "    " + st.Fail.Render(strings.Join(marks, " ")) + strings.TrimPrefix(text, "    ")
	}
	return text
}

// connsTitle is the pane's title: counts, the long-transaction bound and
// when it was read.
func (m *Model) connsTitle() string {
	c := m.conns
	t := "Connections"
	for _, s := range c.Servers {
		t += fmt.Sprintf(" · %s %d", s.Name, len(s.Sessions))
	}
	if c.Flagged > 0 {
		t += fmt.Sprintf(" · ⚠ %d marked", c.Flagged)
	}
	if c.LongAfter > 0 {
		t += " · long tx > " + units.Duration(c.LongAfter) + " (drain timeout)"
	}
	if !m.connsPoll.LastOK().IsZero() {
		t += " · read " + m.connsPoll.LastOK().In(m.p.Location).Format("15:04:05")
	}
	return t
}

// connsPane draws the pane in w x h, keeping the cursor in view.
func (m *Model) connsPane(w, h int) []string {
	if h <= 0 {
		return nil
	}
	rows := m.connRows(w - 1)
	m.connCursor = max(0, min(m.connCursor, len(rows)-1))
	hh := h - 1
	if m.connCursor < m.connOff {
		m.connOff = m.connCursor
	}
	if m.connCursor >= m.connOff+hh {
		m.connOff = m.connCursor - hh + 1
	}
	m.connOff = max(0, min(m.connOff, len(rows)-hh))
	out := []string{m.title(m.connsTitle(), w, m.focus == focusConns)}
	for i := m.connOff; i < len(rows) && i < m.connOff+hh; i++ {
		line := " " + rows[i].text
		if i == m.connCursor {
			line = m.styles.Selected.Render(ansi.Strip(fit.Pad("›"+rows[i].text, w)))
		}
		out = append(out, line)
	}
	return fit.Fill(out, h)
}

// connAt returns the row under the cursor.
func (m *Model) connAt() (connRow, bool) {
	rows := m.connRows(max(m.width-1, 10))
	if m.connCursor < 0 || m.connCursor >= len(rows) {
		return connRow{}, false
	}
	return rows[m.connCursor], true
}

// connEnter opens or closes the group under the cursor.
func (m *Model) connEnter() {
	r, ok := m.connAt()
	if !ok || r.group < 0 {
		return
	}
	srv := m.conns.Servers[r.server]
	k := groupKey(srv.Name, srv.Groups[r.group])
	if m.expanded == nil {
		m.expanded = map[string]bool{}
	}
	m.expanded[k] = !m.expanded[k]
}

// connTerminate asks for the database's name to end the session under the
// cursor.
func (m *Model) connTerminate() tea.Cmd {
	if m.p.Watch || m.p.Runner == nil {
		return m.refuseWatch("end a session")
	}
	r, ok := m.connAt()
	if !ok || r.session < 0 {
		m.note(pane.Info, "x ends a session: put the cursor on one (enter on a group lists its sessions)")
		return nil
	}
	srv := m.conns.Servers[r.server]
	s := srv.Sessions[r.session]
	if s.Ours {
		m.note(pane.Warn, fmt.Sprintf("pid %d is pgbluegreen's own session: not ended", s.PID))
		return nil
	}
	m.kill = killTarget{server: srv.Name, s: s}
	m.openPrompt(promptTerminate, "")
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
