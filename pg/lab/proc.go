package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LabOSUser is the unprivileged OS user the lab runs its servers as when the
// program runs as root (initdb, postgres and pgbouncer refuse root).
const LabOSUser = "postgres"

// osUser is who runs the lab's servers: the current user, or LabOSUser when
// the current user is root.
type osUser struct {
	name     string
	uid, gid uint32
	home     string
	switchTo bool // run children with these credentials
}

// currentOSUser resolves the user the lab's programs run as.
func currentOSUser() (osUser, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return osUser{}, fmt.Errorf("finding the current user: %w", err)
		}
		return osUser{name: u.Username, uid: uint32(os.Geteuid()), gid: uint32(os.Getegid()), home: u.HomeDir}, nil
	}
	return lookupOSUser(LabOSUser)
}

func lookupOSUser(name string) (osUser, error) {
	if os.Geteuid() != 0 {
		return currentOSUser()
	}
	u, err := user.Lookup(name)
	if err != nil {
		return osUser{}, fmt.Errorf("running as root, the lab needs an unprivileged OS user %q to run PostgreSQL and PgBouncer: create it with `useradd --system --create-home %s` (or run as a normal user)", name, name)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return osUser{}, fmt.Errorf("OS user %q has a non-numeric uid/gid", name)
	}
	return osUser{name: name, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir, switchTo: true}, nil
}

// command builds a command that runs as u, with a small clean environment so
// a root shell's variables (PGDATA, PGPORT...) do not leak into the servers.
func (u osUser) command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	home := u.home
	if home == "" {
		home = "/"
	}
	cmd.Env = []string{"HOME=" + home, "USER=" + u.name, "PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8", "TZ=UTC"}
	cmd.Dir = "/"
	if u.switchTo {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid}}
	}
	return cmd
}

// chown gives path to u when the lab switches users, so the servers can write
// their data, sockets and logs.
func (u osUser) chown(path string) error {
	if !u.switchTo {
		return nil
	}
	if err := os.Chown(path, int(u.uid), int(u.gid)); err != nil {
		return fmt.Errorf("giving %s to OS user %s: %w", path, u.name, err)
	}
	return nil
}

// mkdirFor creates dir (mode perm) owned by u.
func (u osUser) mkdirFor(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", dir, err)
	}
	return u.chown(dir)
}

// checkTraversable refuses a lab dir whose parents the OS user cannot enter:
// t.TempDir() and /root are 0700, and the servers would fail with a cryptic
// "permission denied" on their own data folder.
func (u osUser) checkTraversable(dir string) error {
	if !u.switchTo {
		return nil
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("checking %s: %w", d, err)
		}
		mode := st.Mode().Perm()
		sys, _ := st.Sys().(*syscall.Stat_t)
		ok := mode&0o001 != 0 || (sys != nil && sys.Uid == u.uid && mode&0o100 != 0) || (sys != nil && sys.Gid == u.gid && mode&0o010 != 0)
		if !ok {
			return fmt.Errorf("the lab runs its servers as OS user %s, who cannot enter %s: run `chmod o+x %s` or choose a DIR under /tmp", u.name, d, d)
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// runLogged runs cmd with its output going to logPath (a file, not a pipe:
// pg_ctl and pgbouncer -d leave daemons behind that would hold a pipe open),
// and returns the tail of that output on failure.
func runLogged(cmd *exec.Cmd, logPath string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", logPath, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	runErr := cmd.Run()
	f.Close()
	if runErr != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("%s: %v: %s", filepath.Base(cmd.Path), runErr, lastLine(string(out)))
	}
	return nil
}

// pidAlive reports whether a process with this pid exists.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A daemon that exited stays a zombie until its parent (init here)
	// reaps it, which some container inits do late: a zombie runs nothing.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// readPid reads the first line of a pid file (postmaster.pid, pgbouncer.pid).
func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// ServerPID returns the postmaster's pid for a data directory, 0 if none runs.
func ServerPID(datadir string) int {
	pid := readPid(filepath.Join(datadir, "postmaster.pid"))
	if !pidAlive(pid) {
		return 0
	}
	return pid
}

// stopPid sends sig and waits for the process to go, escalating to SIGKILL
// after timeout so `lab down` never leaves a process behind.
func stopPid(ctx context.Context, pid int, sig syscall.Signal, timeout time.Duration) error {
	if !pidAlive(pid) {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signalling process %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for pidAlive(pid) {
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
func startServer(ctx context.Context, u osUser, bindir, datadir, logPath string) error {
	if ServerPID(datadir) != 0 {
		return nil
	}
	if _, err := os.Stat(logPath); err == nil {
		_ = os.Rename(logPath, logPath+".prev")
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("preparing %s: %w", logPath, err)
	}
	f.Close()
	if err := u.chown(logPath); err != nil {
		return err
	}
	// pg_ctl is not killed on cancellation: killed mid-start it could leave
	// a postmaster that has not written its pid file yet, which nothing
	// would then stop. It is bounded by -t, and the caller stops the server.
	cmd := u.command(context.WithoutCancel(ctx), filepath.Join(bindir, "pg_ctl"), "start", "-w", "-t", "60", "-D", datadir, "-l", logPath)
	if err := runLogged(cmd, logPath+".pg_ctl"); err != nil {
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("starting PostgreSQL in %s: %v (log: %s)", datadir, err, lastLine(string(log)))
	}
	return ctx.Err()
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
	return u.command(ctx, filepath.Join(bindir, prog), args...), nil
}
