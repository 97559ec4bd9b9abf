package pg

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// Console is one connection to a PgBouncer admin console (database
// pgbouncer). The console speaks the simple query protocol only, so every
// command goes through pgconn's Exec of plain text, never a parse/bind.
type Console struct {
	// Name labels the PgBouncer in errors and reports.
	Name    string
	conn    *pgconn.PgConn
	timeout time.Duration
}

// ConnectConsole opens the admin console of one PgBouncer. timeout bounds
// the connection and, later, every command that has no deadline of its own.
func ConnectConsole(ctx context.Context, name, conninfo string, timeout time.Duration) (*Console, error) {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return nil, fmt.Errorf("PgBouncer %s: parse admin connection string: %w", name, err)
	}
	cfg.ConnectTimeout = timeout
	// The console rejects startup parameters it does not know.
	delete(cfg.RuntimeParams, "application_name")
	// An interrupted command closes the connection rather than sending a
	// cancel request: the console has no query to cancel, and PgBouncer
	// 1.18 was seen to die on a cancel request it could not place.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("PgBouncer %s: connect to the admin console: %w", name, err)
	}
	return &Console{Name: name, conn: conn, timeout: timeout}, nil
}

// Close closes the console connection.
func (c *Console) Close() {
	if c != nil && c.conn != nil {
		_ = c.conn.Close(context.Background())
	}
}

// exec runs one console command, bounded by the console's timeout unless
// ctx ends sooner, and returns its result sets.
func (c *Console) exec(ctx context.Context, op, cmd string) ([]*pgconn.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.conn.Exec(ctx, cmd).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("PgBouncer %s: %s: %w", c.Name, op, err)
	}
	return res, nil
}

// bouncerWord matches the names the console takes unquoted.
var bouncerWord = regexp.MustCompile(`^[a-z0-9_]+$`)

// consoleIdent quotes a database name for the console, which accepts
// double-quoted names with "" for a quote.
func consoleIdent(db string) string {
	if bouncerWord.MatchString(db) {
		return db
	}
	return `"` + strings.ReplaceAll(db, `"`, `""`) + `"`
}

// ConsoleStmt is one command for the admin console of the PgBouncer named
// name, as plans show it and the journal records it. The console takes no
// bind parameters: commands are built from checked words only.
func ConsoleStmt(name, cmd string) Stmt { return Stmt{On: "pgbouncer " + name, SQL: cmd} }

// PauseStmt is PAUSE db: it returns once every server connection of db is
// released (transaction pooling: once in-flight transactions end). New
// client queries wait in PgBouncer until RESUME.
func PauseStmt(name, db string) Stmt { return ConsoleStmt(name, "PAUSE "+consoleIdent(db)) }

// ResumeStmt is RESUME db.
func ResumeStmt(name, db string) Stmt { return ConsoleStmt(name, "RESUME "+consoleIdent(db)) }

// ReloadStmt is RELOAD: PgBouncer rereads its ini file.
func ReloadStmt(name string) Stmt { return ConsoleStmt(name, "RELOAD") }

// WaitCloseStmt is WAIT_CLOSE db: it returns once every server connection
// opened under the previous configuration of db is closed.
func WaitCloseStmt(name, db string) Stmt { return ConsoleStmt(name, "WAIT_CLOSE "+consoleIdent(db)) }

var consoleValue = regexp.MustCompile(`^[0-9A-Za-z._]+$`)

// SetStmt is SET key = value (a setting until the next RELOAD); a value
// only known at run time may be given as Placeholder("...").
func SetStmt(name, key, value string) Stmt {
	return ConsoleStmt(name, "SET "+key+" = "+value)
}

// Run executes one console command and journals it.
func (c *Console) Run(ctx context.Context, s Stmt) error {
	start := time.Now()
	_, err := c.exec(ctx, s.SQL, s.SQL)
	s.report(ctx, start, err)
	return err
}

// Pause runs PAUSE db.
func (c *Console) Pause(ctx context.Context, db string) error {
	return c.Run(ctx, PauseStmt(c.Name, db))
}

// WaitServersIdle polls SHOW POOLS until no server connection of db is
// linked to a client (sv_active and sv_tested 0 for every user). PAUSE is
// meant to return only then, but PgBouncer 1.18 was seen answering while a
// transaction that had just begun was still running: the cutover checks.
func (c *Console) WaitServersIdle(ctx context.Context, db string) (int, error) {
	for polls := 1; ; polls++ {
		pools, err := c.Show(ctx, "POOLS")
		if err != nil {
			return polls, err
		}
		busy := 0
		for _, p := range pools {
			if p["database"] == db {
				a, _ := strconv.Atoi(p["sv_active"])
				t, _ := strconv.Atoi(p["sv_tested"])
				busy += a + t
			}
		}
		if busy == 0 {
			return polls, nil
		}
		select {
		case <-ctx.Done():
			return polls, fmt.Errorf("PgBouncer %s: %d server connections of %s still busy after PAUSE: %w", c.Name, busy, db, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// Resume runs RESUME db.
func (c *Console) Resume(ctx context.Context, db string) error {
	return c.Run(ctx, ResumeStmt(c.Name, db))
}

// Reload runs RELOAD.
func (c *Console) Reload(ctx context.Context) error { return c.Run(ctx, ReloadStmt(c.Name)) }

// WaitClose runs WAIT_CLOSE db.
func (c *Console) WaitClose(ctx context.Context, db string) error {
	return c.Run(ctx, WaitCloseStmt(c.Name, db))
}

// Set runs SET key = value.
func (c *Console) Set(ctx context.Context, key, value string) error {
	if !bouncerWord.MatchString(key) || !consoleValue.MatchString(value) {
		return fmt.Errorf("PgBouncer %s: SET %q = %q: not a setting and plain value", c.Name, key, value)
	}
	return c.Run(ctx, SetStmt(c.Name, key, value))
}

// Closed reports whether the console connection is gone (a PAUSE cancelled
// by its timeout closes it).
func (c *Console) Closed() bool { return c.conn.IsClosed() }

// BouncerDatabase is one row of SHOW DATABASES.
type BouncerDatabase struct {
	Name     string `json:"name"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Database string `json:"database"`
	PoolMode string `json:"pool_mode"` // "" when the database uses the global pool_mode
	Paused   bool   `json:"paused"`
	Disabled bool   `json:"disabled"`
}

// rowMaps turns one result set into maps by column name: the console's
// column order changes between PgBouncer versions.
func rowMaps(r *pgconn.Result) []map[string]string {
	out := make([]map[string]string, 0, len(r.Rows))
	for _, row := range r.Rows {
		m := make(map[string]string, len(row))
		for k, f := range r.FieldDescriptions {
			if k < len(row) {
				m[f.Name] = string(row[k])
			}
		}
		out = append(out, m)
	}
	return out
}

// Databases runs SHOW DATABASES.
func (c *Console) Databases(ctx context.Context) ([]BouncerDatabase, error) {
	res, err := c.exec(ctx, "SHOW DATABASES", "SHOW DATABASES")
	if err != nil {
		return nil, err
	}
	var out []BouncerDatabase
	for _, r := range res {
		for _, m := range rowMaps(r) {
			port, _ := strconv.Atoi(m["port"])
			out = append(out, BouncerDatabase{
				Name: m["name"], Host: m["host"], Port: port, Database: m["database"],
				PoolMode: m["pool_mode"], Paused: m["paused"] == "1", Disabled: m["disabled"] == "1",
			})
		}
	}
	return out, nil
}

// Database returns SHOW DATABASES's row for db.
func (c *Console) Database(ctx context.Context, db string) (BouncerDatabase, error) {
	dbs, err := c.Databases(ctx)
	if err != nil {
		return BouncerDatabase{}, err
	}
	for _, d := range dbs {
		if d.Name == db {
			return d, nil
		}
	}
	return BouncerDatabase{}, fmt.Errorf("PgBouncer %s: SHOW DATABASES has no database %q; check cutover.pgbouncer[].database", c.Name, db)
}

// MovedEntries are the rows of SHOW DATABASES that serve one of dbs (the
// server database they name) at the host and port of one of at: the
// entries a cutover of those databases moves, wherever it stands (an
// entry moved already points at the other side, still at one of at).
func MovedEntries(rows []BouncerDatabase, dbs []string, at ...Endpoint) []BouncerDatabase {
	var out []BouncerDatabase
	for _, d := range rows {
		name := d.Database
		if name == "" {
			name = d.Name
		}
		if !slices.Contains(dbs, name) {
			continue
		}
		for _, e := range at {
			if d.Host == e.Host && d.Port == e.Port {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

// Show runs SHOW what (POOLS, SERVERS, CLIENTS...) and returns its rows by
// column name, for diagnostics.
func (c *Console) Show(ctx context.Context, what string) ([]map[string]string, error) {
	if !bouncerWord.MatchString(strings.ToLower(what)) {
		return nil, fmt.Errorf("PgBouncer %s: SHOW %q: not a SHOW subject", c.Name, what)
	}
	res, err := c.exec(ctx, "SHOW "+what, "SHOW "+what)
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, r := range res {
		out = append(out, rowMaps(r)...)
	}
	return out, nil
}

// Config runs SHOW CONFIG and returns its key/value pairs.
func (c *Console) Config(ctx context.Context) (map[string]string, error) {
	res, err := c.exec(ctx, "SHOW CONFIG", "SHOW CONFIG")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range res {
		for _, m := range rowMaps(r) {
			out[m["key"]] = m["value"]
		}
	}
	return out, nil
}

// PoolMode is the pool mode db runs in: its own, else the global one.
func (c *Console) PoolMode(ctx context.Context, db string) (string, error) {
	d, err := c.Database(ctx, db)
	if err != nil {
		return "", err
	}
	if d.PoolMode != "" {
		return d.PoolMode, nil
	}
	cfg, err := c.Config(ctx)
	if err != nil {
		return "", err
	}
	return cfg["pool_mode"], nil
}

// IsNotPaused reports whether a RESUME failed only because the database was
// not paused (an abort path resumes whatever may be paused).
func IsNotPaused(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.Contains(strings.ToLower(pe.Message), "not paused")
}
