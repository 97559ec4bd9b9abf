package lag

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
)

// g0 keeps a threshold non-negative.
func g0(v int64) int64 { return max(v, 0) }

// The lag pane: the slots of the feed in use first (blue's forward feed
// before a cutover, green's reverse feed after it), each with its lag in
// bytes and in time, its bar against the cutover's lag gate, and the WAL it
// holds against the room its server leaves it; the other feed's slots are
// marked idle, with the WAL they still hold.

// Feed directions, as pg.SlotLag.Direction spells them.
const (
	feedForward = "blue -> green"
	feedReverse = "green -> blue"
)

// activeFeed is the direction of the feed in use: where the traffic is
// says it; while that is unknown (paused, unreadable) the last known
// answer stands, and before any, the feed whose slots have a consumer.
func (m *Model) activeFeed() string {
	switch m.target {
	case "green":
		return feedReverse
	case "blue":
		return feedForward
	}
	if m.lastFeed != "" {
		return m.lastFeed
	}
	fwd, rev := false, false
	for _, v := range m.gauge.slots {
		if v.cur.Active {
			fwd = fwd || v.cur.Direction != feedReverse
			rev = rev || v.cur.Direction == feedReverse
		}
	}
	if rev && !fwd {
		return feedReverse
	}
	return feedForward
}

// feedWords is a direction as the screen writes it.
func feedWords(dir string) string { return strings.ReplaceAll(dir, "->", "→") }

// feedShort is a direction in three cells, for narrow rows.
func feedShort(dir string) string {
	if dir == feedReverse {
		return "g→b"
	}
	return "b→g"
}

// gaugeTitle names the feed in use, the poll interval and the bar's scale.
func (m *Model) gaugeTitle() string {
	feed := m.activeFeed()
	t := "Lag " + feedWords(feed)
	if feed == feedReverse {
		t += " (reverse feed, keeps rollback possible)"
	}
	t += " · every " + units.Duration(m.p.Interval)
	if !m.gauge.blue.LastOK().IsZero() {
		t += " · read " + m.ctx.Clock(m.gauge.blue.LastOK())
	}
	if g := m.gauge.caughtUp; g > 0 {
		t += " · bar full at the cutover's lag gate " + units.Bytes(g)
	}
	return t
}

// gaugeLines renders the lag pane's content (no title) at width w. Loud
// warnings come first so a short pane (clipGauge) still shows them.
func (m *Model) gaugeLines(w int) []string {
	g := &m.gauge
	st := m.ctx.Styles
	now := m.ctx.Now()
	var loud, lines []string
	if g.blue.LastErr() != "" {
		wait := max(0, g.blue.NextAt().Sub(now))
		retry := fmt.Sprintf(", retrying in %ds", int(math.Ceil(wait.Seconds())))
		// The reason is cut to fit two lines with the countdown, which is at
		// the end and must always show; the rest is wrapped, not cut.
		reason := fit.Truncate(g.blue.LastErr(), max(10, 2*w-len("✗ blue unreachable: ")-len(retry)-4))
		msg := "✗ blue unreachable: " + reason + retry
		for _, l := range fit.Wrap(msg, w) {
			loud = append(loud, st.Fail.Render(l))
		}
		if !g.blue.LastOK().IsZero() {
			loud = append(loud, st.Faint.Render("  figures below last read at "+m.ctx.Clock(g.blue.LastOK())))
		}
	}
	for _, v := range g.slots {
		if text, bad := danger(v.cur); bad {
			loud = append(loud, st.Loud.Render("⚠ "+text))
		}
	}
	loud = append(loud, m.driftLines(w)...)
	// The initial sync leads: while tables copy, the slots' lag says nothing.
	lines = append(lines, m.syncLines(w)...)
	if !g.blue.Enabled() && !g.sampled {
		lines = append(lines, st.Faint.Render("lag not polled (no connection to blue)"))
	} else if !g.sampled && g.blue.LastErr() == "" {
		lines = append(lines, st.Faint.Render("reading the replication slots…"))
	} else if g.sampled && len(g.slots) == 0 {
		lines = append(lines, st.Faint.Render("no logical slot on blue yet (create-slots or copy-data makes them)"))
	}
	nameW := 8
	for _, v := range g.slots {
		nameW = max(nameW, len(v.cur.Slot))
	}
	nameW = min(nameW, 20)
	for i := range loud {
		loud[i] = fit.Truncate(loud[i], w)
	}
	for i := range lines {
		lines[i] = fit.Truncate(lines[i], w)
	}
	// The feed in use first; slot lines are built to fit w, and are most
	// of the pane: not measured again.
	feed := m.activeFeed()
	for _, v := range g.slots {
		if v.cur.Direction == feed || v.cur.Direction == "" && feed == feedForward {
			lines = append(lines, m.slotLines(v, w, nameW)...)
		}
	}
	for _, v := range g.slots {
		if !(v.cur.Direction == feed || v.cur.Direction == "" && feed == feedForward) {
			lines = append(lines, m.idleFeedLine(v, w, nameW, feed))
		}
	}
	syncs := m.tableSyncs()
	for _, s := range g.subs {
		lines = append(lines, fit.Truncate(subLine(s, syncs[s.Name], now, st), w))
		delete(syncs, s.Name)
	}
	// Table syncs of a subscription green's read does not list (green
	// unreadable): still under their subscription's name, never as slots.
	rest := make([]string, 0, len(syncs))
	for sub := range syncs {
		rest = append(rest, sub)
	}
	sort.Strings(rest)
	for _, sub := range rest {
		lines = append(lines, fit.Truncate(st.Faint.Render("sub "+sub+" · "+syncsText(syncs[sub])), w))
	}
	if g.green.LastErr() != "" {
		lines = append(lines, fit.Truncate(st.Faint.Render("green: "+g.green.LastErr()+" (subscriptions unknown)"), w))
	}
	return append(loud, lines...)
}

// clipGauge keeps h lines, saying how many more there are.
func (m *Model) clipGauge(lines []string, h int) []string {
	if len(lines) <= h || h <= 0 {
		return lines
	}
	hidden := len(lines) - h + 1
	return append(lines[:h-1:h-1], m.ctx.Styles.Faint.Render(fmt.Sprintf("… %d more (a taller terminal shows them)", hidden)))
}

// wide is the width from which a slot takes one line and words spelled out.
const wide = 120

// slotLines is one slot of the feed in use: direction, state, lag in bytes
// and time, bar, rate, ETA; then the WAL it holds, the room left and the
// time to exhaustion, with the sparkline. One line on a wide screen, two
// on a narrow one.
func (m *Model) slotLines(v *slotView, w, nameW int) []string {
	br := m.brush
	if br == nil {
		br = m.ctx.Styles.Brushes()
	}
	sl := v.cur
	dir, active := feedShort(sl.Direction), "○"
	if sl.Active {
		active = "●"
	}
	if w >= wide {
		dir = fmt.Sprintf("%-11s", strings.ReplaceAll(feedWords(units.Or(sl.Direction, feedForward)), " ", ""))
		active = map[bool]string{true: "● active", false: "○ idle  "}[sl.Active]
	}
	rateText := "rate …"
	if r, ok := v.rate(); ok {
		switch {
		case math.Abs(r) < 1:
			rateText = "steady"
		case r > 0:
			rateText = "↓" + units.Bytes(int64(r)) + "/s"
		default:
			rateText = "↑" + units.Bytes(int64(-r)) + "/s"
		}
	}
	gate := g0(m.gauge.caughtUp)
	etaText := "ETA …"
	if m.slotCopying(sl.Slot) {
		// 0 B behind while tables copy is not caught up: the copy is the lag.
		etaText = "copying"
	} else if sl.BehindBytes <= gate {
		etaText = "caught up"
	} else if d, ok := v.eta(gate); ok {
		etaText = "ETA " + units.Duration(d)
	} else if r, ok := v.rate(); ok && r <= 0 {
		etaText = "not gaining"
	}
	fixed := fmt.Sprintf("%s %-*s %s %9s %-10s ", dir, nameW, fit.Truncate(sl.Slot, nameW), active, units.Bytes(sl.BehindBytes), m.timeLag(v))
	tail := fmt.Sprintf(" %-10s %-11s", rateText, etaText)
	disk, diskBad := m.diskText(v, false)
	diskBrush := br.Faint
	if diskBad {
		diskBrush = br.Fail
	}
	// The bar's scale is the cutover's lag gate: full means too far behind
	// to cut over; without a gate, the largest lag seen.
	scale := gate
	if scale <= 0 {
		scale = v.peak()
	}
	frac := 0.0
	if scale > 0 {
		frac = float64(sl.BehindBytes) / float64(scale)
	}
	barBrush := br.OK
	if sl.BehindBytes > gate {
		barBrush = br.Warn
	}
	if w >= wide {
		// The long words of the disk part only when they leave the bar room.
		if long, lbad := m.diskText(v, true); w-fit.Width(fixed)-fit.Width(tail)-fit.Width(long)-2 >= 24 {
			disk, diskBad = long, lbad
		}
		if diskBad {
			diskBrush = br.Fail
		}
		room := w - fit.Width(fixed) - fit.Width(tail) - fit.Width(disk) - 2
		barW := min(max(room, 0), 20)
		if room > 40 {
			barW = max(20, room/3)
		}
		sparkW := max(0, room-barW-1)
		line := fixed + barBrush.Paint(bar(frac, barW)) + tail + " " + diskBrush.Paint(disk)
		if sparkW >= 4 {
			line += " " + br.Faint.Paint(sparkline(v.hist, sparkW))
		}
		if room < 0 {
			return []string{fit.Truncate(line, w)}
		}
		return []string{line}
	}
	barW := max(0, w-fit.Width(fixed)-fit.Width(tail))
	first := fixed + barBrush.Paint(bar(frac, barW)) + tail
	indent := strings.Repeat(" ", 4)
	second := indent + diskBrush.Paint(disk)
	if sparkW := w - fit.Width(indent) - fit.Width(disk) - 1; sparkW >= 4 {
		second += " " + br.Faint.Paint(sparkline(v.hist, sparkW))
	}
	return []string{fit.Truncate(first, w), fit.Truncate(second, w)}
}

// timeLag is the slot's lag in time: the walsender's replay lag, or how
// long the slot has had no consumer.
func (m *Model) timeLag(v *slotView) string {
	sl := v.cur
	switch {
	case !sl.Active && !v.idleSince.IsZero():
		return "idle " + units.Duration(max(0, m.ctx.Now().Sub(v.idleSince)))
	case sl.LagSeconds == nil:
		return "lag n/a"
	}
	return "lag " + units.Seconds(*sl.LagSeconds)
}

// diskText is the WAL a slot holds against the room its server leaves it
// (safe_wal_size under max_slot_wal_keep_size), with the time to
// exhaustion at the current growth; bad when the room is short.
func (m *Model) diskText(v *slotView, long bool) (string, bool) {
	sl := v.cur
	_, bad := danger(sl)
	text := fmt.Sprintf("WAL %s %s", units.Bytes(sl.RetainedBytes), sl.WALStatus)
	r, ok := v.walRate()
	grow := ""
	if ok && r >= 1 {
		grow = "+" + units.Bytes(int64(r*60)) + "/min"
	}
	if sl.SafeWALBytes < 0 {
		if long {
			text += " · no limit (max_slot_wal_keep_size -1: the disk is the bound)"
		} else {
			text += " · no limit"
		}
		if grow != "" {
			text += " · " + grow
		}
		return text, bad
	}
	text += " · " + units.Bytes(sl.SafeWALBytes) + " left"
	if long && sl.MaxKeepBytes > 0 {
		text += " of " + units.Bytes(sl.MaxKeepBytes) + " (max_slot_wal_keep_size)"
	}
	if grow != "" {
		secs := float64(sl.SafeWALBytes) / r
		text += " · full in " + units.Duration(time.Duration(min(secs, 100*24*3600)*float64(time.Second)))
	}
	return text, bad
}

// idleFeedLine is a slot of the feed not in use: after a cutover blue's
// forward slots wait, kept for a rollback. Its lag means nothing then;
// the WAL it holds on its server still does.
func (m *Model) idleFeedLine(v *slotView, w, nameW int, feed string) string {
	sl := v.cur
	dir := feedShort(sl.Direction)
	if w >= wide {
		dir = fmt.Sprintf("%-11s", strings.ReplaceAll(feedWords(sl.Direction), " ", ""))
	}
	state := "○ idle"
	if sl.Active {
		state = "● consumer attached"
	} else if !v.idleSince.IsZero() {
		state += " " + units.Duration(max(0, m.ctx.Now().Sub(v.idleSince)))
	}
	why := "not the feed in use: writes go to blue"
	if feed == feedReverse {
		why = "not the feed in use: writes go to green; kept for a rollback"
		if w < wide {
			why = "kept for a rollback"
		}
	} else if w < wide {
		why = "not in use"
	}
	disk, bad := m.diskText(v, false)
	st := m.ctx.Styles.Faint
	if bad {
		st = m.ctx.Styles.Fail
	}
	line := fmt.Sprintf("%s %-*s %s · %s · ", dir, nameW, fit.Truncate(sl.Slot, nameW), state, why)
	return fit.Truncate(m.ctx.Styles.Faint.Render(line)+st.Render(disk), w)
}
