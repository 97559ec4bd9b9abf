package pg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Roles are the cluster's, not a database's: the copy strategy's green
// starts without blue's. These read blue's roles (attributes, SCRAM
// verifiers where blue lets them be read, settings, memberships) and its
// databases (owner, encoding, locale, settings, privileges), and make
// green's the same.

// RoleDef is one role of blue.
type RoleDef struct {
	Name                                                                string
	Login, Super, CreateDB, CreateRole, Inherit, Replication, BypassRLS bool
	ConnLimit                                                           int
	// ValidUntil is rolvaliduntil as text ("" for none).
	ValidUntil string
	// Verifier is the stored password (a SCRAM-SHA-256 verifier, or an
	// md5 hash): a secret, never shown. "" when the role has none, or
	// when it could not be read (VerifiersRead on the result says which).
	Verifier string
	// Settings are the role's own settings (ALTER ROLE ... SET), as
	// name=value.
	Settings []string
	// MemberOf are the roles it is granted, and whether with ADMIN OPTION.
	MemberOf []Membership
}

// Membership is one role granted to another.
type Membership struct {
	Role  string
	Admin bool
}

// BlueRoles is what ReadRoles found.
type BlueRoles struct {
	Roles []RoleDef
	// VerifiersRead says the stored passwords were read (pg_authid, a
	// superuser's); false on RDS and Cloud SQL, where no role may.
	VerifiersRead bool
}

// systemRole says whether a role is the server's or a provider's own:
// never copied.
func systemRole(name string) bool {
	for _, p := range []string{"pg_", "rds", "azure_", "cloudsql", "alloydb"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

const readRolesSQL = `
SELECT r.rolname::text, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolinherit, r.rolreplication, r.rolbypassrls,
       r.rolconnlimit, coalesce(r.rolvaliduntil::text, ''), %s,
       coalesce((SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setrole = r.oid AND s.setdatabase = 0), '{}'),
       coalesce((SELECT array_agg(g.rolname::text ORDER BY g.rolname) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), '{}'),
       coalesce((SELECT array_agg(m.admin_option ORDER BY g.rolname) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), '{}')
FROM %s r WHERE r.rolname !~ '^pg_' ORDER BY 1`

// ReadRoles reads every role of the server but the system's and the
// provider's, with its stored password when the session may read
// pg_authid.
func ReadRoles(ctx context.Context, q Querier) (BlueRoles, error) {
	out := BlueRoles{VerifiersRead: true}
	rows, err := q.Query(ctx, fmt.Sprintf(readRolesSQL, "coalesce(r.rolpassword, '')", "pg_authid"))
	if err == nil {
		out.Roles, err = collectRoles(rows)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege: RDS, Cloud SQL
		out.VerifiersRead = false
		rows, err = q.Query(ctx, fmt.Sprintf(readRolesSQL, "''", "pg_roles"))
		if err == nil {
			out.Roles, err = collectRoles(rows)
		}
	}
	if err != nil {
		return out, fmt.Errorf("read blue's roles: %w", err)
	}
	out.Roles = slices.DeleteFunc(out.Roles, func(r RoleDef) bool { return systemRole(r.Name) })
	return out, nil
}

func collectRoles(rows pgx.Rows) ([]RoleDef, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (RoleDef, error) {
		var r RoleDef
		var of []string
		var admin []bool
		err := row.Scan(&r.Name, &r.Login, &r.Super, &r.CreateDB, &r.CreateRole, &r.Inherit, &r.Replication, &r.BypassRLS,
			&r.ConnLimit, &r.ValidUntil, &r.Verifier, &r.Settings, &of, &admin)
		for i, g := range of {
			r.MemberOf = append(r.MemberOf, Membership{Role: g, Admin: i < len(admin) && admin[i]})
		}
		return r, err
	})
}

// RoleVerifiers reads the stored passwords of roles (pg_authid): "" for a
// role without one. It fails where the session may not read them.
func RoleVerifiers(ctx context.Context, q Querier, roles []string) (map[string]string, error) {
	rows, err := q.Query(ctx, "SELECT rolname::text, coalesce(rolpassword, '') FROM pg_authid WHERE rolname = ANY($1)", roles)
	if err != nil {
		return nil, fmt.Errorf("read the roles' stored passwords: %w", err)
	}
	out := map[string]string{}
	var name, verifier string
	_, err = pgx.ForEachRow(rows, []any{&name, &verifier}, func() error {
		out[name] = verifier
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the roles' stored passwords: %w", err)
	}
	return out, nil
}

// CopyRolesParams make green's roles blue's: those missing created, those
// there given blue's attributes, password, settings and memberships. Skip
// are roles left as they are on green (the role pgbluegreen connects as:
// it never changes itself).
type CopyRolesParams struct {
	On    string
	Roles []RoleDef
	// Existing are the roles green has now.
	Existing []string
	Skip     []string
	// Closed are roles created NOLOGIN whatever blue says (the
	// application's: green takes no writes before the cutover opens it).
	Closed []string
}

// setVerifierDO sets a role's stored password from transaction-local
// settings: the statement's text holds no secret, and the server quotes
// the verifier (%L).
const setVerifierDO = `DO $pgbg$
BEGIN
  EXECUTE format('ALTER ROLE %I PASSWORD %L', current_setting('pgbg.role'), current_setting('pgbg.verifier'));
END
$pgbg$`

// attributes renders a role's attributes for CREATE ROLE, or with login
// false, for ALTER ROLE: LOGIN is then left as it is (the fence and
// block-green-logins own it on green).
func (r RoleDef) attributes(login bool) string {
	flag := func(on bool, yes, no string) string {
		if on {
			return yes
		}
		return no
	}
	parts := []string{flag(r.Super, "SUPERUSER", "NOSUPERUSER"), flag(r.CreateDB, "CREATEDB", "NOCREATEDB"),
		flag(r.CreateRole, "CREATEROLE", "NOCREATEROLE"), flag(r.Inherit, "INHERIT", "NOINHERIT"), flag(r.Replication, "REPLICATION", "NOREPLICATION"),
		flag(r.BypassRLS, "BYPASSRLS", "NOBYPASSRLS"), fmt.Sprintf("CONNECTION LIMIT %d", r.ConnLimit)}
	if r.ValidUntil != "" {
		parts = append(parts, "VALID UNTIL "+QuoteLiteral(r.ValidUntil))
	}
	if login {
		parts = append([]string{flag(r.Login, "LOGIN", "NOLOGIN")}, parts...)
	}
	return strings.Join(parts, " ")
}

// Statements are what Exec runs, in one transaction with statement
// logging off (the stored passwords pass through it as Secret parameters).
func (p CopyRolesParams) Statements() []Stmt {
	body := noStatementLogStmts(p.On)
	var grants []Stmt
	for _, r := range p.Roles {
		if slices.Contains(p.Skip, r.Name) {
			continue
		}
		if slices.Contains(p.Existing, r.Name) {
			body = append(body, Stmt{On: p.On, SQL: "ALTER ROLE " + Ident(r.Name) + " WITH " + r.attributes(false)})
		} else {
			def := r
			def.Login = r.Login && !slices.Contains(p.Closed, r.Name)
			body = append(body, Stmt{On: p.On, SQL: "CREATE ROLE " + Ident(r.Name) + " WITH " + def.attributes(true)})
		}
		if r.Verifier != "" {
			body = append(body,
				Stmt{On: p.On, SQL: "SELECT set_config('pgbg.role', $1, true), set_config('pgbg.verifier', $2, true)", Args: []any{r.Name, Secret(r.Verifier)}},
				Stmt{On: p.On, SQL: setVerifierDO, Note: "= ALTER ROLE " + Ident(r.Name) + " PASSWORD '********': blue's stored password, as it is"})
		}
		for _, s := range r.Settings {
			name, value, _ := strings.Cut(s, "=")
			body = append(body, Stmt{On: p.On, SQL: "ALTER ROLE " + Ident(r.Name) + " SET " + Ident(name) + " TO " + settingValue(name, value)})
		}
		for _, m := range r.MemberOf {
			if systemRole(m.Role) && !strings.HasPrefix(m.Role, "pg_") {
				continue // a provider's role does not exist on green
			}
			g := "GRANT " + Ident(m.Role) + " TO " + Ident(r.Name)
			if m.Admin {
				g += " WITH ADMIN OPTION"
			}
			grants = append(grants, Stmt{On: p.On, SQL: g})
		}
	}
	// Memberships once every role exists.
	return InTx(p.On, append(body, grants...))
}

// Exec runs Statements on pool.
func (p CopyRolesParams) Exec(ctx context.Context, pool *pgxpool.Pool) error {
	if err := ExecTx(ctx, pool, p.Statements()); err != nil {
		return fmt.Errorf("copy roles to %s: %w", p.On, err)
	}
	return nil
}

// RoleNames lists the server's roles.
func RoleNames(ctx context.Context, q Querier) ([]string, error) {
	rows, err := q.Query(ctx, "SELECT rolname::text FROM pg_roles ORDER BY 1")
	if err != nil {
		return nil, fmt.Errorf("list the roles: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the roles: %w", err)
	}
	return out, nil
}

// CheckPassword logs in with conninfo and leaves at once: nil when the
// server accepted the password, also when it then refused the session
// only because the role may not log in there now (NOLOGIN: PostgreSQL
// checks it after the password).
func CheckPassword(ctx context.Context, conninfo string) error {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return fmt.Errorf("parse connection string: %w", err)
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "28000" && strings.Contains(pe.Message, "not permitted to log in") {
		return nil
	}
	if err != nil {
		return err
	}
	return c.Close(ctx)
}
