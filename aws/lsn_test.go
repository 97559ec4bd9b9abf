package aws_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

func TestParseLSN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0/3000148", 0x3000148, true},
		{"29B/A04B33A8", 0x29B<<32 | 0xA04B33A8, true},
		{"0/0", 0, true},
		{"ffffffff/FFFFFFFF", ^uint64(0), true},
		{"0/03000148", 0x3000148, true}, // zero-padded low half (PG 18+ style)
		{"", 0, false},
		{"0", 0, false},
		{"0/", 0, false},
		{"/1", 0, false},
		{"1/2/3", 0, false},
		{"100000000/0", 0, false},
		{"-1/0", 0, false},
		{"+1/0", 0, false},
		{"0x1/0", 0, false},
		{"G/0", 0, false},
		{" 0/1", 0, false},
	} {
		got, err := aws.ParseLSN(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseLSN(%q) = %X, %v; want %X ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestSeedIsRedoDonePlusOneByte(t *testing.T) {
	for in, want := range map[string]string{
		"0/3000148":    "0/3000149",
		"29B/A04B33A8": "29B/A04B33A9",
		"1/FFFFFFFF":   "2/0", // carries into the high half
	} {
		v, err := aws.ParseLSN(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.FormatLSN(v + 1); got != want {
			t.Errorf("%s + 1 = %s, want %s", in, got, want)
		}
	}
}

func TestParseRedoDone(t *testing.T) {
	for _, tc := range []struct {
		name, log, lsn string
		found, err     bool
	}{
		{"rds prefix PG14+", "2024-01-05 10:00:01 UTC::@:[123]:LOG:  redo done at 0/3000148 system usage: CPU: user: 0.00 s\n", "0/3000148", true, false},
		{"PG13 no usage", "2024-01-05 10:00:01 UTC::@:[123]:LOG:  redo done at 29B/A04B33A8\n", "29B/A04B33A8", true, false},
		{"no final newline", "x:LOG:  redo done at 1/2", "1/2", true, false},
		{"CRLF", "x:LOG:  redo done at 1/2\r\n", "1/2", true, false},
		{"first of two", "a:LOG:  redo done at 0/1 system usage: x\nb:LOG:  redo done at 0/2 system usage: x\n", "0/1", true, false},
		{"quoted in a statement", "a:LOG:  statement: SELECT 'redo done at 9/9'\nb:LOG:  redo done at 0/2 system usage: x\n", "0/2", true, false},
		{"a LOG: inside the statement does not count", "a:LOG:  statement: SELECT 'LOG:  redo done at 9/9'\n", "", false, false},
		{"other severity", "a:FATAL:  redo done at 0/1\n", "", false, false},
		{"redo starts only", "a:LOG:  redo starts at 0/3000028\n", "", false, false},
		{"empty", "", "", false, false},
		{"malformed first is an error", "a:LOG:  redo done at zz/1\nb:LOG:  redo done at 0/2\n", "", false, true},
		{"period quoted by 001", "a:LOG:  redo done at 0/3000148.\n", "0/3000148", true, false},
		{"long line before", strings.Repeat("x", 100000) + "\na:LOG:  redo done at 0/7 system usage\n", "0/7", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lsn, found, err := aws.ParseRedoDone(strings.NewReader(tc.log))
			if lsn != tc.lsn || found != tc.found || (err != nil) != tc.err {
				t.Errorf("ParseRedoDone = %q, %v, %v; want %q, %v, err=%v", lsn, found, err, tc.lsn, tc.found, tc.err)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestParseRedoDoneReadError(t *testing.T) {
	_, _, err := aws.ParseRedoDone(io.MultiReader(strings.NewReader("a:LOG:  hello\n"), failingReader{}))
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("err = %v", err)
	}
}

// FuzzParseRedoDone: never panics; a found LSN always parses and round-trips;
// the answer does not depend on how the input is split into reads.
func FuzzParseRedoDone(f *testing.F) {
	f.Add("2024-01-05 10:00:01 UTC::@:[123]:LOG:  redo done at 0/3000148 system usage: CPU: user: 0.00 s\n")
	f.Add("a:LOG:  redo done at 29B/A04B33A8\nb:LOG:  redo done at 0/1\n")
	f.Add("a:LOG:  statement: SELECT 'redo done at 9/9'\n")
	f.Fuzz(func(t *testing.T, log string) {
		lsn, found, err := aws.ParseRedoDone(strings.NewReader(log))
		if found {
			if err != nil {
				t.Fatalf("found with error %v", err)
			}
			v, perr := aws.ParseLSN(lsn)
			if perr != nil {
				t.Fatalf("found LSN %q does not parse: %v", lsn, perr)
			}
			if back, _ := aws.ParseLSN(aws.FormatLSN(v)); back != v {
				t.Fatalf("round trip of %q", lsn)
			}
		}
		lsn2, found2, err2 := aws.ParseRedoDone(iotestOneByte(log))
		if lsn2 != lsn || found2 != found || (err2 == nil) != (err == nil) {
			t.Fatalf("one-byte reads: %q %v %v, whole: %q %v %v", lsn2, found2, err2, lsn, found, err)
		}
	})
}

// FuzzParseLSN: what parses formats back to the same value, and FormatLSN's
// output always parses.
func FuzzParseLSN(f *testing.F) {
	f.Add("0/3000148", uint64(0))
	f.Add("29B/A04B33A8", uint64(0x29BA04B33A8))
	f.Add("FFFFFFFF/FFFFFFFF", ^uint64(0))
	f.Fuzz(func(t *testing.T, s string, n uint64) {
		if v, err := aws.ParseLSN(s); err == nil {
			back, err := aws.ParseLSN(aws.FormatLSN(v))
			if err != nil || back != v {
				t.Fatalf("%q -> %X -> %q -> %X, %v", s, v, aws.FormatLSN(v), back, err)
			}
		}
		back, err := aws.ParseLSN(aws.FormatLSN(n))
		if err != nil || back != n {
			t.Fatalf("%X -> %q -> %X, %v", n, aws.FormatLSN(n), back, err)
		}
	})
}

// iotestOneByte reads s one byte at a time.
func iotestOneByte(s string) io.Reader { return &oneByte{s: s} }

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

// BenchmarkParseRedoDone reads a 16 MB log whose redo line is last: the
// worst case of reading green's log, reported in MB/s.
func BenchmarkParseRedoDone(b *testing.B) {
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
		lsn, found, err := aws.ParseRedoDone(strings.NewReader(log))
		if err != nil || !found || lsn != "0/3000148" {
			b.Fatal(lsn, found, err)
		}
	}
}
