package state

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSecondProcessCannotTakeTheLock(t *testing.T) {
	path := tempStatePath(t)
	st, err := Open(path, OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	_, report := startChild(t, path)
	if got := pidOf(t, report, "locked-by"); got != os.Getpid() {
		t.Fatalf("child was refused, but told the holder is pid %d, want %d", got, os.Getpid())
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	c, report := startChild(t, path)
	if got := pidOf(t, report, "locked"); got != c.cmd.Process.Pid {
		t.Fatalf("child reports pid %d, started %d", got, c.cmd.Process.Pid)
	}
}

func TestLockHeldByAnotherProcess(t *testing.T) {
	path := tempStatePath(t)
	seed, err := Open(path, OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, seed, func(s *State) error { s.Set("slot_lsn", "0/100", "create-slots"); return nil })
	seed.Close()

	c, report := startChild(t, path)
	childPID := pidOf(t, report, "locked")

	// This process cannot take it, and is told who has it.
	_, err = Open(path, OpenParams{})
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("Open while another process holds the lock = %v, want *LockedError", err)
	}
	if le.Holder.PID != childPID || le.Path != path {
		t.Fatalf("LockedError %+v, want holder pid %d", le, childPID)
	}
	host, _ := os.Hostname()
	if le.Holder.Host != host || le.Holder.User == "" || le.Holder.Since.IsZero() {
		t.Errorf("holder not fully described: %+v", le.Holder)
	}
	for _, want := range []string{path, "pid " + strconv.Itoa(childPID), "--watch"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if h, held := ReadHolder(path); !held || h.PID != childPID {
		t.Fatalf("ReadHolder = %+v, %v; want pid %d", h, held, childPID)
	}

	// A watcher can still read.
	ro, err := Open(path, OpenParams{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open while locked: %v", err)
	}
	if v, _ := ro.Snapshot().Get("slot_lsn"); v != "0/100" {
		t.Fatalf("read-only open while locked read %q", v)
	}

	// Once the holder is gone the lock is free, and its stale content is not believed.
	c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if h, held := ReadHolder(path); held {
		t.Fatalf("ReadHolder after the holder exited = %+v, true", h)
	}
	st, err := Open(path, OpenParams{})
	if err != nil {
		t.Fatalf("open after the holder exited: %v", err)
	}
	defer st.Close()
	if h, held := ReadHolder(path); !held || h.PID != os.Getpid() {
		t.Fatalf("ReadHolder of our own lock = %+v, %v", h, held)
	}
}

func TestLockFreedWhenHolderIsKilled(t *testing.T) {
	path := tempStatePath(t)
	c, report := startChild(t, path)
	pidOf(t, report, "locked")
	if err := c.cmd.Process.Kill(); err != nil { // kill -9: no Close, the lock file keeps its content
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	if data, err := os.ReadFile(lockPath(path)); err != nil || len(data) == 0 {
		t.Fatalf("expected the killed holder's stale content in the lock file: %q, %v", data, err)
	}
	if h, held := ReadHolder(path); held {
		t.Fatalf("ReadHolder believes a killed holder: %+v", h)
	}
	st, err := Open(path, OpenParams{})
	if err != nil {
		t.Fatalf("open after the holder was killed: %v", err)
	}
	st.Close()
}

func TestReadHolderWithoutLockFile(t *testing.T) {
	if h, held := ReadHolder(tempStatePath(t)); held {
		t.Fatalf("ReadHolder with no lock file = %+v, true", h)
	}
}

func TestHolderString(t *testing.T) {
	now := time.Now()
	today := time.Date(now.Year(), now.Month(), now.Day(), 12, 1, 2, 0, time.Local)
	h := Holder{PID: 123, User: "root", Host: "jumpbox", Since: today}
	if got, want := h.String(), "pid 123 root@jumpbox since 12:01:02"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	h.Since = today.AddDate(0, 0, -1)
	if got := h.String(); !strings.HasSuffix(got, "since "+h.Since.Format("2006-01-02")+" 12:01:02") {
		t.Errorf("a lock from yesterday: %q", got)
	}
	if got := (Holder{}).String(); got != "another process" {
		t.Errorf("zero Holder: %q", got)
	}
}
