package lag

import (
	"fmt"
	"sort"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
)

// The initial sync on the lag pane. While tables copy, a slot's lag says
// nothing: green's apply worker confirms blue's position while each table's
// sync worker copies on a slot of its own, so the subscription's slot reads
// "0 B behind". The pane leads with COPYING instead: a bar of the bytes
// copied against the total, tables done / total, the rate and an ETA for
// the whole copy, and the tables in flight; then CATCHING UP, with the lag
// in bytes and in time, until every slot is within the cutover's lag gate.
// The table-sync slots (one per table being copied, temporary) are counted
// under their subscription, never drawn as slots of their own.
//
// The progress reads pg_stat_progress_copy and every table's size on both
// servers: it is read on a slow cadence, and only while a subscription is
// enabled with tables not yet synced (green's subscriptions, read every
// tick, say so). Once every table is copied it is not read any more; the
// catch-up is followed on the slots' lag, read every tick anyway.

// SyncEvery paces the progress reads: often enough for a rate and an ETA
// that move, rarely enough that sizing every table costs nothing.
const SyncEvery = 3 * time.Second

// Stage is where the initial sync stands, as this screen has seen it.
type Stage int

// The stages of the initial sync.
const (
	// NoCopy: no copy seen (none yet, or finished before the screen opened).
	NoCopy Stage = iota
	// Copying: a table is not copied yet.
	Copying
	// CatchingUp: every table copied, a slot still beyond the lag gate.
	CatchingUp
	// CaughtUp: caught up after the copy; the slots' rows say the rest. It
	// stays so under later load: the catch-up happens once per copy.
	CaughtUp
)

// syncView is the pane's part for the initial sync.
type syncView struct {
	poll  *poll.Poller[syncProgress]
	cur   syncProgress
	read  bool // cur holds a read
	stage Stage
}

// syncWanted says whether the progress is worth reading: a subscription is
// enabled and has tables whose sync has not finished, or a slot on blue
// has no subscription yet (copy-data may be copying in its snapshot).
func (m *Model) syncWanted() bool {
	if !m.sync.poll.Enabled() {
		return false
	}
	subscribed := map[string]bool{}
	for _, s := range m.gauge.subs {
		if s.Enabled && s.TablesNotReady > 0 {
			return true
		}
		subscribed[s.Slot] = true
	}
	for _, v := range m.gauge.slots {
		if v.cur.Server == "blue" && !subscribed[v.cur.Slot] && m.gauge.green.Failures() == 0 {
			return true
		}
	}
	return m.sync.stage == Copying
}

// takeSync takes in a read of the progress.
func (m *Model) takeSync(msg poll.Msg[syncProgress]) tea.Cmd {
	v := &m.sync
	if !v.poll.Take(msg, m.ctx.Now()) || msg.Err != nil {
		return nil
	}
	v.cur, v.read = msg.Value, true
	switch msg.Value.Phase {
	case "copying":
		v.stage = Copying
	case "not started":
		if v.stage == Copying {
			v.stage = NoCopy // a snapshot copy ended: its subscription comes next
		}
	case "streaming":
		if v.stage != CaughtUp {
			v.stage = CatchingUp
		}
	}
	return m.advanceSync()
}

// advanceSync moves the stage on from what the other reads say: the copy is
// over when green's subscriptions have every table synced, the catch-up
// when every slot of the subscriptions is within the lag gate. The end of
// the catch-up is said in the log.
func (m *Model) advanceSync() tea.Cmd {
	v := &m.sync
	if v.stage == Copying && len(m.gauge.subs) > 0 {
		done := true
		for _, s := range m.gauge.subs {
			done = done && s.TablesNotReady == 0
		}
		if done {
			v.stage = CatchingUp
		}
	}
	if v.stage == CatchingUp {
		if c, ok := m.catchUp(); ok && c.behind <= g0(m.gauge.caughtUp) {
			v.stage = CaughtUp
			return pane.Note(pane.OK, fmt.Sprintf("initial sync done: all %d tables copied, green caught up (%s behind)", v.cur.TablesTotal, units.Bytes(c.behind)))
		}
	}
	return nil
}

// catchUpLag is the furthest slot of the subscriptions: its lag in bytes
// and time (nil when blue does not say), and its view for the rate.
type catchUpLag struct {
	behind int64
	secs   *float64
	v      *slotView
}

// catchUp reads the lag of the subscriptions' slots in the last lag
// sample; ok is false when none is known.
func (m *Model) catchUp() (catchUpLag, bool) {
	mine := map[string]bool{}
	for _, s := range m.gauge.subs {
		if s.Slot != "" {
			mine[s.Slot] = true
		}
	}
	var c catchUpLag
	for _, v := range m.gauge.slots {
		sl := v.cur
		if sl.Direction == feedReverse || len(mine) > 0 && !mine[sl.Slot] || len(mine) == 0 && !sl.Active {
			continue
		}
		if c.v == nil || sl.BehindBytes > c.behind {
			c.behind, c.v = sl.BehindBytes, v
		}
		if sl.LagSeconds != nil && (c.secs == nil || *sl.LagSeconds > *c.secs) {
			c.secs = sl.LagSeconds
		}
	}
	return c, c.v != nil
}

// slotCopying says whether a slot's subscription is still copying tables:
// its row then says so rather than "caught up".
func (m *Model) slotCopying(slot string) bool {
	if m.sync.stage != Copying {
		return false
	}
	for _, s := range m.gauge.subs {
		if s.Slot != slot {
			continue
		}
		for _, p := range m.sync.cur.Subscriptions {
			if p.Name == s.Name {
				return p.TablesDone < p.TablesTotal
			}
		}
		return s.TablesNotReady > 0
	}
	return true // its subscription is not known: the copy is what is known
}

// tableSyncs counts the table-sync slots of the last lag sample under their
// subscription: by name when the progress lists the slot, by the
// subscription's oid in the slot's name when it lists a sibling, or the one
// subscription there is when no oid is known; else by the oid.
func (m *Model) tableSyncs() map[string]int {
	if len(m.gauge.syncSlots) == 0 {
		return nil
	}
	bySlot, byOID := map[string]string{}, map[string]string{}
	names := map[string]bool{}
	for _, s := range m.sync.cur.Subscriptions {
		names[s.Name] = true
		for _, sl := range s.SyncSlots {
			bySlot[sl], byOID[syncSlotOID(sl)] = s.Name, s.Name
		}
	}
	for _, s := range m.gauge.subs {
		names[s.Name] = true
	}
	only := ""
	if len(names) == 1 {
		for n := range names {
			only = n
		}
	}
	out := map[string]int{}
	for _, sl := range m.gauge.syncSlots {
		sub := bySlot[sl]
		if sub == "" {
			sub = byOID[syncSlotOID(sl)]
		}
		if sub == "" && len(byOID) == 0 {
			sub = only // no oid known to be another's
		}
		if sub == "" {
			sub = "subscription oid " + syncSlotOID(sl)
		}
		out[sub]++
	}
	return out
}

// syncSlotOID is the subscription's oid in a table-sync slot's name
// (pg_<subscription oid>_sync_<table oid>_<system id>).
func syncSlotOID(slot string) string {
	if f := strings.Split(slot, "_"); len(f) > 2 {
		return f[1]
	}
	return ""
}

// syncsText says how many table syncs a subscription has in flight.
func syncsText(n int) string {
	if n == 1 {
		return "1 table sync in flight"
	}
	return fmt.Sprintf("%d table syncs in flight", n)
}

// syncLines are the pane's lines for the initial sync, fitted to w: none
// before a copy is seen and once caught up after it.
func (m *Model) syncLines(w int) []string {
	var out []string
	switch m.sync.stage {
	case Copying:
		out = m.copyingLines(w)
	case CatchingUp:
		out = m.catchUpLines(w)
	}
	if e := m.sync.poll.LastErr(); e != "" && m.sync.stage != NoCopy {
		l := "initial sync progress not read: " + e
		if !m.sync.poll.LastOK().IsZero() {
			l = "figures above read at " + m.ctx.Clock(m.sync.poll.LastOK()) + "; now: " + e
		}
		out = append(out, fit.Truncate(m.ctx.Styles.Faint.Render("  "+l), w))
	}
	return out
}

// copyingLines: the phase, a bar of bytes copied against the total, N/M
// tables, the rate and the ETA; then the bytes and the tables in flight
// (summed up on one line on a small screen, one line each when there is
// room), and the subscriptions whose apply worker has not started.
func (m *Model) copyingLines(w int) []string {
	p := m.sync.cur
	st := m.ctx.Styles
	br := m.brush
	if br == nil {
		br = st.Brushes()
	}
	frac := 0.0
	if p.BytesTotal > 0 {
		frac = float64(p.BytesDone) / float64(p.BytesTotal)
	}
	rate, eta := "rate …", "ETA …"
	if p.BytesPerSec > 0 {
		rate = units.Bytes(int64(p.BytesPerSec)) + "/s"
	}
	if p.ETASeconds >= 0 {
		eta = "ETA " + units.Duration(time.Duration(p.ETASeconds*float64(time.Second)))
	}
	head := st.Running.Render("COPYING") + " "
	tail := fmt.Sprintf(" %3.0f%% · %d/%d tables · %s · %s", 100*frac, p.TablesDone, p.TablesTotal, rate, eta)
	if w >= wide {
		tail = fmt.Sprintf(" %3.0f%% · %s of %s · %d/%d tables copied · %s · %s", 100*frac,
			units.Bytes(p.BytesDone), units.Bytes(p.BytesTotal), p.TablesDone, p.TablesTotal, rate, eta)
	}
	room := w - fit.Width(head) - fit.Width(tail)
	barW := max(10, room)
	if w >= wide {
		barW = min(max(10, room), max(20, w/4))
	}
	out := []string{fit.Truncate(head+br.OK.Paint(bar(frac, barW))+tail, w)}

	// The tables in flight of every subscription, largest first.
	type flight struct {
		sub, table, state string
		done, total, rows int64
		ranges            int
	}
	var fl []flight
	for _, s := range p.Subscriptions {
		for _, t := range s.InFlight {
			fl = append(fl, flight{s.Name, t.Table, t.State, t.BytesDone, t.BytesTotal, t.Rows, t.Ranges})
		}
	}
	sort.SliceStable(fl, func(i, j int) bool { return fl[i].total > fl[j].total })
	many := len(p.Subscriptions) > 1
	list := w >= wide || m.screenH >= 40
	if !list {
		l := "  " + units.Bytes(p.BytesDone) + " of " + units.Bytes(p.BytesTotal)
		if len(fl) > 0 {
			// The largest table in flight; its name gives way to the figures.
			t := fl[0]
			l += " · in flight: "
			rest := fmt.Sprintf(" %s of %s", units.Bytes(t.done), units.Bytes(t.total))
			if t.ranges > 1 {
				rest = fmt.Sprintf(" ×%d", t.ranges) + rest
			}
			if len(fl) > 1 {
				rest += fmt.Sprintf(", +%d more", len(fl)-1)
			}
			l += fit.Truncate(t.table, max(8, w-fit.Width(l)-fit.Width(rest))) + rest
		}
		out = append(out, fit.Truncate(l, w))
	} else {
		// One line per table, as many as leave the slots' rows room below.
		limit := max(2, m.screenH/6)
		nameW := 0
		for _, f := range fl {
			nameW = max(nameW, fit.Width(flightName(f.sub, f.table, many)))
		}
		nameW = min(nameW, 48)
		for i, f := range fl {
			if i == limit-1 && len(fl) > limit {
				out = append(out, st.Faint.Render(fmt.Sprintf("  ↳ and %d more tables in flight", len(fl)-i)))
				break
			}
			tf := 0.0
			if f.total > 0 {
				tf = float64(f.done) / float64(f.total)
			}
			what := "copying"
			if f.ranges > 1 {
				what = fmt.Sprintf("copying %d ranges at once", f.ranges)
			}
			if f.state == "f" {
				what = "copied, catching up"
			}
			l := fmt.Sprintf("  ↳ %-*s ", nameW, fit.Truncate(flightName(f.sub, f.table, many), nameW))
			rest := fmt.Sprintf(" %3.0f%% %s of %s · %s rows · %s", 100*tf, units.Bytes(f.done), units.Bytes(f.total), units.Count(f.rows), what)
			tw := min(20, max(6, w-fit.Width(l)-fit.Width(rest)))
			out = append(out, fit.Truncate(l+br.OK.Paint(bar(tf, tw))+rest, w))
		}
	}
	for _, s := range p.Subscriptions {
		if s.Enabled && !s.WorkerRunning {
			why := "apply worker of " + s.Name + " not launched yet"
			if s.NotLaunched != "" {
				why += ": " + s.NotLaunched
			}
			out = append(out, fit.Truncate(st.Warn.Render("  ⚠ "+why), w))
		}
	}
	return out
}

// flightName names a table in flight, with its subscription when there are several.
func flightName(sub, table string, many bool) string {
	if many {
		return sub + ": " + table
	}
	return table
}

// catchUpLines: every table copied, the lag in bytes and in time of the
// furthest slot, its rate and ETA, until within the lag gate.
func (m *Model) catchUpLines(w int) []string {
	st := m.ctx.Styles
	l := st.Warn.Render("CATCHING UP") + fmt.Sprintf(" · all %d tables copied", m.sync.cur.TablesTotal)
	c, ok := m.catchUp()
	if !ok {
		return []string{fit.Truncate(l+" · lag not read yet", w)}
	}
	l += " · " + units.Bytes(c.behind) + " behind"
	if c.secs != nil {
		l += " · lag " + units.Seconds(*c.secs)
	}
	gate := g0(m.gauge.caughtUp)
	if w >= wide {
		if r, ok := c.v.rate(); ok && r >= 1 {
			l += " · gaining " + units.Bytes(int64(r)) + "/s"
		}
	}
	if d, ok := c.v.eta(gate); ok {
		l += " · ETA " + units.Duration(d)
	} else if r, ok := c.v.rate(); ok && r <= 0 {
		l += " · not gaining"
	}
	if w >= wide {
		l += " · done within " + units.Bytes(gate) + " (the cutover's lag gate)"
	}
	return []string{fit.Truncate(l, w)}
}
