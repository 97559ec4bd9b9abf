package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
)

// LabOSUser is the unprivileged OS user the lab runs its servers as when the
// program runs as root (initdb, postgres and pgbouncer refuse root).
const LabOSUser = "postgres"

// currentOSUser resolves the user the lab's programs run as: the current
// user, or LabOSUser when the current user is root.
func currentOSUser() (oscmd.User, error) {
	if os.Geteuid() != 0 {
		return oscmd.Current()
	}
	return lookupOSUser(LabOSUser)
}

// lookupOSUser resolves the OS user a lab was made for. Not root: the
// current user, whatever name says (only root can switch users).
func lookupOSUser(name string) (oscmd.User, error) {
	if os.Geteuid() != 0 {
		return currentOSUser()
	}
	u, err := oscmd.Lookup(name)
	if errors.Is(err, oscmd.ErrNoSuchUser) {
		return oscmd.User{}, fmt.Errorf("running as root, the lab needs an unprivileged OS user %q to run PostgreSQL and PgBouncer: create it with `useradd --system --create-home %s` (or run as a normal user)", name, name)
	}
	return u, err
}

// checkTraversable refuses a lab dir whose parents the OS user cannot enter:
// t.TempDir() and /root are 0700, and the servers would fail with a cryptic
// "permission denied" on their own data folder.
func checkTraversable(u oscmd.User, dir string) error {
	if !u.Switch {
		return nil
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("checking %s: %w", d, err)
		}
		mode := st.Mode().Perm()
		sys, _ := st.Sys().(*syscall.Stat_t)
		ok := mode&0o001 != 0 || (sys != nil && sys.Uid == u.UID && mode&0o100 != 0) || (sys != nil && sys.Gid == u.GID && mode&0o010 != 0)
		if !ok {
			return fmt.Errorf("the lab runs its servers as OS user %s, who cannot enter %s: run `chmod o+x %s` or choose a DIR under /tmp", u.Name, d, d)
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// ServerPID returns the postmaster's pid for a data directory, 0 if none runs.
func ServerPID(datadir string) int {
	return oscmd.PostmasterPID(datadir)
}

// stopPid sends sig and waits for the process to go, escalating to SIGKILL
// after timeout so `lab down` never leaves a process behind.
func stopPid(ctx context.Context, pid int, sig syscall.Signal, timeout time.Duration) error {
	if !oscmd.PidAlive(pid) {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signalling process %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for oscmd.PidAlive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(5 * time.Second)
			timeout = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if timeout == 0 && time.Now().After(deadline) {
			return fmt.Errorf("process %d did not stop", pid)
		}
	}
	return nil
}

// StopServer stops the PostgreSQL server of datadir, if one runs, with a fast
// shutdown (SIGINT to the postmaster), whatever binaries it was started with.
func StopServer(ctx context.Context, datadir string) error {
	pid := ServerPID(datadir)
	if pid == 0 {
		return nil
	}
	if err := stopPid(ctx, pid, syscall.SIGINT, 30*time.Second); err != nil {
		return fmt.Errorf("stopping the server of %s: %w", datadir, err)
	}
	return nil
}

// startServer starts the server of datadir with pg_ctl as u and waits until
// it accepts connections. Each start gets a fresh log (the previous one is
// kept as .prev): pg_ctl -l appends, and a stale line from an earlier start
// (a `redo done at`) must not be read as new.
func startServer(ctx context.Context, u oscmd.User, bindir, datadir, logPath string) error {
	return oscmd.PgCtlStart(ctx, u, oscmd.StartParams{BinDir: bindir, DataDir: datadir, LogPath: logPath, WaitSeconds: 60, FreshLog: true})
}

// StartServer starts the PostgreSQL server of datadir with bindir's pg_ctl,
// as the lab's OS user, logging to logPath; nothing happens if it runs.
// The clone strategy uses it for the server made by pg_basebackup.
func (i *Info) StartServer(ctx context.Context, bindir, datadir, logPath string) error {
	u, err := lookupOSUser(i.OSUser)
	if err != nil {
		return err
	}
	return startServer(ctx, u, bindir, datadir, logPath)
}

// Command returns a command for bindir/prog that runs as the lab's OS user
// (pg_basebackup and pg_upgrade must, so the files they make are its own).
func (i *Info) Command(ctx context.Context, bindir, prog string, args ...string) (*exec.Cmd, error) {
	u, err := lookupOSUser(i.OSUser)
	if err != nil {
		return nil, err
	}
	return u.Command(ctx, filepath.Join(bindir, prog), args...), nil
}
