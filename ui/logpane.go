package ui

import (
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/theme"
)

type logLevel uint8

const (
	levelInfo logLevel = iota
	levelOK
	levelWarn
	levelError
	levelSQL
)

// levelOf maps a step line's level to the log's.
func levelOf(l string) logLevel {
	switch l {
	case "warn":
		return levelWarn
	case "error":
		return levelError
	case "sql", "api", "plan":
		return levelSQL
	}
	return levelInfo
}

// entryLevel maps a journal entry to the log's level.
func entryLevel(e state.Entry) logLevel {
	switch {
	case e.Error != "" || e.Outcome == "error" || e.Outcome == "failed" || e.Outcome == state.OutcomeUnreadable:
		return levelError
	case e.Outcome == "warn" || e.Outcome == "refused" || e.Outcome == "interrupted":
		return levelWarn
	case e.Outcome == "done":
		return levelOK
	case e.Kind == "sql" || e.Kind == "api":
		return levelSQL
	}
	return levelInfo
}

type logLine struct {
	text  string
	level logLevel
}

// logPane is the run's log: newest at the bottom, following new lines unless
// scrolled back. Only the visible lines are drawn, so 10,000 lines cost no
// more per frame than 20.
type logPane struct {
	lines []logLine
	limit int
	// back is how many lines the view is scrolled back from the bottom;
	// 0 follows new lines.
	back int
}

func newLogPane(limit int) logPane { return logPane{limit: limit} }

// add appends a line; a multi-line text becomes several lines. Past the
// limit the oldest half is dropped at once (amortised, not per line).
func (l *logPane) add(text string, level logLevel) {
	for _, s := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		l.lines = append(l.lines, logLine{text: strings.ReplaceAll(s, "\t", "    "), level: level})
		if l.back > 0 {
			l.back++ // stay on the lines the reader is looking at
		}
	}
	if len(l.lines) > l.limit {
		drop := len(l.lines) - l.limit/2
		l.lines = append(l.lines[:0], l.lines[drop:]...)
	}
}

// scroll moves the view by n lines (positive: back in time) for a pane of height h.
func (l *logPane) scroll(n, h int) {
	l.back = max(0, min(l.back+n, len(l.lines)-h))
}

// visible returns the lines shown in a pane of height h.
func (l *logPane) visible(h int) []logLine {
	end := len(l.lines) - l.back
	start := max(0, end-h)
	return l.lines[start:end]
}

// logView renders h rows of width w, newest at the bottom. Warnings and
// errors are wrapped (up to four rows) so their fix is readable; other lines,
// statements mostly, are cut to one row.
func (m *Model) logView(w, h int) []string {
	br := m.brush
	if br == nil {
		br = m.styles.Brushes()
	}
	end := len(m.log.lines) - m.log.back
	rev := make([]string, 0, h+4)
	for i := end - 1; i >= 0 && len(rev) < h; i-- {
		ln := m.log.lines[i]
		var rows []string
		var style theme.Brush
		switch ln.level {
		case levelError:
			style = br.Fail
		case levelWarn:
			style = br.Warn
		case levelOK:
			style = br.OK
		case levelSQL:
			style = br.Faint
		}
		if ln.level == levelError || ln.level == levelWarn {
			rows = strings.Split(ansi.Hardwrap(ansi.Wordwrap(ln.text, w, " "), w, true), "\n")
			if len(rows) > 4 {
				rows = append(rows[:3:3], fit.Truncate(strings.Join(rows[3:], " "), w))
			}
		} else {
			rows = []string{fit.Truncate(ln.text, w)}
		}
		for j := len(rows) - 1; j >= 0; j-- {
			rev = append(rev, style.Paint(rows[j]))
		}
	}
	if len(rev) > h {
		rev = rev[:h]
	}
	out := make([]string, len(rev))
	for i, r := range rev {
		out[len(rev)-1-i] = r
	}
	return out
}
