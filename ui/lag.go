package ui

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
)

// Lag history and thresholds.
const (
	// historyLen keeps five minutes of samples at the default 1 s tick, for
	// the sparkline.
	historyLen = 300
	// rateWindow is how far back the catch-up rate looks: long enough to
	// smooth out one burst of writes, short enough to follow a change.
	rateWindow = 15 * time.Second
	// maxBackoff bounds the wait between polls of a server that does not answer.
	maxBackoff = 30 * time.Second
	// invalidationShare: a slot is loud when what blue may still write before
	// invalidating it is below this share of what it could hold.
	invalidationShare = 0.2
)

// point is one sample of one slot.
type point struct {
	at     time.Time
	behind int64
}

// slotView is one slot with its history.
type slotView struct {
	cur  steps.SlotLag
	hist []point
}

// poller paces one source: one query in flight at most, and a backoff after
// failures, counted in ticks of the one chain, so a server that is down
// never doubles the rate.
type poller struct {
	inFlight bool
	failures int
	nextAt   time.Time
	lastErr  string
	lastOK   time.Time
}

// due reports whether a query may start now.
func (p *poller) due(now time.Time) bool { return !p.inFlight && !now.Before(p.nextAt) }

// failed records a failure and schedules the retry with exponential backoff.
func (p *poller) failed(now time.Time, interval time.Duration, err error) {
	p.inFlight = false
	p.failures++
	back := interval << min(p.failures-1, 10)
	back = min(max(back, interval), maxBackoff)
	p.nextAt = now.Add(back)
	p.lastErr = reason(err)
}

// succeeded clears the failures.
func (p *poller) succeeded(now time.Time) {
	p.inFlight, p.failures, p.lastErr, p.nextAt, p.lastOK = false, 0, "", time.Time{}, now
}

// gauge is the lag pane's data: blue's slots and green's subscriptions.
type gauge struct {
	slots   []*slotView
	subs    []steps.Subscription
	blue    poller
	green   poller
	sampled bool // blue answered at least once
	// caughtUp is the lag below which a slot counts as caught up (the
	// cutover's own threshold).
	caughtUp int64
}

// add folds one sample into the history: slots are matched by name, and a
// slot that is gone disappears.
func (g *gauge) add(s steps.LagSample) {
	g.sampled = true
	old := make(map[string]*slotView, len(g.slots))
	for _, v := range g.slots {
		old[v.cur.Slot] = v
	}
	next := make([]*slotView, 0, len(s.Slots))
	for _, sl := range s.Slots {
		v := old[sl.Slot]
		if v == nil {
			v = &slotView{}
		}
		v.cur = sl
		v.hist = append(v.hist, point{at: s.At, behind: sl.BehindBytes})
		if len(v.hist) > historyLen {
			v.hist = append(v.hist[:0], v.hist[len(v.hist)-historyLen:]...)
		}
		next = append(next, v)
	}
	g.slots = next
}

// rate is the catch-up rate in bytes per second over the rate window:
// positive while green gains on blue, negative while it falls behind.
// ok is false until two samples are far enough apart.
func (v *slotView) rate() (float64, bool) {
	n := len(v.hist)
	if n < 2 {
		return 0, false
	}
	last := v.hist[n-1]
	first := v.hist[0]
	for i := n - 2; i >= 0; i-- {
		first = v.hist[i]
		if last.at.Sub(v.hist[i].at) >= rateWindow {
			break
		}
	}
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 {
		return 0, false
	}
	return float64(first.behind-last.behind) / dt, true
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

// peak is the largest lag in the history, the bar's full scale.
func (v *slotView) peak() int64 {
	var p int64
	for _, pt := range v.hist {
		p = max(p, pt.behind)
	}
	return p
}

// danger says whether a slot is close to being invalidated, and how, in words.
func danger(sl steps.SlotLag) (string, bool) {
	switch sl.WALStatus {
	case "lost":
		return fmt.Sprintf("slot %s is LOST: blue removed WAL it needed; green cannot catch up from it, start replication over", sl.Slot), true
	case "unreserved":
		return fmt.Sprintf("slot %s is about to be INVALIDATED (wal_status unreserved): %s retained, past max_slot_wal_keep_size", sl.Slot, bytesText(sl.RetainedBytes)), true
	}
	if sl.SafeWALBytes >= 0 {
		total := sl.SafeWALBytes + sl.RetainedBytes
		if total > 0 && float64(sl.SafeWALBytes) < invalidationShare*float64(total) {
			return fmt.Sprintf("slot %s is close to being INVALIDATED: only %s of WAL left before max_slot_wal_keep_size", sl.Slot, bytesText(sl.SafeWALBytes)), true
		}
	}
	return "", false
}

// bytesText writes a size the way pg_size_pretty does (1024-based).
func bytesText(b int64) string {
	neg := b < 0
	if neg {
		b = -b
	}
	units := []string{"kB", "MB", "GB", "TB"}
	s := fmt.Sprintf("%d B", b)
	f := float64(b)
	for _, u := range units {
		if f < 1024 {
			break
		}
		f /= 1024
		if f >= 100 {
			s = fmt.Sprintf("%.0f %s", f, u)
		} else {
			s = fmt.Sprintf("%.1f %s", f, u)
		}
	}
	if neg {
		return "-" + s
	}
	return s
}

// durationText writes a duration short: 45s, 3m05s, 2h10m.
func durationText(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
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

// gaugeLines renders the lag pane's content (no title) at width w. Loud
// warnings come first so a short pane (clipGauge) still shows them.
func (m *Model) gaugeLines(w int) []string {
	g := &m.gauge
	st := m.styles
	now := m.now()
	var loud, lines []string
	if g.blue.lastErr != "" {
		wait := max(0, g.blue.nextAt.Sub(now))
		retry := fmt.Sprintf(", retrying in %ds", int(math.Ceil(wait.Seconds())))
		// The reason is cut to fit two lines with the countdown, which is at
		// the end and must always show; the rest is wrapped, not cut.
		reason := truncate(g.blue.lastErr, max(10, 2*w-len("✗ blue unreachable: ")-len(retry)-4))
		msg := "✗ blue unreachable: " + reason + retry
		for _, l := range strings.Split(ansi.Hardwrap(ansi.Wordwrap(msg, w, " "), w, true), "\n") {
			loud = append(loud, st.Fail.Render(l))
		}
		if !g.blue.lastOK.IsZero() {
			loud = append(loud, st.Faint.Render("  figures below last read at "+g.blue.lastOK.In(m.p.Location).Format("15:04:05")))
		}
	}
	for _, v := range g.slots {
		if text, bad := danger(v.cur); bad {
			loud = append(loud, st.Loud.Render("⚠ "+text))
		}
	}
	if m.p.Lag == nil && !g.sampled {
		lines = append(lines, st.Faint.Render("lag not polled (no connection to blue)"))
	} else if !g.sampled && g.blue.lastErr == "" {
		lines = append(lines, st.Faint.Render("reading blue's replication slots…"))
	} else if g.sampled && len(g.slots) == 0 {
		lines = append(lines, st.Faint.Render("no logical slot on blue yet (create-slots makes them)"))
	}
	nameW := 8
	for _, v := range g.slots {
		nameW = max(nameW, len(v.cur.Slot))
	}
	nameW = min(nameW, 20)
	for i := range loud {
		loud[i] = truncate(loud[i], w)
	}
	for i := range lines {
		lines[i] = truncate(lines[i], w)
	}
	// Slot lines are built to fit w, and are most of the pane: not measured again.
	for _, v := range g.slots {
		lines = append(lines, m.slotLine(v, w, nameW))
	}
	for _, s := range g.subs {
		lines = append(lines, truncate(subLine(s, now, st), w))
	}
	if g.green.lastErr != "" {
		lines = append(lines, truncate(st.Faint.Render("green: "+g.green.lastErr+" (subscriptions unknown)"), w))
	}
	return append(loud, lines...)
}

// clipGauge keeps h lines, saying how many more there are.
func (m *Model) clipGauge(lines []string, h int) []string {
	if len(lines) <= h || h <= 0 {
		return lines
	}
	hidden := len(lines) - h + 1
	return append(lines[:h-1:h-1], m.styles.Faint.Render(fmt.Sprintf("… %d more (a taller terminal shows them)", hidden)))
}

// slotLine is one slot: state, lag, bar, rate, ETA, retained WAL, sparkline.
func (m *Model) slotLine(v *slotView, w, nameW int) string {
	st := m.styles
	sl := v.cur
	// Wide screens spell the slot's state out; narrow ones keep the symbol.
	active := "○"
	if sl.Active {
		active = "●"
	}
	if w >= 120 {
		active = map[bool]string{true: "● active", false: "○ idle  "}[sl.Active]
	}
	behind := fmt.Sprintf("%9s", bytesText(sl.BehindBytes))
	rateText := "rate …"
	if r, ok := v.rate(); ok {
		switch {
		case math.Abs(r) < 1:
			rateText = "steady"
		case r > 0:
			rateText = "↓" + bytesText(int64(r)) + "/s"
		default:
			rateText = "↑" + bytesText(int64(-r)) + "/s"
		}
	}
	etaText := "ETA …"
	if sl.BehindBytes <= g0(m.gauge.caughtUp) {
		etaText = "caught up"
	} else if d, ok := v.eta(m.gauge.caughtUp); ok {
		etaText = "ETA " + durationText(d)
	} else if r, ok := v.rate(); ok && r <= 0 {
		etaText = "not gaining"
	}
	br := m.brush
	if br == nil {
		b := st.brushes()
		br = &b
	}
	walBrush := br.faint
	if _, bad := danger(sl); bad {
		walBrush = br.fail
	}
	retainedText := fmt.Sprintf("WAL %s %s", bytesText(sl.RetainedBytes), sl.WALStatus)
	fixed := fmt.Sprintf("%-*s %s %s ", nameW, truncate(sl.Slot, nameW), active, behind)
	tail := fmt.Sprintf(" %-10s %-11s ", rateText, etaText)
	// Share what is left between the bar and the sparkline.
	used := displayWidth(fixed) + displayWidth(tail) + len(retainedText)
	room := w - used
	barW := min(max(room, 0), 20)
	if room > 40 {
		barW = max(20, room/3)
	}
	sparkW := max(0, room-barW-1)
	frac := 0.0
	if p := v.peak(); p > 0 {
		frac = float64(sl.BehindBytes) / float64(p)
	}
	barBrush := br.ok
	if sl.BehindBytes > g0(m.gauge.caughtUp) {
		barBrush = br.warn
	}
	line := fixed + barBrush.paint(bar(frac, barW)) + tail + walBrush.paint(retainedText)
	if sparkW >= 4 {
		line += " " + br.faint.paint(sparkline(v.hist, sparkW))
	}
	if room < 0 {
		return truncate(line, w) // narrower than the fixed columns: cut
	}
	return line
}

// g0 keeps a threshold non-negative.
func g0(v int64) int64 { return max(v, 0) }

// subLine is one subscription on green.
func subLine(s steps.Subscription, now time.Time, st Styles) string {
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
		parts = append(parts, "heard "+durationText(max(0, now.Sub(s.LastMessage)))+" ago")
	}
	return "sub " + s.Name + ": " + strings.Join(parts, ", ")
}

// reason is the part of a poll's error that says why: a connection error
// from pgx carries its context twice over, and what matters is the network's
// answer (dial tcp host:port: connection refused) or the timeout.
func reason(err error) string {
	var op *net.OpError
	switch {
	case errors.As(err, &op):
		return oneLineErr(op)
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer before the poll's deadline"
	}
	return oneLineErr(err)
}

// oneLineErr makes an error one readable, redacted line.
func oneLineErr(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(state.Redact(err.Error())), " ")
}
