package pg

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
)

// DumpParams are the inputs of DumpSchema.
type DumpParams struct {
	// PgDump is the pg_dump program to run (green's major or newer).
	PgDump string
	// Conninfo is blue's connection string; its password, if any, goes to
	// the child's PGPASSWORD, never to its arguments.
	Conninfo   string
	Schemas    []string
	Extensions []string
}

// Command is the pg_dump DumpSchema runs: host, port, database and user
// as arguments; the password travels in PGPASSWORD only (env). An
// extension name that is a Placeholder stands for all of them.
func (p DumpParams) Command() (Command, error) {
	cfg, err := pgconn.ParseConfig(p.Conninfo)
	if err != nil {
		return Command{}, fmt.Errorf("pg_dump: blue's connection string: %w", err)
	}
	// host, port, dbname and user only: the password travels in the environment.
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", conninfoWord(cfg.Host), cfg.Port,
		conninfoWord(cfg.Database), conninfoWord(cfg.User))
	args := []string{"--schema-only", "--no-publications", "--no-subscriptions", "-d", dsn}
	for _, s := range p.Schemas {
		args = append(args, "--schema="+Ident(s))
	}
	for _, e := range p.Extensions {
		if strings.HasPrefix(e, "<") {
			args = append(args, e)
			continue
		}
		args = append(args, "--extension="+Ident(e))
	}
	return Command{On: "blue", Path: p.PgDump, Args: args, Note: "the password, if any, in PGPASSWORD only"}, nil
}

// conninfoWord quotes a connection string value only when libpq needs it:
// empty, or holding a space, a quote or a backslash.
func conninfoWord(v string) string {
	if v == "" || strings.ContainsAny(v, " '\\\t\n") {
		return QuoteConninfoValue(v)
	}
	return v
}

// env is what pg_dump needs besides its arguments: the password and the
// connection string's TLS settings, as PG* variables.
func (p DumpParams) env() []string {
	cfg, err := pgconn.ParseConfig(p.Conninfo)
	if err != nil {
		return nil
	}
	env := []string{"PGPASSWORD=" + cfg.Password, "PGCONNECT_TIMEOUT=10"}
	for key, name := range map[string]string{"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"} {
		if m := regexp.MustCompile(`(?:^|[\s?&])` + key + `=([^\s&]+)`).FindStringSubmatch(p.Conninfo); m != nil {
			env = append(env, name+"="+strings.Trim(m[1], `'`))
		}
	}
	return env
}

// DumpSchema runs p.Command, journaled as it ends, and returns the script.
func DumpSchema(ctx context.Context, p DumpParams) (string, error) {
	c, err := p.Command()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.SysProcAttr = oscmd.DiesWithUs()
	cmd.Env = append(os.Environ(), p.env()...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s: %v: %s", p.PgDump, err, strings.TrimSpace(errb.String()))
	}
	c.Journal(ctx, time.Since(start), err)
	if err != nil {
		return "", err
	}
	return out.String(), nil
}

// FindPgDump picks the pg_dump to run: in bindir when given, else the
// newest major among PATH and /usr/lib/postgresql/*/bin. pg_dump must be at
// least the server's major it reads from (blue); green's is the safe choice.
func FindPgDump(bindir string) (string, error) {
	if bindir != "" {
		p := filepath.Join(bindir, "pg_dump")
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("no pg_dump in %s (clone.green_bindir): %w", bindir, err)
		}
		return p, nil
	}
	var cands []string
	if p, err := exec.LookPath("pg_dump"); err == nil {
		cands = append(cands, p)
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	cands = append(cands, m...)
	best, bestMajor := "", 0
	for _, c := range cands {
		out, err := exec.Command(c, "--version").Output()
		if err != nil {
			continue
		}
		f := strings.Fields(string(out))
		if len(f) == 0 {
			continue
		}
		major, _ := strconv.Atoi(strings.SplitN(f[len(f)-1], ".", 2)[0])
		if major > bestMajor {
			best, bestMajor = c, major
		}
	}
	if best == "" {
		return "", fmt.Errorf("no pg_dump found: set clone.green_bindir to green's bin folder, or put green's pg_dump on PATH")
	}
	return best, nil
}

var (
	ownerRe   = regexp.MustCompile(`(?m) OWNER TO ("(?:[^"]|"")+"|[^ ;]+);$`)
	granteeRe = regexp.MustCompile(`(?m)^(?:ALTER DEFAULT PRIVILEGES .* )?(?:GRANT .+ TO|REVOKE .+ FROM) ("(?:[^"]|"")+"|[^ ;]+)(?: WITH GRANT OPTION)?;$`)
	forRoleRe = regexp.MustCompile(`(?m)^ALTER DEFAULT PRIVILEGES FOR ROLE ("(?:[^"]|"")+"|[^ ]+)`)
)

// DumpRoles lists the roles a schema dump refers to (owners, grantees),
// unquoted and sorted; PUBLIC is not a role.
func DumpRoles(script string) []string {
	seen := map[string]bool{}
	for _, re := range []*regexp.Regexp{ownerRe, granteeRe, forRoleRe} {
		for _, m := range re.FindAllStringSubmatch(script, -1) {
			name := m[1]
			if len(name) >= 2 && strings.HasPrefix(name, `"`) && strings.HasSuffix(name, `"`) {
				name = strings.ReplaceAll(name[1:len(name)-1], `""`, `"`)
			} else if strings.EqualFold(name, "public") {
				continue
			}
			seen[name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// MissingRolesQuery is the read that lists which of roles do not exist on
// the server (roles may be a Later in a plan).
func MissingRolesQuery(on string, roles any) Stmt {
	return Stmt{On: on, SQL: "SELECT r FROM unnest($1::text[]) r WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) ORDER BY 1", Args: []any{roles}}
}

// MissingRoles lists which of roles do not exist on the server.
func MissingRoles(ctx context.Context, pool *pgxpool.Pool, roles []string) ([]string, error) {
	rows, err := pool.Query(ctx, MissingRolesQuery("", nil).SQL, roles)
	if err != nil {
		return nil, fmt.Errorf("look up roles: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up roles: %w", err)
	}
	return out, nil
}

// SchemaApplyParams apply a schema dump to a server in one transaction,
// on a connection of its own that is closed afterwards: the script's
// session settings (search_path = ”) must not leak into the pool.
type SchemaApplyParams struct {
	On string
	// Script is pg_dump's output; empty in a plan made before pg_dump ran.
	Script string
	// DropIndexes are indexes dropped in the same transaction, once the
	// dump made them: built again after the initial sync, on full tables.
	DropIndexes []Rel
}

// script is what runs: the dump with psql meta-commands (lines starting
// with a backslash) left out and CREATE SCHEMA as IF NOT EXISTS (public
// exists already).
func (p SchemaApplyParams) script() string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(p.Script, "\n") {
		if strings.HasPrefix(line, `\`) {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "CREATE SCHEMA "); ok && !strings.HasPrefix(rest, "IF NOT EXISTS") {
			line = "CREATE SCHEMA IF NOT EXISTS " + rest
		}
		b.WriteString(line)
	}
	return b.String()
}

// schemaSummaryPrefix starts the line that stands for the dump in plans
// and in the journal: the dump itself is a megabyte, and unknown until
// pg_dump ran.
const schemaSummaryPrefix = "-- the schema pg_dump printed (psql meta-commands left out, CREATE SCHEMA IF NOT EXISTS): "

// Statements are what Exec runs: BEGIN, the dump (shown as its size and
// sha256, or a placeholder before pg_dump ran), the DROP INDEX of each
// deferred index, COMMIT.
func (p SchemaApplyParams) Statements() []Stmt {
	what := Placeholder("its size and sha256, known once pg_dump above has run")
	if p.Script != "" {
		d := DigestOf([]byte(p.script()))
		what = fmt.Sprintf("%d bytes, sha256 %s", d.Bytes, d.SHA256)
	}
	stmts := []Stmt{{On: p.On, SQL: schemaSummaryPrefix + what, Note: "one simple-protocol round trip; the text goes to a file beside the journal"}}
	for _, ix := range p.DropIndexes {
		stmts = append(stmts, Stmt{On: p.On, SQL: "DROP INDEX " + ix.String(), Note: "built again once its table is copied"})
	}
	return InTx(p.On, stmts)
}

// Exec runs the statements in one transaction on a connection of pool's
// that is closed afterwards. The dump is journaled as its summary line,
// and handed whole to the context's attachment hook.
func (p SchemaApplyParams) Exec(ctx context.Context, pool *pgxpool.Pool) error {
	stmts := p.Statements()
	script := p.script()
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	conn := c.Hijack()
	defer conn.Close(context.Background())
	quiet := context.WithValue(ctx, journaledKey{}, true)
	start := time.Now()
	tx, err := conn.Begin(quiet)
	stmts[0].report(ctx, start, err)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(quiet))
	// Exec with no arguments uses the simple protocol: the whole script in one round trip.
	start = time.Now()
	_, err = tx.Exec(quiet, script)
	text := stmts[1].String()
	if where := attach(ctx, DigestOf([]byte(script)), ".sql", []byte(script)); where != "" {
		text += "; saved as " + where
	}
	journalExecuted(ctx, Executed{On: p.On, Kind: "sql", Text: text, Duration: time.Since(start), Err: err})
	if err != nil {
		return err
	}
	if err := ExecAll(ctx, tx, stmts[2:len(stmts)-1]); err != nil {
		return err
	}
	start = time.Now()
	err = tx.Commit(quiet)
	stmts[len(stmts)-1].report(ctx, start, err)
	return err
}

// ListExtensions returns installed extensions (name -> version), plpgsql aside.
func ListExtensions(ctx context.Context, pool *pgxpool.Pool) (map[string]string, error) {
	rows, err := pool.Query(ctx, "SELECT extname::text, extversion FROM pg_extension WHERE extname <> 'plpgsql'")
	if err != nil {
		return nil, fmt.Errorf("list extensions: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			return nil, fmt.Errorf("list extensions: %w", err)
		}
		out[n] = v
	}
	return out, rows.Err()
}

// ExtensionUpdate is an extension whose installed version is not the
// server's default (newest packaged) one.
type ExtensionUpdate struct {
	Name, From, To string
}

// OutdatedExtensions lists installed extensions below their default_version.
func OutdatedExtensions(ctx context.Context, pool *pgxpool.Pool) ([]ExtensionUpdate, error) {
	rows, err := pool.Query(ctx, `
SELECT e.extname::text, e.extversion, a.default_version
FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
WHERE a.default_version IS NOT NULL AND e.extversion <> a.default_version ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("compare extension versions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ExtensionUpdate, error) {
		var u ExtensionUpdate
		err := r.Scan(&u.Name, &u.From, &u.To)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("compare extension versions: %w", err)
	}
	return out, nil
}

// ExtensionUpdatesParams bring extensions to a version: ALTER EXTENSION ...
// UPDATE TO.
type ExtensionUpdatesParams struct {
	On      string
	Updates []ExtensionUpdate
}

// Statements are what Exec runs: one ALTER EXTENSION per update. The
// version is a literal (DDL takes no parameters), quoted as quote_literal
// does.
func (p ExtensionUpdatesParams) Statements() []Stmt {
	out := make([]Stmt, len(p.Updates))
	for i, u := range p.Updates {
		out[i] = Stmt{On: p.On, SQL: "ALTER EXTENSION " + Ident(u.Name) + " UPDATE TO " + QuoteLiteral(u.To), Note: "from " + u.From}
	}
	return out
}

// Exec runs the statements in order.
func (p ExtensionUpdatesParams) Exec(ctx context.Context, db Execer) error {
	return ExecAll(ctx, db, p.Statements())
}
