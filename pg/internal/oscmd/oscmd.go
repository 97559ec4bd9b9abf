// Package oscmd runs PostgreSQL's programs as the OS user that owns their
// files. It is shared by pg (the clone strategy) and pg/lab (the local lab):
// pg/lab cannot import pg, because pg's own tests import pg/lab, so the code
// both need lives here. Each caller keeps its own advice for a missing user.
package oscmd

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
)

// User is the operating-system user PostgreSQL's programs run as.
// initdb, postgres, pg_ctl and pgbouncer refuse to run as root, and the files
// that pg_basebackup and pg_upgrade make must belong to the server's user:
// when pgbluegreen runs as root, their commands switch to this user.
type User struct {
	Name     string
	UID, GID uint32
	Home     string
	// Switch is true when commands run with this user's credentials
	// (pgbluegreen runs as root); false when they run as pgbluegreen's own user.
	Switch bool
}

// ErrNoSuchUser is wrapped by Lookup's error when the user does not exist;
// callers replace it with advice that fits their own setting.
var ErrNoSuchUser = errors.New("no such OS user")

// Current returns the user pgbluegreen runs as, without switching.
func Current() (User, error) {
	u, err := user.Current()
	if err != nil {
		return User{}, fmt.Errorf("finding the current OS user: %w", err)
	}
	return User{Name: u.Username, UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Home: u.HomeDir}, nil
}

// Lookup resolves the OS user name for commands to switch to (only root can).
func Lookup(name string) (User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return User{}, fmt.Errorf("OS user %q: %w: %v", name, ErrNoSuchUser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return User{}, fmt.Errorf("OS user %q has a non-numeric uid/gid", name)
	}
	return User{Name: name, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir, Switch: true}, nil
}

// Command builds a command that runs as u with a small, clean environment:
// a root shell's PGDATA, PGPORT or PGPASSWORD must not leak into servers
// and tools. Callers add what a program needs (PGPASSWORD) to cmd.Env.
// The command dies with this process (DiesWithUs): a pg_basebackup or
// pg_upgrade never outlives the step that started it, so a rerun starts
// from a phase nobody is still writing. A server that pg_ctl starts is
// not ours but pg_ctl's child, and lives on.
func (u User) Command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	home := u.Home
	if home == "" {
		home = "/"
	}
	cmd.Env = []string{"HOME=" + home, "USER=" + u.Name, "PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8", "TZ=UTC"}
	cmd.Dir = "/"
	cmd.SysProcAttr = DiesWithUs()
	if u.Switch {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID}
	}
	return cmd
}

// DiesWithUs is the process attribute that ends a child with this process,
// even when it is killed with SIGKILL: the kernel sends the child SIGTERM
// when the thread that started it exits (Go ends a thread only with a
// goroutine locked to it, which this program never leaves).
func DiesWithUs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// Chown gives path to u when commands switch to u, so the servers can write
// their data, sockets and logs.
func (u User) Chown(path string) error {
	if !u.Switch {
		return nil
	}
	if err := os.Chown(path, int(u.UID), int(u.GID)); err != nil {
		return fmt.Errorf("giving %s to OS user %s: %w", path, u.Name, err)
	}
	return nil
}

// MkdirFor creates dir with mode perm, owned by u.
func (u User) MkdirFor(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", dir, err)
	}
	return u.Chown(dir)
}

// RunToFile runs cmd with its output in the file outPath (not a pipe:
// pg_ctl and pgbouncer -d leave daemons behind that would hold a pipe open)
// and returns the last line of that output on failure.
func RunToFile(cmd *exec.Cmd, outPath string) error {
	f, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", outPath, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	runErr := cmd.Run()
	f.Close()
	if runErr != nil {
		out, _ := os.ReadFile(outPath)
		return fmt.Errorf("%s: %v: %s (full output in %s)", filepath.Base(cmd.Path), runErr, LastLine(string(out)), outPath)
	}
	return nil
}

// LastLine returns the last non-empty line of a program's output: the one
// that usually says what went wrong.
func LastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// PidAlive reports whether a process with this pid exists and runs.
func PidAlive(pid int) bool {
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

// ReadPid reads the first line of a pid file (postmaster.pid, pgbouncer.pid);
// 0 when there is none.
func ReadPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// PostmasterPID returns the pid of the server running on datadir, 0 if none.
func PostmasterPID(datadir string) int {
	pid := ReadPid(filepath.Join(datadir, "postmaster.pid"))
	if !PidAlive(pid) {
		return 0
	}
	return pid
}

// StartParams says which server PgCtlStart starts and how.
type StartParams struct {
	BinDir, DataDir, LogPath string
	// Options are extra server options (pg_ctl -o), empty for none.
	Options string
	// WaitSeconds bounds how long pg_ctl waits for connections (pg_ctl -t).
	WaitSeconds int
	// FreshLog keeps the previous log as LogPath.prev and starts an empty
	// one: pg_ctl -l appends, and a stale line from an earlier start (a
	// `redo done at`) must not be read as new. False appends.
	FreshLog bool
}

// PgCtlStart starts the server of p.DataDir with p.BinDir's pg_ctl as u,
// logging to p.LogPath, and waits until it accepts connections. Nothing
// happens when a server already runs there.
func PgCtlStart(ctx context.Context, u User, p StartParams) error {
	if PostmasterPID(p.DataDir) != 0 {
		return nil
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if p.FreshLog {
		if _, err := os.Stat(p.LogPath); err == nil {
			_ = os.Rename(p.LogPath, p.LogPath+".prev")
		}
		flags = os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	}
	f, err := os.OpenFile(p.LogPath, flags, 0o644)
	if err != nil {
		return fmt.Errorf("preparing %s: %w", p.LogPath, err)
	}
	f.Close()
	if err := u.Chown(p.LogPath); err != nil {
		return err
	}
	args := []string{"start", "-w", "-t", strconv.Itoa(p.WaitSeconds), "-D", p.DataDir, "-l", p.LogPath}
	if p.Options != "" {
		args = append(args, "-o", p.Options)
	}
	// pg_ctl is not killed on cancellation: killed mid-start it could leave
	// a postmaster without its pid file that nothing would stop. -t bounds
	// it, and the caller stops the server.
	cmd := u.Command(context.WithoutCancel(ctx), filepath.Join(p.BinDir, "pg_ctl"), args...)
	if err := RunToFile(cmd, p.LogPath+".pg_ctl"); err != nil {
		log, _ := os.ReadFile(p.LogPath)
		return fmt.Errorf("starting PostgreSQL in %s: %v (server log %s: %s)", p.DataDir, err, p.LogPath, LastLine(string(log)))
	}
	return ctx.Err()
}
