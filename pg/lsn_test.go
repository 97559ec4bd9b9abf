package pg

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFormatLSN(t *testing.T) {
	for _, c := range []struct {
		in   string
		want LSN
		text string
	}{
		{"0/0", 0, "0/0"},
		{"0/16B3748", 0x16B3748, "0/16B3748"},
		{"0/16b3748", 0x16B3748, "0/16B3748"},
		{"00000001/00000000", 1 << 32, "1/0"},
		{"FFFFFFFF/FFFFFFFF", ^LSN(0), "FFFFFFFF/FFFFFFFF"},
	} {
		got, err := ParseLSN(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseLSN(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
		if s := FormatLSN(got); s != c.text {
			t.Errorf("FormatLSN(%d) = %q, want %q", got, s, c.text)
		}
	}
	for _, bad := range []string{"", "0", "/", "0/", "/0", "123456789/0", "0/123456789", "G/0", "0/16B3748 ", " 0/1", "+1/0", "0x1/0", "1/2/3", "-1/0"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) accepted", bad)
		}
	}
}

func TestLSNAdd(t *testing.T) {
	l, _ := ParseLSN("0/FFFFFFFF")
	got, err := l.Add(1)
	if err != nil || got.String() != "1/0" {
		t.Fatalf("0/FFFFFFFF + 1 = %s, %v; want 1/0 (carry into the high half)", got, err)
	}
	if _, err := (^LSN(0)).Add(1); err == nil {
		t.Fatal("FFFFFFFF/FFFFFFFF + 1 did not report the overflow")
	}
	if got, err := (^LSN(0) - 1).Add(1); err != nil || got != ^LSN(0) {
		t.Fatalf("max-1 + 1 = %s, %v", got, err)
	}
}

// FuzzParseLSN: whatever ParseLSN accepts formats to the canonical text,
// which parses back to the same value; nothing panics.
func FuzzParseLSN(f *testing.F) {
	f.Add("0/16B3748")
	f.Add("FFFFFFFF/FFFFFFFF")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLSN(s)
		if err != nil {
			return
		}
		text := FormatLSN(l)
		back, err := ParseLSN(text)
		if err != nil || back != l {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, l, text, back, err)
		}
		if !strings.EqualFold(strings.TrimLeft(s[:strings.IndexByte(s, '/')], "0"), strings.TrimLeft(text[:strings.IndexByte(text, '/')], "0")) {
			t.Fatalf("%q formatted as %q: high half changed", s, text)
		}
	})
}

const pg15Log = `2026-11-21 12:40:01.100 UTC [4242] LOG:  starting PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu
2026-11-21 12:40:01.101 UTC [4244] LOG:  database system was interrupted; last known up at 2026-11-21 12:39:59 UTC
2026-11-21 12:40:01.120 UTC [4244] LOG:  redo starts at 0/5000028
2026-11-21 12:40:01.130 UTC [4244] LOG:  consistent recovery state reached at 0/5000138
2026-11-21 12:40:01.131 UTC [4244] LOG:  redo done at 0/5012A40 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.01 s
2026-11-21 12:40:01.150 UTC [4243] LOG:  checkpoint starting: end-of-recovery immediate wait
2026-11-21 12:40:01.200 UTC [4242] LOG:  database system is ready to accept connections
`

func TestFirstRedoDone(t *testing.T) {
	const marker = "pgbluegreen: clone recovery start"
	stale := strings.ReplaceAll(pg15Log, "0/5012A40", "0/1A0")
	later := strings.ReplaceAll(pg15Log, "0/5012A40", "0/9999999")
	for _, c := range []struct {
		name, log, marker, want string
		err                     error
	}{
		{"one start", pg15Log, "", "0/5012A40", nil},
		{"first line wins without a marker", pg15Log + later, "", "0/5012A40", nil},
		{"stale line before the marker ignored", stale + marker + "\n" + pg15Log + later, marker, "0/5012A40", nil},
		{"stale line and no new one", stale + marker + "\n", marker, "", ErrNoRedoDone},
		{"marker missing", stale, marker, "", ErrNoRedoDone},
		{"no recovery", "LOG:  database system is ready to accept connections\n", "", "", ErrNoRedoDone},
		{"PG13 wording, no trailing newline", "LOG:  redo done at 1F/A0", "", "1F/A0", nil},
		{"marker line itself not read", marker + " redo done at 0/1\nredo done at 0/2\n", marker, "0/2", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := FirstRedoDone(strings.NewReader(c.log), c.marker)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("got %s, %v; want %v", got, err, c.err)
				}
				return
			}
			if err != nil || got.String() != c.want {
				t.Fatalf("got %s, %v; want %s", got, err, c.want)
			}
		})
	}
}

// FuzzFirstRedoDone: lines before the start marker never change the answer,
// and any LSN returned is one written on a `redo done at` line of the body.
func FuzzFirstRedoDone(f *testing.F) {
	f.Add("redo done at 0/1\n", pg15Log)
	const marker = "== pgbluegreen start marker =="
	f.Fuzz(func(t *testing.T, stale, body string) {
		if strings.Contains(stale, marker) || strings.Contains(body, marker) {
			return
		}
		want, wantErr := FirstRedoDone(strings.NewReader(body), "")
		got, err := FirstRedoDone(strings.NewReader(stale+"\n"+marker+"\n"+body), marker)
		if got != want || (err == nil) != (wantErr == nil) {
			t.Fatalf("stale lines changed the answer: %s, %v vs %s, %v", got, err, want, wantErr)
		}
		if wantErr == nil && !strings.Contains(body, "redo done at ") {
			t.Fatalf("%s is on no `redo done at` line of %q", want, body)
		}
	})
}
