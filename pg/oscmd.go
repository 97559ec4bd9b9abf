package pg

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

// OSUser is the operating-system user PostgreSQL's programs run as.
// initdb, postgres and pg_ctl refuse to run as root, and the files that
// pg_basebackup and pg_upgrade make must belong to the server's user: when
// pgbluegreen runs as root, their commands switch to this user.
type OSUser struct {
	Name     string
	UID, GID uint32
	Home     string
	// Switch is true when commands run with this user's credentials
	// (pgbluegreen runs as root); false when they run as pgbluegreen's own user.
	Switch bool
}

// LookupOSUser resolves the user PostgreSQL's programs run as. Not root:
// the current user (name must be empty or that user: only root can switch).
// Root: name, which must exist.
func LookupOSUser(name string) (OSUser, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return OSUser{}, fmt.Errorf("finding the current OS user: %w", err)
		}
		if name != "" && name != u.Username {
			return OSUser{}, fmt.Errorf("PostgreSQL's programs must run as OS user %q, but pgbluegreen runs as %q and only root can switch users: run pgbluegreen as %s (or as root)", name, u.Username, name)
		}
		return OSUser{Name: u.Username, UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Home: u.HomeDir}, nil
	}
	if name == "" {
		return OSUser{}, fmt.Errorf("running as root, pgbluegreen needs the unprivileged OS user that owns PostgreSQL's files: set clone.os_user (e.g. postgres)")
	}
	u, err := user.Lookup(name)
	if err != nil {
		return OSUser{}, fmt.Errorf("OS user %q does not exist: create it with `useradd --system --create-home %s`, or set clone.os_user to the user that owns PostgreSQL's files", name, name)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return OSUser{}, fmt.Errorf("OS user %q has a non-numeric uid/gid", name)
	}
	return OSUser{Name: name, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir, Switch: true}, nil
}

// Command builds a command that runs as u with a small, clean environment:
// a root shell's PGDATA, PGPORT or PGPASSWORD must not leak into servers
// and tools. Callers add what a program needs (PGPASSWORD) to cmd.Env.
func (u OSUser) Command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	home := u.Home
	if home == "" {
		home = "/"
	}
	cmd.Env = []string{"HOME=" + home, "USER=" + u.Name, "PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8", "TZ=UTC"}
	cmd.Dir = "/"
	if u.Switch {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
	}
	return cmd
}

// Chown gives path to u when commands switch to u.
func (u OSUser) Chown(path string) error {
	if !u.Switch {
		return nil
	}
	if err := os.Chown(path, int(u.UID), int(u.GID)); err != nil {
		return fmt.Errorf("giving %s to OS user %s: %w", path, u.Name, err)
	}
	return nil
}

// MkdirFor creates dir with mode perm, owned by u.
func (u OSUser) MkdirFor(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", dir, err)
	}
	return u.Chown(dir)
}

// RunToFile runs cmd with its output in the file outPath (not a pipe:
// pg_ctl leaves a daemon behind that would hold a pipe open) and returns
// the last line of that output on failure.
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
		return fmt.Errorf("%s: %v: %s (full output in %s)", filepath.Base(cmd.Path), runErr, lastNonEmptyLine(string(out)), outPath)
	}
	return nil
}

func lastNonEmptyLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// PostmasterPID returns the pid of the server running on datadir, 0 if none.
func PostmasterPID(datadir string) int {
	b, err := os.ReadFile(filepath.Join(datadir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	if pid <= 0 {
		return 0
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0
	}
	// An exited daemon stays a zombie until init reaps it: it runs nothing.
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		if i := strings.LastIndexByte(string(st), ')'); i >= 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return 0
		}
	}
	return pid
}

// PgCtlStart starts the server of datadir with bindir's pg_ctl as u, its
// log appended to logPath, and waits until it accepts connections. opts are
// extra server options (-o). Nothing happens when a server already runs there.
func PgCtlStart(ctx context.Context, u OSUser, bindir, datadir, logPath string, opts string) error {
	if PostmasterPID(datadir) != 0 {
		return nil
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("preparing %s: %w", logPath, err)
	}
	f.Close()
	if err := u.Chown(logPath); err != nil {
		return err
	}
	args := []string{"start", "-w", "-t", "3600", "-D", datadir, "-l", logPath}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	// pg_ctl is not killed on cancellation: killed mid-start it could leave
	// a postmaster without its pid file that nothing would stop. -t bounds it.
	cmd := u.Command(context.WithoutCancel(ctx), filepath.Join(bindir, "pg_ctl"), args...)
	if err := RunToFile(cmd, logPath+".pg_ctl"); err != nil {
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("starting PostgreSQL in %s: %v (server log %s: %s)", datadir, err, logPath, lastNonEmptyLine(string(log)))
	}
	return ctx.Err()
}

// PgCtlStop stops the server of datadir (fast shutdown: a clean checkpoint,
// sessions cut) and waits until it is gone; pg_ctl's output goes to outPath.
func PgCtlStop(ctx context.Context, u OSUser, bindir, datadir, outPath string) error {
	if PostmasterPID(datadir) == 0 {
		return nil
	}
	cmd := u.Command(context.WithoutCancel(ctx), filepath.Join(bindir, "pg_ctl"), "stop", "-w", "-t", "300", "-m", "fast", "-D", datadir)
	if err := RunToFile(cmd, outPath); err != nil {
		return fmt.Errorf("stopping PostgreSQL in %s: %w", datadir, err)
	}
	return nil
}

// BinMajor returns the major version of the PostgreSQL programs in bindir
// (postgres -V: "postgres (PostgreSQL) 17.5" -> 17).
func BinMajor(ctx context.Context, bindir string) (int, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(bindir, "postgres"), "-V").Output()
	if err != nil {
		return 0, fmt.Errorf("running %s -V: %w (is the bindir right?)", filepath.Join(bindir, "postgres"), err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return 0, fmt.Errorf("%s -V printed %q", filepath.Join(bindir, "postgres"), out)
	}
	major, err := strconv.Atoi(strings.SplitN(f[2], ".", 2)[0])
	if err != nil || major < 10 {
		return 0, fmt.Errorf("%s -V printed %q: not a PostgreSQL 10+ version", filepath.Join(bindir, "postgres"), out)
	}
	return major, nil
}
