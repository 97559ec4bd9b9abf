package fit

import (
	"errors"
	"reflect"
	"testing"
)

// TestFitting: a line is cut with an ellipsis or filled to exactly its
// width, a pane's lines to exactly its height, and an error to one line.
func TestFitting(t *testing.T) {
	if got := Truncate("abcdef", 4); got != "abc…" {
		t.Errorf("Truncate: %q", got)
	}
	if got := Truncate("abc", 0); got != "" {
		t.Errorf("Truncate to 0: %q", got)
	}
	if got := Pad("ab", 4); got != "ab  " {
		t.Errorf("Pad: %q", got)
	}
	if got := Pad("→ wide", 3); Width(got) != 3 {
		t.Errorf("Pad cut %q to %d cells", got, Width(got))
	}
	if got := Fill([]string{"a"}, 3); !reflect.DeepEqual(got, []string{"a", "", ""}) {
		t.Errorf("Fill: %q", got)
	}
	if got := Fill([]string{"a", "b"}, -1); len(got) != 0 {
		t.Errorf("Fill to a negative height: %q", got)
	}
	if got := Wrap("one two three", 7); !reflect.DeepEqual(got, []string{"one two", "three"}) {
		t.Errorf("Wrap: %q", got)
	}
	if got := OneLine(errors.New("a\n  b\tc")); got != "a b c" {
		t.Errorf("OneLine: %q", got)
	}
	if Lines("") != nil || len(Lines("a\nb")) != 2 {
		t.Errorf("Lines")
	}
}
