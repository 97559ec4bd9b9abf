package lab

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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

// hbaConf requires SCRAM for the replication role (it has a password, and the
// tests prove it is needed) and trusts everyone else on loopback only.
const hbaConf = `# written by pgbluegreen lab
local   all          all                          trust
host    all          ` + ReplicationRole + `    127.0.0.1/32   scram-sha-256
host    replication  ` + ReplicationRole + `    127.0.0.1/32   scram-sha-256
host    replication  all          127.0.0.1/32   trust
host    all          all          127.0.0.1/32   trust
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

func adminConninfo(port int, db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=postgres sslmode=disable", port, db)
}

// ensureRolesAndDB creates the app role, the replication role and database
// app when missing. The replication password is set as a SCRAM verifier
// computed here, inside a transaction that turns statement logging off: the
// server log never sees the password, and the verifier alone does not
// reveal it.
func ensureRolesAndDB(ctx context.Context, port int, password string) error {
	conn, err := connect(ctx, adminConninfo(port, "postgres"))
	if err != nil {
		return fmt.Errorf("connecting to the server on port %d: %w", port, err)
	}
	defer conn.Close(context.Background())
	var has bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", AppRole).Scan(&has); err != nil {
		return fmt.Errorf("looking for role %s: %w", AppRole, err)
	}
	if !has {
		if _, err := conn.Exec(ctx, "CREATE ROLE "+AppRole+" LOGIN"); err != nil {
			return fmt.Errorf("creating role %s: %w", AppRole, err)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", ReplicationRole).Scan(&has); err != nil {
		return fmt.Errorf("looking for role %s: %w", ReplicationRole, err)
	}
	if !has {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.Background())
		for _, s := range []string{"SET LOCAL log_statement = 'none'", "SET LOCAL log_min_duration_statement = -1",
			"CREATE ROLE " + ReplicationRole + " LOGIN REPLICATION PASSWORD '" + scramVerifier(password) + "'"} {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("creating role %s: %w", ReplicationRole, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("creating role %s: %w", ReplicationRole, err)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", AppDB).Scan(&has); err != nil {
		return fmt.Errorf("looking for database %s: %w", AppDB, err)
	}
	if !has {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+AppDB+" OWNER "+AppRole); err != nil {
			return fmt.Errorf("creating database %s: %w", AppDB, err)
		}
	}
	return nil
}

// scramVerifier computes PostgreSQL's stored form of a SCRAM-SHA-256
// password (RFC 5802/7677), so only the verifier is ever sent to the server.
func scramVerifier(password string) string {
	const iterations = 4096
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	salted, _ := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(serverKey))
}

// serverVersion asks a running server for its version, "" when unreachable.
func serverVersion(ctx context.Context, port int) string {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, adminConninfo(port, "postgres"))
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
