package pg

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RoleInfo is what a server says about one role.
type RoleInfo struct {
	Exists, CanLogin, Replication bool
	// RDSReplication: member of rds_replication (RDS and Aurora's stand-in
	// for the REPLICATION attribute).
	RDSReplication bool
}

// RoleQuery reads one role ($1). Columns: can log in, REPLICATION, member
// of rds_replication. No row: the role does not exist.
const RoleQuery = `SELECT rolcanlogin, rolreplication,
       EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication' AND pg_has_role(r.oid, g.oid, 'MEMBER'))
FROM pg_roles r WHERE rolname = $1`

// ReadRole reads one role's attributes (RoleQuery).
func ReadRole(ctx context.Context, pool *pgxpool.Pool, name string) (RoleInfo, error) {
	var r RoleInfo
	err := pool.QueryRow(ctx, RoleQuery, name).Scan(&r.CanLogin, &r.Replication, &r.RDSReplication)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read role %s: %w", name, err)
	}
	r.Exists = true
	return r, nil
}

// RoleExists reports whether a role exists.
func RoleExists(ctx context.Context, pool *pgxpool.Pool, name string) (bool, error) {
	r, err := ReadRole(ctx, pool, name)
	return r.Exists, err
}

// HasRDSReplication reports whether the server has the rds_replication role.
func HasRDSReplication(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	return RoleExists(ctx, pool, "rds_replication")
}

// MissingGrantsQuery lists what a role ($1) lacks to copy and stream the
// tables of schemas ($2): CONNECT on the current database, USAGE on each
// schema, SELECT on each table. Columns: the GRANT that fixes each.
const MissingGrantsQuery = `SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), $1::text)
WHERE NOT has_database_privilege($1::text, current_database(), 'CONNECT')
UNION ALL
SELECT format('GRANT USAGE ON SCHEMA %I TO %I', n.nspname, $1::text)
FROM pg_namespace n WHERE n.nspname = ANY($2::text[]) AND NOT has_schema_privilege($1::text, n.oid, 'USAGE')
UNION ALL
SELECT format('GRANT SELECT ON %I.%I TO %I', n.nspname, c.relname, $1::text)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($2::text[]) AND c.relkind IN ('r', 'p') AND NOT has_table_privilege($1::text, c.oid, 'SELECT')`

// MissingGrants runs MissingGrantsQuery.
func MissingGrants(ctx context.Context, pool *pgxpool.Pool, role string, schemas []string) ([]string, error) {
	rows, err := pool.Query(ctx, MissingGrantsQuery, role, schemas)
	if err != nil {
		return nil, fmt.Errorf("read the privileges of role %s: %w", role, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the privileges of role %s: %w", role, err)
	}
	return out, nil
}

// setRolePasswordDO creates the role, or sets its password, from a
// transaction-local setting holding a SCRAM verifier: the statement text
// holds no secret, and the verifier is quoted by the server (%L).
const setRolePasswordDO = `DO $pgbg$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_setting('pgbg.role')) THEN
    EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', current_setting('pgbg.role'), current_setting('pgbg.verifier'));
  ELSE
    EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', current_setting('pgbg.role'), current_setting('pgbg.verifier'));
  END IF;
END
$pgbg$`

// ReplicationRoleParams creates the replication role (or sets its password
// when it exists) and grants what logical replication needs: REPLICATION,
// or rds_replication where it exists, CONNECT, USAGE on the schemas and
// SELECT on their tables. Only a SCRAM-SHA-256 verifier computed here
// (ScramVerifier) leaves this process, as a bind parameter, inside a
// transaction with statement logging off. Running it again changes nothing
// but the verifier's salt.
type ReplicationRoleParams struct {
	// On is the server: "blue".
	On   string
	Role string
	// Verifier is the password's SCRAM verifier; a plan leaves it empty
	// (it renders as '********' either way).
	Verifier Secret
	// RDS grants rds_replication instead of the REPLICATION attribute
	// (RDS and Aurora, where the role rds_replication exists).
	RDS bool
	// Database is the server's database (current_database()), for GRANT
	// CONNECT; a Placeholder offline.
	Database string
	// Schemas are the replicated schemas, each of which must exist.
	Schemas []string
}

// Statements are what Exec runs, in one transaction: statement logging
// off, the role's name and verifier into transaction-local settings, the
// DO block that creates or alters the role from them, then the grants.
func (p ReplicationRoleParams) Statements() []Stmt {
	role := Ident(p.Role)
	grant := "ALTER ROLE " + role + " REPLICATION"
	if p.RDS {
		grant = "GRANT rds_replication TO " + role
	}
	body := append(noStatementLogStmts(p.On),
		Stmt{On: p.On, SQL: "SELECT set_config('pgbg.role', $1, true), set_config('pgbg.verifier', $2, true)", Args: []any{p.Role, p.Verifier},
			Note: "$2: a SCRAM-SHA-256 verifier computed here; the password never leaves pgbluegreen"},
		Stmt{On: p.On, SQL: setRolePasswordDO, Note: "= CREATE ROLE " + role + " LOGIN PASSWORD '********', or ALTER ROLE when it exists"},
		Stmt{On: p.On, SQL: grant},
		Stmt{On: p.On, SQL: "GRANT CONNECT ON DATABASE " + Ident(p.Database) + " TO " + role})
	for _, s := range p.Schemas {
		q := Ident(s)
		body = append(body,
			Stmt{On: p.On, SQL: "GRANT USAGE ON SCHEMA " + q + " TO " + role},
			Stmt{On: p.On, SQL: "GRANT SELECT ON ALL TABLES IN SCHEMA " + q + " TO " + role})
	}
	return InTx(p.On, body)
}

// Exec runs the statements in one transaction on pool, journaling each.
func (p ReplicationRoleParams) Exec(ctx context.Context, pool *pgxpool.Pool) error {
	if p.Verifier == "" {
		return fmt.Errorf("create replication role %s: no password verifier", p.Role)
	}
	if err := ExecTx(ctx, pool, p.Statements()); err != nil {
		return fmt.Errorf("create replication role %s: %w", p.Role, err)
	}
	return nil
}

// CurrentDatabase returns the name of the database pool connects to.
func CurrentDatabase(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var db string
	if err := pool.QueryRow(ctx, "SELECT current_database()::text").Scan(&db); err != nil {
		return "", fmt.Errorf("read the database's name: %w", err)
	}
	return db, nil
}

// MissingSchemas lists which of schemas do not exist.
func MissingSchemas(ctx context.Context, pool *pgxpool.Pool, schemas []string) ([]string, error) {
	rows, err := pool.Query(ctx, "SELECT s FROM unnest($1::text[]) s WHERE NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s) ORDER BY 1", schemas)
	if err != nil {
		return nil, fmt.Errorf("look for schemas %s: %w", strings.Join(schemas, ", "), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look for schemas %s: %w", strings.Join(schemas, ", "), err)
	}
	return out, nil
}

// ScramVerifier computes PostgreSQL's stored form of a SCRAM-SHA-256
// password (RFC 5802/7677) with a random salt, so the password itself is
// never sent to the server.
func ScramVerifier(password string) (string, error) {
	const iterations = 4096
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt for the password verifier: %w", err)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("password verifier: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}
