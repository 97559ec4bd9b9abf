package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// bouncerIni is the ini of one of the lab's PgBouncers, every database
// pointing at blue. Clients log in with SCRAM against auth_file's
// verifiers, and PgBouncer logs in to the server with the client's own
// proof: no password in the ini, and no user= on a database line (SCRAM
// pass-through needs the client's user).
func bouncerIni(i *Info, b *Bouncer, runDir, userlist string) string {
	var dbs strings.Builder
	for _, db := range i.Databases {
		fmt.Fprintf(&dbs, "%[1]s = host=127.0.0.1 port=%[2]d dbname=%[1]s\n", db, i.Blue.Port)
	}
	return fmt.Sprintf(`;; written by pgbluegreen lab up; the cutover rewrites the "%[1]s =" line
[databases]
%[2]s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[3]d
unix_socket_dir = %[4]s
auth_type = scram-sha-256
auth_file = %[5]s
admin_users = %[8]s
pool_mode = transaction
default_pool_size = 20
max_client_conn = 500
query_wait_timeout = 120
ignore_startup_parameters = extra_float_digits
pidfile = %[6]s
logfile = %[7]s
`, AppDB, dbs.String(), b.Port, runDir, userlist, b.PidFile, b.LogFile, ConsoleUser)
}

// userlistFile is PgBouncer's auth_file, beside its ini.
const userlistFile = "userlist.txt"

// writeBouncerConfig writes b's auth_file (SCRAM verifiers: 0600, the OS
// user's, who runs PgBouncer) and its ini unless the ini exists: the
// cutover may have repointed it to green, and a second `lab up` must not
// undo that. The folder and the ini belong to u: the second PgBouncer's
// ini is rewritten over SSH as that user (written beside, renamed over).
func writeBouncerConfig(u oscmd.User, i *Info, b *Bouncer, runDir, userlist string) error {
	dir := filepath.Dir(b.Ini)
	if err := u.MkdirFor(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	path := filepath.Join(dir, userlistFile)
	if err := state.WriteFileAtomic(path, []byte(userlist), 0o600); err != nil {
		return err
	}
	if err := u.Chown(path); err != nil {
		return err
	}
	if _, err := os.Stat(b.Ini); err == nil {
		return nil
	}
	if err := state.WriteFileAtomic(b.Ini, []byte(bouncerIni(i, b, runDir, path)), 0o644); err != nil {
		return err
	}
	return u.Chown(b.Ini)
}

func bouncerBinary() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/bin/pgbouncer"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("pgbouncer not found: install it (`apt-get install pgbouncer`, or `make deps`)")
}

// bouncerPID returns the running PgBouncer's pid, 0 if none.
func bouncerPID(b *Bouncer) int {
	pid := oscmd.ReadPid(b.PidFile)
	if !oscmd.PidAlive(pid) {
		return 0
	}
	return pid
}

// startBouncer starts PgBouncer as a daemon (-d) as u and waits until its
// port accepts connections. It returns false when it was running already.
func startBouncer(ctx context.Context, u oscmd.User, b *Bouncer) (bool, error) {
	if bouncerPID(b) != 0 {
		return false, nil
	}
	bin, err := bouncerBinary()
	if err != nil {
		return false, err
	}
	_ = os.Remove(b.PidFile) // a stale pidfile makes pgbouncer refuse to start
	if f, err := os.OpenFile(b.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		f.Close()
		if err := u.Chown(b.LogFile); err != nil {
			return false, err
		}
	}
	// Not killed on cancellation either: the daemon it forks must get its
	// pidfile written, so the caller can stop it.
	cmd := u.Command(context.WithoutCancel(ctx), bin, "-d", b.Ini)
	if err := oscmd.RunToFile(cmd, strings.TrimSuffix(b.LogFile, ".log")+".start.log"); err != nil {
		return false, fmt.Errorf("starting PgBouncer %s: %w", b.Name, err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			if bouncerPID(b) != 0 {
				return true, nil
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(b.LogFile)
			return true, fmt.Errorf("PgBouncer did not accept connections on %s (log: %s)", addr, oscmd.LastLine(string(log)))
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-time.After(30 * time.Millisecond):
		}
	}
}

// stopBouncer stops PgBouncer with SIGTERM (immediate shutdown: the lab
// does not wait for its clients).
func stopBouncer(ctx context.Context, b *Bouncer) error {
	pid := bouncerPID(b)
	if pid == 0 {
		return nil
	}
	if err := stopPid(ctx, pid, syscall.SIGTERM, 10*time.Second); err != nil {
		return fmt.Errorf("stopping PgBouncer %s: %w", b.Name, err)
	}
	_ = os.Remove(b.PidFile)
	return nil
}

// BouncerTarget reads the conninfo PgBouncer's ini gives database db now
// (its `db = host=... port=... dbname=...` line), as the superuser with the
// lab's passfile, so the caller can connect to that server directly.
func BouncerTarget(ini, db, pgpass string) (string, error) {
	line, err := bouncerTargetLine(ini, db)
	if err != nil {
		return "", err
	}
	return line + " user=" + AdminRole + " sslmode=disable passfile=" + connValue(pgpass), nil
}

// bouncerTargetLine is the right-hand side of the ini's `db =` line.
func bouncerTargetLine(ini, db string) (string, error) {
	b, err := os.ReadFile(ini)
	if err != nil {
		return "", fmt.Errorf("reading PgBouncer's ini: %w", err)
	}
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(db) + `\s*=\s*(.*)$`).FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("no `%s =` line in %s", db, ini)
	}
	return strings.TrimSpace(string(m[1])), nil
}
