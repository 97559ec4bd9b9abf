package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ledgerEntry is one acknowledged write: client, its sequence number n, and
// the identity id the database returned.
type ledgerEntry struct {
	client int32
	n      int64
	id     int64
}

// readLedger reads DIR/ledger ("client n id" lines). A last line without its
// newline was torn by a crash mid-append and is ignored: it was never
// reported as written.
func readLedger(path string) ([]ledgerEntry, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the ledger: %w", err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out []ledgerEntry
	for ln, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		f := bytes.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("ledger line %d: want `client n id`, got %q", ln+1, line)
		}
		c, err1 := strconv.ParseInt(string(f[0]), 10, 32)
		n, err2 := strconv.ParseInt(string(f[1]), 10, 64)
		id, err3 := strconv.ParseInt(string(f[2]), 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("ledger line %d: not three integers: %q", ln+1, line)
		}
		out = append(out, ledgerEntry{client: int32(c), n: n, id: id})
	}
	return out, nil
}

// ledgerWriter appends entries, flushing and fsyncing at least every 100 ms.
type ledgerWriter struct {
	f *os.File
	w *bufio.Writer
}

func openLedger(path string) (*ledgerWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the ledger: %w", err)
	}
	return &ledgerWriter{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// run drains acks until the channel closes, then syncs and closes the file.
// After a write error it keeps draining (so clients never block) and
// returns the first error.
func (l *ledgerWriter) run(acks <-chan ledgerEntry) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	sync := func() {
		if firstErr == nil {
			keep(l.w.Flush())
			keep(l.f.Sync())
		}
	}
	var buf []byte
	dirty := false
	for {
		select {
		case e, ok := <-acks:
			if !ok {
				if dirty {
					sync()
				}
				keep(l.f.Close())
				return firstErr
			}
			if firstErr == nil {
				buf = strconv.AppendInt(buf[:0], int64(e.client), 10)
				buf = append(buf, ' ')
				buf = strconv.AppendInt(buf, e.n, 10)
				buf = append(buf, ' ')
				buf = strconv.AppendInt(buf, e.id, 10)
				buf = append(buf, '\n')
				_, err := l.w.Write(buf)
				keep(err)
				dirty = true
			}
		case <-t.C:
			if dirty {
				sync()
				dirty = false
			}
		}
	}
}
