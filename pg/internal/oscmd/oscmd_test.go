package oscmd

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLookupMissingUserIsErrNoSuchUser: pg and pg/lab each replace this
// error with their own advice (useradd, clone.os_user), so it must be
// recognisable.
func TestLookupMissingUserIsErrNoSuchUser(t *testing.T) {
	if _, err := Lookup("pgbg-no-such-user"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("err = %v, want ErrNoSuchUser", err)
	}
}

// TestPidFiles: a pid file's first line names a live process; a missing
// file, garbage or an exited process reads as no process.
func TestPidFiles(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "postmaster.pid")
	if PostmasterPID(dir) != 0 {
		t.Fatal("a data directory without postmaster.pid has a server")
	}
	os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())+"\n/data\n"), 0o600)
	if got := PostmasterPID(dir); got != os.Getpid() {
		t.Fatalf("PostmasterPID = %d, want this process %d", got, os.Getpid())
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600)
	if got := PostmasterPID(dir); got != 0 {
		t.Fatalf("PostmasterPID of an exited process = %d, want 0", got)
	}
	os.WriteFile(pidfile, []byte("garbage\n"), 0o600)
	if got := ReadPid(pidfile); got != 0 || PidAlive(got) {
		t.Fatalf("ReadPid of garbage = %d, want 0 and not alive", got)
	}
}

// TestRunToFileSaysLastLineAndWhere: a failed program's error carries its
// last line of output and the file holding the rest, on one line.
func TestRunToFileSaysLastLineAndWhere(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	err := RunToFile(exec.Command("sh", "-c", "echo first; echo 'the real reason'; echo; exit 3"), out)
	if err == nil || !strings.Contains(err.Error(), "the real reason") || !strings.Contains(err.Error(), out) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line with the last output line and %s", err, out)
	}
	if err := RunToFile(exec.Command("true"), out); err != nil {
		t.Fatal(err)
	}
}
