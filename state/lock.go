package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"
)

// Holder says which process holds the operator lock of a state file.
type Holder struct {
	PID   int       `json:"pid"`
	User  string    `json:"user"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

// String reads like "pid 123 root@jumpbox since 12:01:02"; the date is added when the lock was
// taken on another day, since a lock held from yesterday is worth noticing.
func (h Holder) String() string {
	if h.PID == 0 && h.User == "" && h.Host == "" {
		return "another process"
	}
	s := "pid " + strconv.Itoa(h.PID)
	if h.User != "" || h.Host != "" {
		s += " " + h.User + "@" + h.Host
	}
	if !h.Since.IsZero() {
		since := h.Since.Local()
		layout := "15:04:05"
		if y, m, d := since.Date(); !sameDay(y, m, d, time.Now()) {
			layout = "2006-01-02 15:04:05"
		}
		s += " since " + since.Format(layout)
	}
	return s
}

func sameDay(y int, m time.Month, d int, t time.Time) bool {
	ty, tm, td := t.Date()
	return y == ty && m == tm && d == td
}

// LockedError is returned by Open when another process holds the state file's lock.
type LockedError struct {
	Path   string // the state file
	Holder Holder // who holds it, as far as the lock file says
}

// Error says who holds the lock and what to do instead.
func (e *LockedError) Error() string {
	return fmt.Sprintf("state file %s is in use by %s: only one instance can run steps; "+
		"use --watch to follow that run read-only, or stop that instance first", e.Path, e.Holder)
}

// lockPath is the lock file of a state file. The lock is on a separate file because the state
// file itself is replaced by rename on every save, and a lock on a replaced inode locks nothing.
func lockPath(path string) string { return path + ".lock" }

// lockAttempts and lockRetryDelay cover the moment a watcher's ReadHolder probe holds a shared
// lock, so a starting runner is not refused because someone looked at the lock.
const (
	lockAttempts   = 5
	lockRetryDelay = 20 * time.Millisecond
)

// acquireLock takes the exclusive lock of path and writes this process into the lock file.
func acquireLock(path string) (*os.File, error) {
	lp := lockPath(path)
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w: check that the folder exists and is writable, or choose another --state", lp, err)
	}
	for attempt := 1; ; attempt++ {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", lp, err)
		}
		if attempt == lockAttempts {
			h, _ := readHolderFile(f)
			f.Close()
			return nil, &LockedError{Path: path, Holder: h}
		}
		time.Sleep(lockRetryDelay)
	}
	data, _ := json.Marshal(currentHolder())
	if err := writeHolder(f, append(data, '\n')); err != nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		return nil, fmt.Errorf("write lock file %s: %w", lp, err)
	}
	return f, nil
}

func writeHolder(f *os.File, data []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	return f.Sync()
}

// releaseLock empties the lock file (so no stale holder is shown) and then unlocks it. The file
// itself stays: removing it would let two processes lock two different inodes of the same name.
func releaseLock(f *os.File) error {
	_ = f.Truncate(0)
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// currentHolder describes this process.
func currentHolder() Holder {
	h := Holder{PID: os.Getpid(), Since: time.Now().UTC().Truncate(time.Second)}
	if u, err := user.Current(); err == nil {
		h.User = u.Username
	} else {
		h.User = os.Getenv("USER")
	}
	h.Host, _ = os.Hostname()
	return h
}

func readHolderFile(f *os.File) (Holder, error) {
	var h Holder
	buf := make([]byte, 4096)
	n, err := f.ReadAt(buf, 0)
	if n == 0 {
		return h, err
	}
	return h, json.Unmarshal(buf[:n], &h)
}

// ReadHolder says who holds the lock of the state file at path, if anyone. The lock file's
// content alone could be stale (its writer was killed), so the lock itself is probed first:
// only if it cannot be taken is the content believed. The holder may be the zero Holder when
// the lock is held but its content is not written yet.
func ReadHolder(path string) (Holder, bool) {
	f, err := os.Open(lockPath(path))
	if err != nil {
		return Holder{}, false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return Holder{}, false
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return Holder{}, false
	}
	h, _ := readHolderFile(f)
	return h, true
}
