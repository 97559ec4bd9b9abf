// Package fit makes text fit a number of terminal cells: every pane draws
// lines of exactly its width and exactly its height, so nothing renders
// wider or taller than the terminal.
package fit

import (
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/state"
)

// Width is how many cells s takes, escape sequences aside.
func Width(s string) int { return ansi.StringWidth(s) }

// Truncate cuts s to w cells, with an ellipsis when it cuts.
func Truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if Width(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

// Pad cuts or fills s to exactly w cells.
func Pad(s string, w int) string {
	s = Truncate(s, w)
	if n := w - Width(s); n > 0 {
		return s + strings.Repeat(" ", n)
	}
	return s
}

// At returns lines[i], or "" past the end.
func At(lines []string, i int) string {
	if i >= 0 && i < len(lines) {
		return lines[i]
	}
	return ""
}

// Fill makes lines exactly h long: cut, or filled with empty lines.
func Fill(lines []string, h int) []string {
	h = max(0, h)
	if len(lines) > h {
		return lines[:h]
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return lines
}

// Wrap breaks text into lines of w cells at most: at spaces where it can,
// inside a word where it must.
func Wrap(text string, w int) []string {
	return strings.Split(ansi.Hardwrap(ansi.Wordwrap(text, w, " "), w, true), "\n")
}

// Lines splits a view into its lines; an empty view has none.
func Lines(view string) []string {
	if view == "" {
		return nil
	}
	return strings.Split(view, "\n")
}

// OneLine makes an error one readable, redacted line.
func OneLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(state.Redact(err.Error())), " ")
}
