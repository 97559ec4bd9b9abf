package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
)

// confMarker starts the lab's block appended to postgresql.conf. The block
// sits in postgresql.conf itself (not an include) so a clone made by
// pg_basebackup carries it, and a later `port = ...` line or ALTER SYSTEM wins.
const confMarker = "# --- pgbluegreen lab ---"

func serverConf(port int, runDir string) string {
	return fmt.Sprintf(`%s
port = %d
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_logical_replication_workers = 8
max_worker_processes = 16
max_connections = 100
shared_buffers = 32MB
fsync = off
synchronous_commit = off
timezone = 'UTC'
log_timezone = 'UTC'
`, confMarker, port, runDir)
}

// hbaConf asks every login over TCP for its password (SCRAM), replication
// connections included, as a production server does. The unix socket in
// DIR/run (0700, the lab's OS user's) stays trust: it is how the lab itself
// makes roles and sets their passwords, and how pg_upgrade reaches a clone.
const hbaConf = `# written by pgbluegreen lab
local   all          all                          trust
host    all          all          127.0.0.1/32   scram-sha-256
host    replication  all          127.0.0.1/32   scram-sha-256
`

// initServer runs initdb for srv unless its data directory holds a cluster
// already, then writes the lab's settings and pg_hba.conf.
// With a cache dir, the first initdb of a build is kept as a template and
// later labs copy it.
func initServer(ctx context.Context, u oscmd.User, srv Server, runDir, logDir, cacheDir string) (string, error) {
	if _, err := os.Stat(filepath.Join(srv.DataDir, "PG_VERSION")); err == nil {
		return "", nil
	}
	how := "initdb"
	if err := os.RemoveAll(srv.DataDir); err != nil {
		return "", fmt.Errorf("clearing a half-made %s: %w", srv.DataDir, err)
	}
	if err := u.MkdirFor(srv.DataDir, 0o700); err != nil {
		return "", err
	}
	tmpl := ""
	if cacheDir != "" {
		tmpl = templatePath(cacheDir, srv)
	}
	if _, err := os.Stat(filepath.Join(tmpl, "PG_VERSION")); tmpl != "" && err == nil {
		if err := copyTree(tmpl, srv.DataDir, u); err != nil {
			return "", fmt.Errorf("copying the initdb template %s: %w", tmpl, err)
		}
		how = "copied from the initdb template"
	} else {
		args := append([]string{"-D", srv.DataDir}, initdbOptions...)
		cmd := u.Command(ctx, filepath.Join(srv.BinDir, "initdb"), args...)
		if err := oscmd.RunToFile(cmd, filepath.Join(logDir, filepath.Base(srv.DataDir)+".initdb.log")); err != nil {
			return "", fmt.Errorf("initdb of %s: %w", srv.DataDir, err)
		}
		if tmpl != "" {
			saveTemplate(srv.DataDir, tmpl)
		}
	}
	conf := filepath.Join(srv.DataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", conf, err)
	}
	_, err = f.WriteString("\n" + serverConf(srv.Port, runDir))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", conf, err)
	}
	if err := os.WriteFile(filepath.Join(srv.DataDir, "pg_hba.conf"), []byte(hbaConf), 0o600); err != nil {
		return "", fmt.Errorf("writing pg_hba.conf: %w", err)
	}
	return how, u.Chown(filepath.Join(srv.DataDir, "pg_hba.conf"))
}

func connect(ctx context.Context, conninfo string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgx.Connect(cctx, conninfo)
}

// adminConninfo is the lab's own administration: the superuser over the
// server's private unix socket in runDir, where no password is asked (the
// roles' passwords are set through it).
func adminConninfo(runDir string, port int, db string) string {
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s", connValue(runDir), port, connValue(db), AdminRole)
}

// ensureDatabases creates each of dbs, owned by the app role, when missing.
func ensureDatabases(ctx context.Context, conn *pgx.Conn, dbs []string) error {
	for _, db := range dbs {
		var has bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&has); err != nil {
			return fmt.Errorf("looking for database %s: %w", db, err)
		}
		if has {
			continue
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()+" OWNER "+pgx.Identifier{AppRole}.Sanitize()); err != nil {
			return fmt.Errorf("creating database %s: %w", db, err)
		}
	}
	return nil
}

// serverVersion asks a running server for its version, "" when unreachable.
func serverVersion(ctx context.Context, conninfo string) string {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, conninfo)
	if err != nil {
		return ""
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(cctx, "SHOW server_version").Scan(&v); err != nil {
		return ""
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// serverDatabases lists a running server's databases but the templates and
// postgres, nil when unreachable.
func serverDatabases(ctx context.Context, conninfo string) []string {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, conninfo)
	if err != nil {
		return nil
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(cctx, "SELECT datname::text FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY datname <> $1, datname", AppDB)
	if err != nil {
		return nil
	}
	dbs, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	return dbs
}
