package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"
)

// ErrReadOnly is returned by Update on a store opened read-only (watch mode).
var ErrReadOnly = errors.New("the state file is open read-only (--watch): only the instance holding its lock can change it")

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("the state file is closed")

// OpenParams says how to open a state file.
type OpenParams struct {
	// ReadOnly opens without the lock and never writes: for --watch, status and plan.
	ReadOnly bool
}

// Store is an opened state file. Its methods are safe for concurrent use.
type Store struct {
	path     string
	readOnly bool

	mu     sync.Mutex
	st     *State   // the last state read or saved; never handed out, only copies of it
	lock   *os.File // nil when read-only or closed
	closed bool
}

// Open opens the state file at path.
//
// A missing file gives a new, empty State that is not written until the first Update. A file
// that is not valid JSON or has another schema_version is refused with an error that names it
// and says what to do.
//
// Writable: Open takes the operator lock (path + ".lock") or returns a *LockedError naming
// its holder; removes temp files left by an interrupted save; and marks every step found
// Running as Interrupted (a crash ended it), saving that at once.
//
// ReadOnly: no lock is taken and nothing is ever written; Running steps stay as found, since
// the instance running them may well be alive.
func Open(path string, p OpenParams) (*Store, error) {
	s := &Store{path: path, readOnly: p.ReadOnly}
	if !p.ReadOnly {
		lock, err := acquireLock(path)
		if err != nil {
			return nil, err
		}
		s.lock = lock
		removeStrayTemps(path)
	}
	st, err := readState(path)
	if err != nil {
		s.release()
		return nil, err
	}
	s.st = st
	if !p.ReadOnly && st.markInterrupted() {
		if err := s.save(st); err != nil {
			s.release()
			return nil, err
		}
	}
	return s, nil
}

// readState reads and checks the state file; a missing file is a new run.
func readState(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(time.Now().UTC()), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file %s: %w: check its permissions, or pass another --state", path, err)
	}
	// The version is read on its own first: a file of another version may not even decode
	// into today's types, and "wrong version" is the more useful message then.
	var head struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("read state file %s: not valid JSON (%v): restore it from a backup or move it aside to start a new run", path, err)
	}
	if head.SchemaVersion == nil || *head.SchemaVersion != SchemaVersion {
		found := "none"
		if head.SchemaVersion != nil {
			found = fmt.Sprint(*head.SchemaVersion)
		}
		return nil, fmt.Errorf("read state file %s: schema_version is %s, this pgbluegreen reads version %d: "+
			"use the pgbluegreen version that wrote it, or move the file aside to start a new run", path, found, SchemaVersion)
	}
	st := &State{}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("read state file %s: %v: restore it from a backup or move it aside to start a new run", path, err)
	}
	st.normalize()
	return st, nil
}

// save writes st to disk; the caller holds s.mu (or owns s alone, in Open).
func (s *Store) save(st *State) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// SQL and conditions such as "lag < 1MB" stay readable in the file.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(st); err != nil {
		return fmt.Errorf("save state file %s: %w", s.path, err)
	}
	if err := WriteFileAtomic(s.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("save state file: %w: check free space and permissions of its folder", err)
	}
	return nil
}

// Snapshot returns a copy of the current state, safe to read from any goroutine.
func (s *Store) Snapshot() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Clone()
}

// Update changes the state and saves it atomically. fn works on a copy: if fn returns an error
// or the save fails, nothing changes, in memory or on disk. Before saving, free-text fields
// (values, errors, results) go through Redact and UpdatedAt is set.
func (s *Store) Update(fn func(*State) error) error {
	if s.readOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	next := s.st.Clone()
	if err := fn(next); err != nil {
		return err
	}
	next.SchemaVersion = SchemaVersion
	next.normalize()
	next.redactSecrets()
	next.UpdatedAt = time.Now().UTC()
	if err := s.save(next); err != nil {
		return err
	}
	s.st = next
	return nil
}

// Reload re-reads the file from disk, for watch mode, and returns a copy of what it read; later
// Snapshots return it too. A file that does not exist yet reads as a new, empty run.
func (s *Store) Reload() (*State, error) {
	// Held across the read so an Update of a writable store cannot save in between and then
	// be replaced by the older content read here.
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := readState(s.path)
	if err != nil {
		return nil, err
	}
	s.st = st
	return st.Clone(), nil
}

// Path returns the state file's path.
func (s *Store) Path() string { return s.path }

// ReadOnly reports whether the store was opened read-only.
func (s *Store) ReadOnly() bool { return s.readOnly }

// Close releases the lock. Snapshot still works after Close; Update does not.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.release()
}

// release gives up the lock; the caller holds s.mu or owns s alone.
func (s *Store) release() error {
	s.closed = true
	if s.lock == nil {
		return nil
	}
	err := releaseLock(s.lock)
	s.lock = nil
	if err != nil {
		return fmt.Errorf("release lock of state file %s: %w", s.path, err)
	}
	return nil
}
