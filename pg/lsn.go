package pg

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// LSN is a position in PostgreSQL's WAL (pg_lsn): 64 bits, written X/Y with
// the high and low 32 bits in hexadecimal. Arithmetic is done here, in Go,
// because PG13 has no pg_lsn + integer.
type LSN uint64

// ParseLSN reads an LSN as PostgreSQL writes and accepts it: 1 to 8
// hexadecimal digits, '/', 1 to 8 hexadecimal digits, nothing else.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || !lsnHalf(hi) || !lsnHalf(lo) {
		return 0, fmt.Errorf("%q is not an LSN (expected X/Y, 1 to 8 hex digits each, like 0/16B3748)", s)
	}
	h, _ := strconv.ParseUint(hi, 16, 32)
	l, _ := strconv.ParseUint(lo, 16, 32)
	return LSN(h<<32 | l), nil
}

func lsnHalf(s string) bool {
	if len(s) == 0 || len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// FormatLSN writes an LSN the way PostgreSQL prints it (%X/%X).
func FormatLSN(l LSN) string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// String is FormatLSN.
func (l LSN) String() string { return FormatLSN(l) }

// Add returns l + n bytes, or an error past the end of the WAL address space.
func (l LSN) Add(n uint64) (LSN, error) {
	if uint64(l) > ^uint64(0)-n {
		return 0, fmt.Errorf("LSN %s + %d overflows", l, n)
	}
	return l + LSN(n), nil
}

// ErrNoRedoDone says a server log holds no `redo done at` line (after the
// start marker): recovery did not finish in that log.
var ErrNoRedoDone = errors.New("no `redo done at` line")

// redoDone matches the line PostgreSQL 13+ logs at the end of recovery,
// "redo done at 0/3000100 system usage: ...", with lc_messages in English.
var redoDone = regexp.MustCompile(`redo done at ([0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8})\b`)

// FirstRedoDone returns the LSN of the first `redo done at X/Y` line of a
// server log: the start of the last WAL record recovery replayed. When
// startMarker is not empty, everything up to and including the first line
// containing it is ignored: pg_ctl -l appends, so a log can hold stale lines
// of an earlier start before the marker written just before this one.
func FirstRedoDone(r io.Reader, startMarker string) (LSN, error) {
	br := bufio.NewReader(r)
	seenMarker := startMarker == ""
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			switch {
			case !seenMarker:
				seenMarker = strings.Contains(line, startMarker)
			default:
				if m := redoDone.FindStringSubmatch(line); m != nil {
					return ParseLSN(m[1])
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("reading the server log: %w", err)
		}
	}
	if !seenMarker {
		return 0, fmt.Errorf("start marker %q not found in the server log: %w", startMarker, ErrNoRedoDone)
	}
	return 0, ErrNoRedoDone
}
