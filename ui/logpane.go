package ui

import (
	"strings"

	"github.com/pgbluegreen/pgbluegreen/state"
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

// view renders h lines of width w.
func (m *Model) logView(w, h int) []string {
	st := m.styles
	out := make([]string, 0, h)
	for _, ln := range m.log.visible(h) {
		t := truncate(ln.text, w)
		switch ln.level {
		case levelError:
			t = st.Fail.Render(t)
		case levelWarn:
			t = st.Warn.Render(t)
		case levelOK:
			t = st.OK.Render(t)
		case levelSQL:
			t = st.Faint.Render(t)
		}
		out = append(out, t)
	}
	return out
}
