package aws

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseLSN parses a PostgreSQL LSN as PostgreSQL prints it, "X/Y" with X and
// Y hexadecimal of at most 8 digits each (pg_lsn's own input rules). The
// result is the 64-bit WAL position, so the caller can add 1 byte in Go: PG13
// has no pg_lsn + integer.
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("LSN %q: want X/Y (two hexadecimal numbers)", clip(s))
	}
	h, err := parseHex32(hi)
	if err != nil {
		return 0, fmt.Errorf("LSN %q: %w", clip(s), err)
	}
	l, err := parseHex32(lo)
	if err != nil {
		return 0, fmt.Errorf("LSN %q: %w", clip(s), err)
	}
	return h<<32 | l, nil
}

// FormatLSN prints an LSN as PostgreSQL does ("%X/%X"); pg_lsn reads it back.
func FormatLSN(v uint64) string {
	return fmt.Sprintf("%X/%X", v>>32, v&0xFFFFFFFF)
}

// parseHex32 accepts 1 to 8 hex digits and nothing else (no sign, no 0x).
func parseHex32(s string) (uint64, error) {
	if s == "" || len(s) > 8 {
		return 0, errors.New("each half must be 1 to 8 hexadecimal digits")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return 0, errors.New("each half must be 1 to 8 hexadecimal digits")
		}
	}
	return strconv.ParseUint(s, 16, 32)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// redoDone is the message PostgreSQL logs at the end of recovery (xlog.c /
// xlogrecovery.c): "redo done at %X/%X" followed, from PG14 on, by
// " system usage: ...". Its LSN is the START of the last record replayed.
var redoDone = []byte("redo done at ")

// maxLineHead is how much of each log line is examined: the message is near
// the start of its line, and a statement of megabytes must not be buffered.
const maxLineHead = 4096

// ParseRedoDone reads a PostgreSQL server log and returns the LSN of the
// FIRST "redo done at X/Y" message: the end of recovery of a restored
// snapshot. Later ones (after a modify or a restart) are not the seed (001
// §7). Only the message itself counts, in a LOG line: the same words inside
// a logged statement ("LOG:  statement: ... redo done at ...") do not. A
// first message whose LSN does not parse is an error, never skipped for a
// later one.
func ParseRedoDone(r io.Reader) (lsn string, found bool, err error) {
	br := bufio.NewReaderSize(r, maxLineHead)
	for {
		line, rerr := readLineHead(br)
		if len(line) > 0 {
			if v, ok := redoDoneLSN(line); ok {
				if _, perr := ParseLSN(v); perr != nil {
					return "", false, fmt.Errorf("read \"redo done at\" line: %w", perr)
				}
				return v, true, nil
			}
		}
		if rerr == io.EOF {
			return "", false, nil
		}
		if rerr != nil {
			return "", false, fmt.Errorf("read server log: %w", rerr)
		}
	}
}

// readLineHead returns the first maxLineHead bytes of the next line and
// discards the rest of it.
func readLineHead(br *bufio.Reader) ([]byte, error) {
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

// redoDoneLSN returns the LSN token of a line whose message, right after
// its severity "LOG:", is the redo message. The severity is the line's first
// "LOG:" (log_line_prefix comes before it), so the words quoted inside a
// logged statement never match.
func redoDoneLSN(line []byte) (string, bool) {
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
