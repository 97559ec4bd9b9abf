package lag

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/theme"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
)

// Lag history and thresholds.
const (
	// HistoryLen keeps five minutes of samples at the default 1 s tick, for
	// the sparkline.
	HistoryLen = 300
	// rateWindow is how far back the catch-up rate looks: long enough to
	// smooth out one burst of writes, short enough to follow a change.
	rateWindow = 15 * time.Second
	// invalidationShare: a slot is loud when what blue may still write before
	// invalidating it is below this share of what it could hold.
	invalidationShare = 0.2
)

// point is one sample of one slot.
type point struct {
	at       time.Time
	behind   int64
	retained int64
}

// slotView is one slot with its history.
type slotView struct {
	cur  slotLag
	hist []point
	// idleSince is when the slot was first seen without a consumer (the
	// server's own inactive_since when it says, PostgreSQL 17+); zero while
	// active.
	idleSince time.Time
}

// gauge is the lag pane's data: blue's slots and green's subscriptions.
type gauge struct {
	slots []*slotView
	// syncSlots are the table-sync slots of the last sample: one per table
	// being copied, counted under their subscription, never a row.
	syncSlots []string
	subs      []subscription
	blue      *poll.Poller[lagSample]
	green     *poll.Poller[[]subscription]
	sampled   bool // blue answered at least once
	// caughtUp is the lag below which a slot counts as caught up (the
	// cutover's own threshold).
	caughtUp int64
}

// add folds one sample into the history: slots are matched by server and
// name, and a slot that is gone disappears.
func (g *gauge) add(s lagSample) {
	g.sampled = true
	old := make(map[string]*slotView, len(g.slots))
	for _, v := range g.slots {
		old[v.cur.Server+"/"+v.cur.Slot] = v
	}
	next := make([]*slotView, 0, len(s.Slots))
	g.syncSlots = g.syncSlots[:0]
	for _, sl := range s.Slots {
		if isTableSyncSlot(sl.Slot) {
			g.syncSlots = append(g.syncSlots, sl.Slot)
			continue
		}
		v := old[sl.Server+"/"+sl.Slot]
		if v == nil {
			v = &slotView{}
		}
		v.cur = sl
		switch {
		case sl.Active:
			v.idleSince = time.Time{}
		case sl.InactiveSince != nil:
			v.idleSince = *sl.InactiveSince
		case v.idleSince.IsZero():
			v.idleSince = s.At
		}
		v.hist = append(v.hist, point{at: s.At, behind: sl.BehindBytes, retained: sl.RetainedBytes})
		if len(v.hist) > HistoryLen {
			v.hist = append(v.hist[:0], v.hist[len(v.hist)-HistoryLen:]...)
		}
		next = append(next, v)
	}
	g.slots = next
}

// rate is the catch-up rate in bytes per second over the rate window:
// positive while green gains on blue, negative while it falls behind.
// ok is false until two samples are far enough apart.
func (v *slotView) rate() (float64, bool) {
	first, last, dt := v.window()
	if dt <= 0 {
		return 0, false
	}
	return float64(first.behind-last.behind) / dt, true
}

// walRate is how fast the WAL the slot holds grows, in bytes per second
// over the rate window (negative while it shrinks).
func (v *slotView) walRate() (float64, bool) {
	first, last, dt := v.window()
	if dt <= 0 {
		return 0, false
	}
	return float64(last.retained-first.retained) / dt, true
}

// window is the first and last samples of the rate window and the seconds
// between them (0 until there are two).
func (v *slotView) window() (first, last point, secs float64) {
	n := len(v.hist)
	if n < 2 {
		return point{}, point{}, 0
	}
	last = v.hist[n-1]
	first = v.hist[0]
	for i := n - 2; i >= 0; i-- {
		first = v.hist[i]
		if last.at.Sub(v.hist[i].at) >= rateWindow {
			break
		}
	}
	return first, last, last.at.Sub(first.at).Seconds()
}

// eta is the time to caught up at the current rate; ok is false when green
// is not gaining (or the rate is not known yet).
func (v *slotView) eta(caughtUp int64) (time.Duration, bool) {
	r, ok := v.rate()
	behind := v.cur.BehindBytes - caughtUp
	if behind <= 0 {
		return 0, true
	}
	if !ok || r <= 0 {
		return 0, false
	}
	secs := float64(behind) / r
	if secs > float64(100*24*time.Hour/time.Second) {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)).Round(time.Second), true
}

// peak is the largest lag in the history: the bar's scale when no lag
// gate is configured.
func (v *slotView) peak() int64 {
	var p int64
	for _, pt := range v.hist {
		p = max(p, pt.behind)
	}
	return p
}

// danger says whether a slot is close to being invalidated, and how, in words.
func danger(sl slotLag) (string, bool) {
	server := units.Or(sl.Server, "blue")
	switch sl.WALStatus {
	case "lost":
		return fmt.Sprintf("slot %s on %s is LOST: %s removed WAL it needed; its feed cannot catch up from it, start that replication over", sl.Slot, server, server), true
	case "unreserved":
		return fmt.Sprintf("slot %s on %s is about to be INVALIDATED (wal_status unreserved): %s retained, past max_slot_wal_keep_size", sl.Slot, server, units.Bytes(sl.RetainedBytes)), true
	}
	if sl.SafeWALBytes >= 0 {
		total := sl.SafeWALBytes + sl.RetainedBytes
		if total > 0 && float64(sl.SafeWALBytes) < invalidationShare*float64(total) {
			return fmt.Sprintf("slot %s on %s is close to being INVALIDATED: only %s of WAL left before max_slot_wal_keep_size", sl.Slot, server, units.Bytes(sl.SafeWALBytes)), true
		}
	}
	return "", false
}

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last width samples, scaled to their own maximum.
func sparkline(hist []point, width int) string {
	if width <= 0 || len(hist) == 0 {
		return ""
	}
	if len(hist) > width {
		hist = hist[len(hist)-width:]
	}
	var top int64
	for _, p := range hist {
		top = max(top, p.behind)
	}
	var b strings.Builder
	for _, p := range hist {
		i := 0
		if top > 0 {
			i = int(math.Round(float64(p.behind) / float64(top) * float64(len(sparkRunes)-1)))
		}
		b.WriteRune(sparkRunes[max(0, min(i, len(sparkRunes)-1))])
	}
	return b.String()
}

// bar draws a static gauge of fraction f in width cells.
func bar(f float64, width int) string {
	if width <= 0 {
		return ""
	}
	fill := int(math.Round(max(0, min(f, 1)) * float64(width)))
	return strings.Repeat("█", fill) + strings.Repeat("░", width-fill)
}

// subLine is one subscription on green, with the table syncs it has in
// flight (their slots on blue are counted here, not drawn as slots).
func subLine(s subscription, syncs int, now time.Time, st theme.Styles) string {
	var parts []string
	if s.Enabled {
		parts = append(parts, "enabled")
	} else {
		parts = append(parts, st.Warn.Render("disabled"))
	}
	if s.WorkerRunning {
		parts = append(parts, "worker running")
	} else if s.Enabled {
		parts = append(parts, st.Fail.Render("no worker"))
	}
	switch {
	case s.ApplyErrors < 0:
	case s.ApplyErrors+s.SyncErrors > 0:
		parts = append(parts, st.Fail.Render(fmt.Sprintf("✗ errors: apply %d, sync %d", s.ApplyErrors, s.SyncErrors)))
	default:
		parts = append(parts, "no errors")
	}
	if s.Tables > 0 {
		if s.TablesNotReady > 0 {
			parts = append(parts, st.Warn.Render(fmt.Sprintf("tables %d/%d synced", s.Tables-s.TablesNotReady, s.Tables)))
		} else {
			parts = append(parts, fmt.Sprintf("tables %d/%d synced", s.Tables, s.Tables))
		}
	}
	if s.ReceivedLSN != "" {
		parts = append(parts, "received "+s.ReceivedLSN)
	}
	if !s.LastMessage.IsZero() {
		parts = append(parts, "heard "+units.Duration(max(0, now.Sub(s.LastMessage)))+" ago")
	}
	name := s.Name
	if syncs > 0 {
		name += " · " + syncsText(syncs)
	}
	return "sub " + name + ": " + strings.Join(parts, ", ")
}
