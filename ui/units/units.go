// Package units writes the quantities the screen shows, the same way in
// every pane: sizes as pg_size_pretty does, durations short, counts with
// thousands separated.
package units

import (
	"fmt"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// Bytes writes a size the way pg_size_pretty does.
func Bytes(b int64) string { return monitor.Bytes(b) }

// Duration writes a duration short: 45s, 3m05s, 2h10m.
func Duration(d time.Duration) string {
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

// Seconds writes a lag in time: 0.25s, 12.3s, 3m05s.
func Seconds(s float64) string {
	switch {
	case s < 10:
		return fmt.Sprintf("%.2fs", s)
	case s < 60:
		return fmt.Sprintf("%.1fs", s)
	}
	return Duration(time.Duration(s * float64(time.Second)))
}

// Age writes an age: 120ms, 12s, 3m05s; "-" for none.
func Age(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return Duration(d)
}

// Count writes a count with thousands separated: 4,100,000.
func Count(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + Count(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Elapsed says how long a step took: milliseconds under a second (most SQL
// steps), Duration above.
func Elapsed(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return Duration(d)
}

// Or is s, or def when s is empty.
func Or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
