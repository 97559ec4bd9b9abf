// Package lsn is PostgreSQL's WAL position (pg_lsn) and the one reader of
// the `redo done at` line a server logs at the end of recovery: the seed
// of every clone strategy, read from the lab's clone log (pg) and from an
// RDS or Aurora instance's log files (aws). It imports nothing but the
// standard library, so both can use it.
package lsn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// LSN is a position in PostgreSQL's WAL: 64 bits, written X/Y with the high
// and low 32 bits in hexadecimal. Arithmetic is done here, in Go, because
// PG13 has no pg_lsn + integer.
type LSN uint64

// Parse reads an LSN as PostgreSQL writes and accepts it: 1 to 8
// hexadecimal digits, '/', 1 to 8 hexadecimal digits, nothing else (no
// sign, no 0x, no space).
func Parse(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || !half(hi) || !half(lo) {
		return 0, fmt.Errorf("%q is not an LSN (expected X/Y, 1 to 8 hex digits each, like 0/16B3748)", clip(s))
	}
	h, _ := strconv.ParseUint(hi, 16, 32)
	l, _ := strconv.ParseUint(lo, 16, 32)
	return LSN(h<<32 | l), nil
}

func half(s string) bool {
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

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Format writes an LSN the way PostgreSQL prints it (%X/%X); pg_lsn reads it back.
func Format(l LSN) string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// String is Format.
func (l LSN) String() string { return Format(l) }

// Add returns l + n bytes, or an error past the end of the WAL address space.
func (l LSN) Add(n uint64) (LSN, error) {
	if uint64(l) > ^uint64(0)-n {
		return 0, fmt.Errorf("LSN %s + %d overflows", l, n)
	}
	return l + LSN(n), nil
}

// ErrNoRedoDone says a server log holds no `redo done at` message (after
// the start marker): recovery did not finish in that log.
var ErrNoRedoDone = errors.New("no `redo done at` line")

// redoDone is the message PostgreSQL logs at the end of recovery (xlog.c,
// xlogrecovery.c from PG15): "redo done at %X/%X", followed from PG14 on
// by " system usage: ...". Its LSN is the START of the last record replayed.
var redoDone = []byte("redo done at ")

// maxLineHead is how much of each log line is examined: the message is near
// the start of its line, and a logged statement of megabytes must not be
// buffered whole.
const maxLineHead = 4096

// FirstRedoDone returns the LSN of the FIRST `redo done at X/Y` message of a
// server log: the end of recovery of a clone or a restored snapshot. Later
// ones (after a restart, or the engine upgrade's) are not the seed, so the
// first message is the answer even when its LSN is malformed: that is an
// error, never a reason to read on. Only the message itself counts, right
// after the line's first "LOG:" (log_line_prefix comes before it): the same
// words inside a logged statement, or under another severity, do not.
//
// When startMarker is not empty, everything up to and including the first
// line containing it is ignored: pg_ctl -l appends, so a log can hold stale
// lines of an earlier start before the marker written just before this one.
func FirstRedoDone(r io.Reader, startMarker string) (LSN, error) {
	br := bufio.NewReaderSize(r, maxLineHead)
	seenMarker := startMarker == ""
	marker := []byte(startMarker)
	for {
		line, rerr := lineHead(br)
		if len(line) > 0 {
			switch {
			case !seenMarker:
				seenMarker = bytes.Contains(line, marker)
			default:
				if v, ok := redoDoneToken(line); ok {
					l, err := Parse(v)
					if err != nil {
						return 0, fmt.Errorf("the first `redo done at` line: %w", err)
					}
					return l, nil
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, fmt.Errorf("reading the server log: %w", rerr)
		}
	}
	if !seenMarker {
		return 0, fmt.Errorf("start marker %q not found in the server log: %w", startMarker, ErrNoRedoDone)
	}
	return 0, ErrNoRedoDone
}

// lineHead returns the first maxLineHead bytes of the next line (without
// its end of line) and discards the rest of it.
func lineHead(br *bufio.Reader) ([]byte, error) {
	line, isPrefix, err := br.ReadLine()
	if err != nil {
		return nil, err
	}
	head := append([]byte(nil), line...)
	for isPrefix {
		_, isPrefix, err = br.ReadLine()
		if err != nil {
			if err == io.EOF {
				return head, nil
			}
			return head, err
		}
	}
	return head, nil
}

// redoDoneToken returns the LSN token of a line whose message, right after
// its severity "LOG:", is the redo message.
func redoDoneToken(line []byte) (string, bool) {
	j := bytes.Index(line, []byte("LOG:"))
	if j < 0 {
		return "", false
	}
	msg := bytes.TrimLeft(line[j+len("LOG:"):], " \t")
	if !bytes.HasPrefix(msg, redoDone) {
		return "", false
	}
	rest := msg[len(redoDone):]
	end := bytes.IndexAny(rest, " \t\r,;")
	if end < 0 {
		end = len(rest)
	}
	// 001 quotes the line with a period after the LSN; accept it.
	return strings.TrimSuffix(string(rest[:end]), "."), true
}
