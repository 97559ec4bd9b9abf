package lsn

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParseFormat(t *testing.T) {
	for _, c := range []struct {
		in   string
		want LSN
		text string
	}{
		{"0/0", 0, "0/0"},
		{"0/16B3748", 0x16B3748, "0/16B3748"},
		{"0/16b3748", 0x16B3748, "0/16B3748"},
		{"0/03000148", 0x3000148, "0/3000148"}, // zero-padded low half (PG 18+ style)
		{"29B/A04B33A8", 0x29B<<32 | 0xA04B33A8, "29B/A04B33A8"},
		{"00000001/00000000", 1 << 32, "1/0"},
		{"FFFFFFFF/FFFFFFFF", ^LSN(0), "FFFFFFFF/FFFFFFFF"},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
		if s := Format(got); s != c.text {
			t.Errorf("Format(%d) = %q, want %q", got, s, c.text)
		}
	}
	for _, bad := range []string{"", "0", "/", "0/", "/0", "123456789/0", "100000000/0", "0/123456789", "G/0",
		"0/16B3748 ", " 0/1", "+1/0", "0x1/0", "1/2/3", "-1/0"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestAdd(t *testing.T) {
	for in, want := range map[string]string{
		"0/3000148":    "0/3000149",
		"29B/A04B33A8": "29B/A04B33A9",
		"1/FFFFFFFF":   "2/0", // carries into the high half
	} {
		l, _ := Parse(in)
		if got, err := l.Add(1); err != nil || got.String() != want {
			t.Errorf("%s + 1 = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := (^LSN(0)).Add(1); err == nil {
		t.Fatal("FFFFFFFF/FFFFFFFF + 1 did not report the overflow")
	}
	if got, err := (^LSN(0) - 1).Add(1); err != nil || got != ^LSN(0) {
		t.Fatalf("max-1 + 1 = %s, %v", got, err)
	}
}

const pg15Log = `2026-11-21 12:40:01.100 UTC [4242] LOG:  starting PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu
2026-11-21 12:40:01.101 UTC [4244] LOG:  database system was interrupted; last known up at 2026-11-21 12:39:59 UTC
2026-11-21 12:40:01.120 UTC [4244] LOG:  redo starts at 0/5000028
2026-11-21 12:40:01.130 UTC [4244] LOG:  consistent recovery state reached at 0/5000138
2026-11-21 12:40:01.131 UTC [4244] LOG:  redo done at 0/5012A40 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.01 s
2026-11-21 12:40:01.150 UTC [4243] LOG:  checkpoint starting: end-of-recovery immediate wait
2026-11-21 12:40:01.200 UTC [4242] LOG:  database system is ready to accept connections
`

// TestFirstRedoDone covers both logs the seed is read from: the lab
// clone's (pg_ctl -l, a start marker) and RDS's (log_line_prefix
// "%t:%r:%u@%d:[%p]:", no marker), with the stricter rules of the two
// parsers that were merged here: the LOG: severity, the first message
// only, a malformed first LSN an error.
func TestFirstRedoDone(t *testing.T) {
	const marker = "pgbluegreen: clone recovery start"
	stale := strings.ReplaceAll(pg15Log, "0/5012A40", "0/1A0")
	later := strings.ReplaceAll(pg15Log, "0/5012A40", "0/9999999")
	for _, c := range []struct {
		name, log, marker, want string
		err                     error
		anyErr                  bool
	}{
		{"one start", pg15Log, "", "0/5012A40", nil, false},
		{"first line wins without a marker", pg15Log + later, "", "0/5012A40", nil, false},
		{"stale line before the marker ignored", stale + marker + "\n" + pg15Log + later, marker, "0/5012A40", nil, false},
		{"stale line and no new one", stale + marker + "\n", marker, "", ErrNoRedoDone, false},
		{"marker missing", stale, marker, "", ErrNoRedoDone, false},
		{"no recovery", "LOG:  database system is ready to accept connections\n", "", "", ErrNoRedoDone, false},
		{"PG13 wording, no trailing newline", "LOG:  redo done at 1F/A0", "", "1F/A0", nil, false},
		{"marker line itself not read", marker + " LOG:  redo done at 0/1\nx LOG:  redo done at 0/2\n", marker, "0/2", nil, false},
		{"rds prefix PG14+", "2024-01-05 10:00:01 UTC::@:[123]:LOG:  redo done at 0/3000148 system usage: CPU: user: 0.00 s\n", "", "0/3000148", nil, false},
		{"PG13 no usage", "2024-01-05 10:00:01 UTC::@:[123]:LOG:  redo done at 29B/A04B33A8\n", "", "29B/A04B33A8", nil, false},
		{"CRLF", "x:LOG:  redo done at 1/2\r\n", "", "1/2", nil, false},
		{"quoted in a statement", "a:LOG:  statement: SELECT 'redo done at 9/9'\nb:LOG:  redo done at 0/2 system usage: x\n", "", "0/2", nil, false},
		{"a LOG: inside the statement does not count", "a:LOG:  statement: SELECT 'LOG:  redo done at 9/9'\n", "", "", ErrNoRedoDone, false},
		{"no severity", "redo done at 0/1\n", "", "", ErrNoRedoDone, false},
		{"other severity", "a:FATAL:  redo done at 0/1\n", "", "", ErrNoRedoDone, false},
		{"redo starts only", "a:LOG:  redo starts at 0/3000028\n", "", "", ErrNoRedoDone, false},
		{"empty", "", "", "", ErrNoRedoDone, false},
		{"malformed first is an error", "a:LOG:  redo done at zz/1\nb:LOG:  redo done at 0/2\n", "", "", nil, true},
		{"too long a half is an error", "a:LOG:  redo done at 1/123456789\n", "", "", nil, true},
		{"period quoted by 001", "a:LOG:  redo done at 0/3000148.\n", "", "0/3000148", nil, false},
		{"long line before", strings.Repeat("x", 100000) + "\na:LOG:  redo done at 0/7 system usage\n", "", "0/7", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := FirstRedoDone(strings.NewReader(c.log), c.marker)
			switch {
			case c.anyErr:
				if err == nil || errors.Is(err, ErrNoRedoDone) {
					t.Fatalf("got %s, %v; want a parse error", got, err)
				}
			case c.err != nil:
				if !errors.Is(err, c.err) {
					t.Fatalf("got %s, %v; want %v", got, err, c.err)
				}
			case err != nil || got.String() != c.want:
				t.Fatalf("got %s, %v; want %s", got, err, c.want)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestFirstRedoDoneReadError(t *testing.T) {
	_, err := FirstRedoDone(io.MultiReader(strings.NewReader("a:LOG:  hello\n"), failingReader{}), "")
	if err == nil || !strings.Contains(err.Error(), "connection reset") || errors.Is(err, ErrNoRedoDone) {
		t.Errorf("err = %v", err)
	}
}

// FuzzParse: whatever Parse accepts formats to the canonical text, which
// parses back to the same value; Format's output always parses; nothing
// panics.
func FuzzParse(f *testing.F) {
	f.Add("0/16B3748", uint64(0))
	f.Add("FFFFFFFF/FFFFFFFF", ^uint64(0))
	f.Fuzz(func(t *testing.T, s string, n uint64) {
		if l, err := Parse(s); err == nil {
			text := Format(l)
			back, err := Parse(text)
			if err != nil || back != l {
				t.Fatalf("%q -> %d -> %q -> %d, %v", s, l, text, back, err)
			}
			if !strings.EqualFold(strings.TrimLeft(s[:strings.IndexByte(s, '/')], "0"), strings.TrimLeft(text[:strings.IndexByte(text, '/')], "0")) {
				t.Fatalf("%q formatted as %q: high half changed", s, text)
			}
		}
		back, err := Parse(Format(LSN(n)))
		if err != nil || back != LSN(n) {
			t.Fatalf("%X -> %q -> %X, %v", n, Format(LSN(n)), back, err)
		}
	})
}

// FuzzFirstRedoDone: lines before the start marker never change the answer,
// and any LSN returned is one written on a `redo done at` line of the body.
func FuzzFirstRedoDone(f *testing.F) {
	f.Add("x LOG:  redo done at 0/1\n", pg15Log)
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

// FuzzRedoDoneSplitReads: the answer does not depend on how the log
// arrives (a download portion can end anywhere), and a found LSN always
// round-trips.
func FuzzRedoDoneSplitReads(f *testing.F) {
	f.Add("2024-01-05 10:00:01 UTC::@:[123]:LOG:  redo done at 0/3000148 system usage: CPU: user: 0.00 s\n")
	f.Add("a:LOG:  redo done at 29B/A04B33A8\nb:LOG:  redo done at 0/1\n")
	f.Add("a:LOG:  statement: SELECT 'redo done at 9/9'\n")
	f.Fuzz(func(t *testing.T, log string) {
		l, err := FirstRedoDone(strings.NewReader(log), "")
		if err == nil {
			if back, perr := Parse(l.String()); perr != nil || back != l {
				t.Fatalf("round trip of %s: %s, %v", l, back, perr)
			}
		}
		l2, err2 := FirstRedoDone(&oneByte{s: log}, "")
		if l2 != l || (err2 == nil) != (err == nil) || errors.Is(err2, ErrNoRedoDone) != errors.Is(err, ErrNoRedoDone) {
			t.Fatalf("one-byte reads: %s %v, whole: %s %v", l2, err2, l, err)
		}
	})
}

// oneByte reads s one byte at a time.
type oneByte struct{ s string }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(o.s) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = o.s[0]
	o.s = o.s[1:]
	return 1, nil
}

// BenchmarkFirstRedoDone reads a 16 MB log whose redo line is last: the
// worst case of reading green's log, reported in MB/s.
func BenchmarkFirstRedoDone(b *testing.B) {
	line := "2024-01-05 10:00:01 UTC:10.0.0.5(40312):app@db:[4242]:LOG:  duration: 0.112 ms  statement: SELECT 1 FROM accounts WHERE id = 42\n"
	var sb strings.Builder
	for sb.Len() < 16<<20 {
		sb.WriteString(line)
	}
	sb.WriteString("2024-01-05 10:00:01 UTC::@:[123]:LOG:  redo done at 0/3000148 system usage: x\n")
	log := sb.String()
	b.SetBytes(int64(len(log)))
	b.ResetTimer()
	for range b.N {
		l, err := FirstRedoDone(strings.NewReader(log), "")
		if err != nil || l.String() != "0/3000148" {
			b.Fatal(l, err)
		}
	}
}
