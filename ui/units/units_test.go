package units

import (
	"testing"
	"time"
)

// TestUnits: each quantity in its short form.
func TestUnits(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Duration(45 * time.Second), "45s"},
		{Duration(185 * time.Second), "3m05s"},
		{Duration(130 * time.Minute), "2h10m"},
		{Seconds(0.25), "0.25s"},
		{Seconds(12.34), "12.3s"},
		{Seconds(185), "3m05s"},
		{Age(0), "-"},
		{Age(120 * time.Millisecond), "120ms"},
		{Age(12 * time.Second), "12s"},
		{Count(4100000), "4,100,000"},
		{Count(-1234), "-1,234"},
		{Elapsed(3 * time.Millisecond), "3ms"},
		{Elapsed(65 * time.Second), "1m05s"},
		{Or("", "-"), "-"},
		{Bytes(2 << 20), "2.0 MB"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
