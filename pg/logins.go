package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Application logins on green: block-green-logins keeps the application
// roles out of green until the cutover.

// RoleLogins is which of a list of roles can log in on a server.
type RoleLogins struct {
	// CanLogin are the roles with LOGIN; Missing those that do not exist.
	CanLogin, Missing []string
}

// ReadRoleLogins reads, in one query, which of roles can log in.
func ReadRoleLogins(ctx context.Context, pool *pgxpool.Pool, roles []string) (RoleLogins, error) {
	var out RoleLogins
	rows, err := pool.Query(ctx, `
SELECT r.name, coalesce(a.rolcanlogin, false), a.oid IS NOT NULL
FROM unnest($1::text[]) WITH ORDINALITY r(name, n) LEFT JOIN pg_roles a ON a.rolname = r.name
ORDER BY r.n`, roles)
	if err != nil {
		return out, fmt.Errorf("read the logins of roles: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var can, exists bool
		if err := rows.Scan(&name, &can, &exists); err != nil {
			return out, fmt.Errorf("read the logins of roles: %w", err)
		}
		switch {
		case !exists:
			out.Missing = append(out.Missing, name)
		case can:
			out.CanLogin = append(out.CanLogin, name)
		}
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("read the logins of roles: %w", err)
	}
	return out, nil
}

// NoLoginParams take LOGIN away from roles: ALTER ROLE ... NOLOGIN.
type NoLoginParams struct {
	On    string
	Roles []string
}

// Statements are what Exec runs: one ALTER ROLE per role.
func (p NoLoginParams) Statements() []Stmt { return LoginStmts(p.On, p.Roles, false) }

// LoginStmts give roles LOGIN or NOLOGIN: block-green-logins, and the
// cutover's fence and its undo.
func LoginStmts(on string, roles []string, login bool) []Stmt {
	word := "NOLOGIN"
	if login {
		word = "LOGIN"
	}
	out := make([]Stmt, len(roles))
	for i, r := range roles {
		out[i] = Stmt{On: on, SQL: "ALTER ROLE " + Ident(r) + " " + word}
	}
	return out
}

// Exec runs the statements in order.
func (p NoLoginParams) Exec(ctx context.Context, db Execer) error {
	return ExecAll(ctx, db, p.Statements())
}

// NoLoginRolesAdvice is what a refusal tells the operator to run for roles
// missing on green: CREATE ROLE ... NOLOGIN for each.
func NoLoginRolesAdvice(roles []string) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = "CREATE ROLE " + Ident(r) + " NOLOGIN"
	}
	return out
}
