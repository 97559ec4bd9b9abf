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

// ReadRole reads one role's attributes.
func ReadRole(ctx context.Context, pool *pgxpool.Pool, name string) (RoleInfo, error) {
	var r RoleInfo
	err := pool.QueryRow(ctx, `
SELECT rolcanlogin, rolreplication,
       EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication' AND pg_has_role(r.oid, g.oid, 'MEMBER'))
FROM pg_roles r WHERE rolname = $1`, name).Scan(&r.CanLogin, &r.Replication, &r.RDSReplication)
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

// MissingGrants lists what role lacks to copy and stream the tables of
// schemas: CONNECT on the current database, USAGE on each schema, SELECT on
// each table. Each entry is the GRANT that fixes it.
func MissingGrants(ctx context.Context, pool *pgxpool.Pool, role string, schemas []string) ([]string, error) {
	rows, err := pool.Query(ctx, `
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), $1::text)
WHERE NOT has_database_privilege($1::text, current_database(), 'CONNECT')
UNION ALL
SELECT format('GRANT USAGE ON SCHEMA %I TO %I', n.nspname, $1::text)
FROM pg_namespace n WHERE n.nspname = ANY($2::text[]) AND NOT has_schema_privilege($1::text, n.oid, 'USAGE')
UNION ALL
SELECT format('GRANT SELECT ON %I.%I TO %I', n.nspname, c.relname, $1::text)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($2::text[]) AND c.relkind IN ('r', 'p') AND NOT has_table_privilege($1::text, c.oid, 'SELECT')`, role, schemas)
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

// ReplicationRoleParams are the inputs of EnsureReplicationRole.
type ReplicationRoleParams struct {
	Role     string
	Password string
	Schemas  []string
}

// EnsureReplicationRole creates the replication role (or sets its password
// when it exists) and grants what logical replication needs: REPLICATION,
// or rds_replication where it exists, CONNECT, USAGE on the schemas and
// SELECT on their tables. Only a SCRAM-SHA-256 verifier computed here
// leaves this process, inside a transaction with statement logging off.
// Running it again changes nothing but the verifier's salt.
func EnsureReplicationRole(ctx context.Context, pool *pgxpool.Pool, p ReplicationRoleParams) error {
	verifier, err := ScramVerifier(p.Password)
	if err != nil {
		return err
	}
	rds, err := HasRDSReplication(ctx, pool)
	if err != nil {
		return err
	}
	role := pgx.Identifier{p.Role}.Sanitize()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, s := range []string{"SET LOCAL log_statement = 'none'", "SET LOCAL log_min_duration_statement = -1",
			"SET LOCAL log_parameter_max_length_on_error = 0"} {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "SELECT set_config('pgbg.role', $1, true), set_config('pgbg.verifier', $2, true)", p.Role, verifier); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, setRolePasswordDO); err != nil {
			return err
		}
		grant := "ALTER ROLE " + role + " REPLICATION"
		if rds {
			grant = "GRANT rds_replication TO " + role
		}
		stmts := []string{grant}
		var db string
		if err := tx.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			return err
		}
		stmts = append(stmts, "GRANT CONNECT ON DATABASE "+pgx.Identifier{db}.Sanitize()+" TO "+role)
		for _, s := range p.Schemas {
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return fmt.Errorf("schema %s does not exist on blue: fix `schemas` in the configuration", s)
			}
			q := pgx.Identifier{s}.Sanitize()
			stmts = append(stmts, "GRANT USAGE ON SCHEMA "+q+" TO "+role, "GRANT SELECT ON ALL TABLES IN SCHEMA "+q+" TO "+role)
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create replication role %s: %w", p.Role, err)
	}
	return nil
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

// LoginRoles lists which of roles can log in; missing lists those that do
// not exist.
func LoginRoles(ctx context.Context, pool *pgxpool.Pool, roles []string) (canLogin, missing []string, err error) {
	for _, r := range roles {
		info, err := ReadRole(ctx, pool, r)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case !info.Exists:
			missing = append(missing, r)
		case info.CanLogin:
			canLogin = append(canLogin, r)
		}
	}
	return canLogin, missing, nil
}

// SetNoLogin runs ALTER ROLE ... NOLOGIN.
func SetNoLogin(ctx context.Context, pool *pgxpool.Pool, role string) error {
	if _, err := pool.Exec(ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" NOLOGIN"); err != nil {
		return fmt.Errorf("ALTER ROLE %s NOLOGIN: %w", role, err)
	}
	return nil
}
