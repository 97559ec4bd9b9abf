package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
)

// OSUser is the operating-system user PostgreSQL's programs run as.
// initdb, postgres and pg_ctl refuse to run as root, and the files that
// pg_basebackup and pg_upgrade make must belong to the server's user: when
// pgbluegreen runs as root, their commands switch to this user. Its fields
// (Name, UID, GID, Home, Switch) and methods (Command, Chown, MkdirFor) are
// those of pg/internal/oscmd.User, which the local lab uses too.
type OSUser = oscmd.User

// LookupOSUser resolves the user PostgreSQL's programs run as. Not root:
// the current user (name must be empty or that user: only root can switch).
// Root: name, which must exist.
func LookupOSUser(name string) (OSUser, error) {
	if os.Geteuid() != 0 {
		u, err := oscmd.Current()
		if err != nil {
			return OSUser{}, err
		}
		if name != "" && name != u.Name {
			return OSUser{}, fmt.Errorf("PostgreSQL's programs must run as OS user %q, but pgbluegreen runs as %q and only root can switch users: run pgbluegreen as %s (or as root)", name, u.Name, name)
		}
		return u, nil
	}
	if name == "" {
		return OSUser{}, fmt.Errorf("running as root, pgbluegreen needs the unprivileged OS user that owns PostgreSQL's files: set clone.os_user (e.g. postgres)")
	}
	u, err := oscmd.Lookup(name)
	if errors.Is(err, oscmd.ErrNoSuchUser) {
		return OSUser{}, fmt.Errorf("OS user %q does not exist: create it with `useradd --system --create-home %s`, or set clone.os_user to the user that owns PostgreSQL's files", name, name)
	}
	return u, err
}

// RunToFile runs cmd with its output in the file outPath (not a pipe:
// pg_ctl leaves a daemon behind that would hold a pipe open) and returns
// the last line of that output on failure.
func RunToFile(cmd *exec.Cmd, outPath string) error {
	return oscmd.RunToFile(cmd, outPath)
}

// PostmasterPID returns the pid of the server running on datadir, 0 if none.
func PostmasterPID(datadir string) int {
	return oscmd.PostmasterPID(datadir)
}

// PgCtlStart starts the server of datadir with bindir's pg_ctl as u, its
// log appended to logPath, and waits until it accepts connections. opts are
// extra server options (-o). Nothing happens when a server already runs there.
func PgCtlStart(ctx context.Context, u OSUser, bindir, datadir, logPath string, opts string) error {
	return oscmd.PgCtlStart(ctx, u, oscmd.StartParams{BinDir: bindir, DataDir: datadir, LogPath: logPath, Options: opts, WaitSeconds: 3600})
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
