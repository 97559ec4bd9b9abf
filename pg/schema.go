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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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

// DumpSchema runs pg_dump --schema-only --no-publications
// --no-subscriptions for the schemas and extensions and returns the script.
func DumpSchema(ctx context.Context, p DumpParams) (string, error) {
	cfg, err := pgconn.ParseConfig(p.Conninfo)
	if err != nil {
		return "", fmt.Errorf("pg_dump: blue's connection string: %w", err)
	}
	// host, port, dbname and user only: the password travels in the environment.
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", QuoteConninfoValue(cfg.Host), cfg.Port,
		QuoteConninfoValue(cfg.Database), QuoteConninfoValue(cfg.User))
	args := []string{"--schema-only", "--no-publications", "--no-subscriptions", "-d", dsn}
	for _, s := range p.Schemas {
		args = append(args, "--schema="+pgx.Identifier{s}.Sanitize())
	}
	for _, e := range p.Extensions {
		args = append(args, "--extension="+pgx.Identifier{e}.Sanitize())
	}
	cmd := exec.CommandContext(ctx, p.PgDump, args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+cfg.Password, "PGCONNECT_TIMEOUT=10")
	// TLS settings of the connection string travel as PG* variables too.
	for key, env := range map[string]string{"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"} {
		if m := regexp.MustCompile(`(?:^|[\s?&])` + key + `=([^\s&]+)`).FindStringSubmatch(p.Conninfo); m != nil {
			cmd.Env = append(cmd.Env, env+"="+strings.Trim(m[1], `'`))
		}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %v: %s", p.PgDump, err, strings.TrimSpace(errb.String()))
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

// MissingRoles lists which of roles do not exist on the server.
func MissingRoles(ctx context.Context, pool *pgxpool.Pool, roles []string) ([]string, error) {
	rows, err := pool.Query(ctx, "SELECT r FROM unnest($1::text[]) r WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) ORDER BY 1", roles)
	if err != nil {
		return nil, fmt.Errorf("look up roles: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up roles: %w", err)
	}
	return out, nil
}

// ApplyScript runs a SQL script (a schema dump) in one transaction on a
// connection of its own, which is closed afterwards: the script's session
// settings (search_path = ”) must not leak into the pool. psql
// meta-commands (lines starting with a backslash) are dropped.
func ApplyScript(ctx context.Context, pool *pgxpool.Pool, script string) error {
	var b strings.Builder
	for _, line := range strings.SplitAfter(script, "\n") {
		if strings.HasPrefix(line, `\`) {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "CREATE SCHEMA "); ok && !strings.HasPrefix(rest, "IF NOT EXISTS") {
			line = "CREATE SCHEMA IF NOT EXISTS " + rest
		}
		b.WriteString(line)
	}
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	conn := c.Hijack()
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	// Exec with no arguments uses the simple protocol: the whole script in one round trip.
	if _, err := tx.Exec(ctx, b.String()); err != nil {
		return err
	}
	return tx.Commit(ctx)
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

// UpdateExtension runs ALTER EXTENSION ... UPDATE TO version.
func UpdateExtension(ctx context.Context, pool *pgxpool.Pool, u ExtensionUpdate) error {
	var stmt string
	if err := pool.QueryRow(ctx, "SELECT format('ALTER EXTENSION %I UPDATE TO %L', $1::text, $2::text)", u.Name, u.To).Scan(&stmt); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}
