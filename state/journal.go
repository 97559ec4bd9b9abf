package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// Entry is one line of the journal: a statement, an API call, an operator action or a log line.
type Entry struct {
	Time     time.Time     `json:"time"`
	Step     string        `json:"step,omitempty"`
	Target   string        `json:"target,omitempty"` // blue, green, pgbouncer, aws, operator, lab
	Kind     string        `json:"kind"`             // "sql", "api", "operator", "log", "step"
	Text     string        `json:"text"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Outcome  string        `json:"outcome,omitempty"` // "ok", "error", "refused", "info", ...
	Error    string        `json:"error,omitempty"`
}

// OutcomeUnreadable marks an entry ReadJournal made up for a line it could not decode.
const OutcomeUnreadable = "unreadable"

// Journal is an append-only file of JSON lines. Its methods are safe for concurrent use.
type Journal struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenJournal opens (creating, mode 0600) the journal at path for appending.
func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w: check that its folder exists and is writable", path, err)
	}
	return &Journal{path: path, f: f}, nil
}

// Append writes e as one line. Text and Error go through Redact first; a zero Time becomes now.
// The line goes out in a single write on an O_APPEND file, so concurrent appenders (even in
// other processes) never interleave inside a line, and a reader never sees half a line from a
// process that was killed between two writes.
func (j *Journal) Append(e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	e.Text = Redact(e.Text)
	e.Error = Redact(e.Error)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<" and "&" in SQL readable
	if err := enc.Encode(e); err != nil {
		return fmt.Errorf("append to journal %s: %w", j.path, err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return fmt.Errorf("append to journal %s: %w", j.path, os.ErrClosed)
	}
	if _, err := j.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("append to journal %s: %w: check free space", j.path, err)
	}
	return nil
}

// Sync flushes the journal to stable storage; the runner calls it at step boundaries rather
// than after every line, which would cost an fsync per statement.
func (j *Journal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal %s: %w", j.path, err)
	}
	return nil
}

// Path returns the journal's path.
func (j *Journal) Path() string { return j.path }

// Close closes the journal; later Appends fail.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	if err != nil {
		return fmt.Errorf("close journal %s: %w", j.path, err)
	}
	return nil
}

// ReadJournal reads the entries that start at byte offset and returns them with the offset to
// pass next time, for watch mode tailing. Only whole lines are read: a last line without its
// newline (being written right now) is left for the next call.
//
// A journal that does not exist yet has no entries. A journal shorter than offset was replaced,
// so it is read from the start. A whole line that is not valid JSON (a disk that lost data) is
// returned as an entry with Outcome OutcomeUnreadable, so tailing never gets stuck on it.
func ReadJournal(path string, offset int64) (entries []Entry, next int64, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, offset, nil
	}
	if err != nil {
		return nil, offset, fmt.Errorf("read journal %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, offset, fmt.Errorf("read journal %s: %w", path, err)
	}
	if offset < 0 || info.Size() < offset {
		offset = 0
	}
	data, err := io.ReadAll(io.NewSectionReader(f, offset, info.Size()-offset))
	if err != nil {
		return nil, offset, fmt.Errorf("read journal %s: %w", path, err)
	}
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return nil, offset, nil
	}
	pos := offset
	for _, line := range bytes.Split(data[:end], []byte{'\n'}) {
		lineAt := pos
		pos += int64(len(line)) + 1
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			const maxShown = 200
			shown := line
			if len(shown) > maxShown {
				shown = shown[:maxShown]
			}
			e = Entry{Kind: "log", Outcome: OutcomeUnreadable,
				Text: Redact(fmt.Sprintf("unreadable journal line at byte %d: %q", lineAt, shown))}
		}
		entries = append(entries, e)
	}
	return entries, offset + int64(end) + 1, nil
}
