// Package conns is the connections pane: blue's and green's sessions
// grouped by user, application and client, the sessions that matter to a
// cutover on lines of their own with a symbol and a word (a long
// transaction aborts the pause; a session that bypasses PgBouncer keeps
// writing where it is after the switch), and each PgBouncer's databases
// and pools. Who is connected is read every Every while the pane is shown.
package conns

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
)

// Source names the pane's reads (poll.Msg.Source, poll.SoonMsg).
const Source = "connections"

// Every paces the reads of who is connected while the pane is shown.
const Every = 2 * time.Second

// Model is the connections pane.
type Model struct {
	ctx  pane.Context
	poll *poll.Poller[monitor.Connections]
	c    monitor.Connections
	// cursor is the selected row; off the first row shown.
	cursor, off int
	// expanded are the groups opened, by groupKey.
	expanded      map[string]bool
	focused       bool
	width, height int
}

var _ pane.Component = (*Model)(nil)

// New makes the pane, reading who is connected with read (nil: not read)
// on chain's ticks while the pane is focused, each read bounded by timeout.
func New(ctx pane.Context, chain *poll.Chain, read func(context.Context) (monitor.Connections, error), timeout time.Duration) *Model {
	return &Model{ctx: ctx, poll: poll.New(chain, poll.Params[monitor.Connections]{Source: Source, Read: read, Every: Every, Backoff: Every, Timeout: timeout})}
}

// Init does nothing: the reads start with the ticks, once the pane shows.
func (m *Model) Init() tea.Cmd { return nil }

// SetSize gives the pane its size, title included.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// SetFocused says whether the pane is shown and has the keys; shown, it
// reads who is connected at the next tick.
func (m *Model) SetFocused(f bool) {
	if f && !m.focused {
		m.poll.Soon()
	}
	m.focused = f
}

// Update reads who is connected on the ticks while focused, takes what was
// read, and moves the cursor (the arrows, g) or opens a group (enter).
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case poll.TickMsg:
		if m.focused {
			return m, m.poll.Poll(m.ctx.Now())
		}
	case poll.SoonMsg:
		poll.Hurry(msg, m.poll)
	case poll.Msg[monitor.Connections]:
		if m.poll.Take(msg, m.ctx.Now()) && msg.Err == nil {
			m.c = msg.Value
		}
	case tea.KeyMsg:
		if !m.focused {
			break
		}
		switch k := m.ctx.Keys; {
		case key.Matches(msg, k.Up):
			m.cursor = max(0, m.cursor-1)
		case key.Matches(msg, k.Down):
			m.cursor++ // View keeps it within the rows
		case key.Matches(msg, k.Top):
			m.cursor = 0
		case key.Matches(msg, k.Expand):
			m.toggle()
		}
	}
	return m, nil
}

// ShortHelp is the pane's keys.
func (m *Model) ShortHelp() []key.Binding {
	k := m.ctx.Keys
	return []key.Binding{k.Expand, k.Terminate, k.Up, k.Down}
}

// FullHelp is the pane's keys in columns.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.ctx.Keys
	return [][]key.Binding{{k.Up, k.Down, k.Top}, {k.Expand, k.Terminate}}
}

// Session is one session of a server.
type Session struct {
	Server string
	monitor.SessionView
}

// Who says whose session it is: user@client application.
func (s Session) Who() string {
	return fmt.Sprintf("%s@%s %s", s.User, s.Client, units.Or(s.Application, "no application name"))
}

// Selected is the session under the cursor; false when the cursor is on
// another row (a heading, a group).
func (m *Model) Selected() (Session, bool) {
	r, ok := m.at()
	if !ok || r.session < 0 {
		return Session{}, false
	}
	srv := m.c.Servers[r.server]
	return Session{Server: srv.Name, SessionView: srv.Sessions[r.session]}, true
}

// row is one line of the pane.
type row struct {
	text string
	// server, group and session locate it (-1 when it is not one).
	server, group, session int
}

// groupKey names a group for its expanded state.
func groupKey(server string, g monitor.SessionGroup) string {
	return strings.Join([]string{server, g.User, g.Application, g.Client, g.Via}, "\x00")
}

// rows builds the pane's lines at width w.
func (m *Model) rows(w int) []row {
	st := m.ctx.Styles
	c := m.c
	var out []row
	add := func(text string, server, group, session int) {
		out = append(out, row{text: fit.Truncate(text, w), server: server, group: group, session: session})
	}
	if m.poll.LastOK().IsZero() {
		if m.poll.LastErr() != "" {
			add(st.Fail.Render("✗ who is connected could not be read: "+m.poll.LastErr()), -1, -1, -1)
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
func (m *Model) groupLine(g monitor.SessionGroup) string {
	st := m.ctx.Styles
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
func (m *Model) sessionLine(s monitor.SessionView) string {
	st := m.ctx.Styles
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

// title is the pane's title: counts, the long-transaction bound and
// when it was read.
func (m *Model) title() string {
	c := m.c
	t := "Connections"
	for _, s := range c.Servers {
		t += fmt.Sprintf(" · %s %d", s.Name, len(s.Sessions))
	}
	if c.Flagged > 0 {
		t += fmt.Sprintf(" · ⚠ %d marked", c.Flagged)
	}
	if c.LongAfter > 0 {
		t += " · long tx > " + units.Duration(c.LongAfter)
	}
	if !m.poll.LastOK().IsZero() {
		t += " · read " + m.ctx.Clock(m.poll.LastOK())
	}
	return t
}

// View draws the pane, keeping the cursor in view.
func (m *Model) View() string {
	w, h := m.width, m.height
	if h <= 0 {
		return ""
	}
	rows := m.rows(w - 1)
	m.cursor = max(0, min(m.cursor, len(rows)-1))
	hh := h - pane.TitleHeight
	if m.cursor < m.off {
		m.off = m.cursor
	}
	if m.cursor >= m.off+hh {
		m.off = m.cursor - hh + 1
	}
	m.off = max(0, min(m.off, len(rows)-hh))
	out := []string{m.ctx.Title(m.title(), w, m.focused)}
	for i := m.off; i < len(rows) && i < m.off+hh; i++ {
		line := " " + rows[i].text
		if i == m.cursor {
			line = m.ctx.Styles.Selected.Render(ansi.Strip(fit.Pad("›"+rows[i].text, w)))
		}
		out = append(out, line)
	}
	return strings.Join(fit.Fill(out, h), "\n")
}

// at returns the row under the cursor.
func (m *Model) at() (row, bool) {
	rows := m.rows(max(m.width-1, 10))
	if m.cursor < 0 || m.cursor >= len(rows) {
		return row{}, false
	}
	return rows[m.cursor], true
}

// toggle opens or closes the group under the cursor.
func (m *Model) toggle() {
	r, ok := m.at()
	if !ok || r.group < 0 {
		return
	}
	srv := m.c.Servers[r.server]
	k := groupKey(srv.Name, srv.Groups[r.group])
	if m.expanded == nil {
		m.expanded = map[string]bool{}
	}
	m.expanded[k] = !m.expanded[k]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
