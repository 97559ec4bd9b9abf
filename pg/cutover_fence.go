package pg

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The fence of a cutover: the side left behind refuses the application's
// roles by closing CONNECT on the databases that moved, not by NOLOGIN.
// Roles are the cluster's: NOLOGIN would also lock a role out of a
// database that stays on that side, and CONNECT is per database. What a
// fence takes is read from each database's ACL (aclexplode) and kept as a
// FenceRecord, so that opening the side again gives back exactly that.
// A superuser, the role the session logs in as and the roles it is told
// to keep (the replication role, the administrators) are never touched:
// they get CONNECT explicitly where they had it only through PUBLIC.

// PublicGrantee names PUBLIC in a ConnectGrant (no role may be named so).
const PublicGrantee = "PUBLIC"

// ConnectGrant is one CONNECT grant on a database: to Role (PublicGrantee
// for everyone), with the grant option or not.
type ConnectGrant struct {
	Role      string `json:"role"`
	Grantable bool   `json:"grantable,omitempty"`
}

// FenceRecord is what a fence took from one database and what it gave in
// its place: opening the database gives Revoked back and takes Granted.
type FenceRecord struct {
	Revoked []ConnectGrant `json:"revoked,omitempty"`
	Granted []string       `json:"granted,omitempty"`
}

// Empty reports whether the record took and gave nothing.
func (r FenceRecord) Empty() bool { return len(r.Revoked) == 0 && len(r.Granted) == 0 }

// Merge is r with what o took and gave besides (a side fenced again).
func (r FenceRecord) Merge(o FenceRecord) FenceRecord {
	out := FenceRecord{Revoked: slices.Clone(r.Revoked), Granted: slices.Clone(r.Granted)}
	for _, g := range o.Revoked {
		if !slices.ContainsFunc(out.Revoked, func(x ConnectGrant) bool { return x.Role == g.Role }) {
			out.Revoked = append(out.Revoked, g)
		}
	}
	for _, g := range o.Granted {
		if !slices.Contains(out.Granted, g) {
			out.Granted = append(out.Granted, g)
		}
	}
	return out
}

// Took names the grantees of Revoked, in a line.
func (r FenceRecord) Took() string {
	var took []string
	for _, g := range r.Revoked {
		s := g.Role
		if g.Grantable {
			s += " (with grant option)"
		}
		took = append(took, s)
	}
	return orNothing(took)
}

// String says what the record took and gave, in a line.
func (r FenceRecord) String() string {
	out := "CONNECT taken from " + r.Took()
	if len(r.Granted) > 0 {
		out += ", given to " + strings.Join(r.Granted, ", ")
	}
	return out
}

func orNothing(s []string) string {
	if len(s) == 0 {
		return "nobody"
	}
	return strings.Join(s, ", ")
}

// grantee renders a role for GRANT and REVOKE: PUBLIC as the keyword.
func grantee(role string) string {
	if role == PublicGrantee {
		return role
	}
	return Ident(role)
}

// FenceStmts close CONNECT on database db: REVOKE from every grantee of
// rec.Revoked, then GRANT to rec.Granted (the roles that must keep it).
// A plan made before the ACL is read shows Placeholders for the roles.
func FenceStmts(on, db string, rec FenceRecord) []Stmt {
	var out []Stmt
	if len(rec.Revoked) > 0 {
		q := make([]string, len(rec.Revoked))
		for i, g := range rec.Revoked {
			q[i] = grantee(g.Role)
		}
		out = append(out, Stmt{On: on, SQL: "REVOKE CONNECT ON DATABASE " + Ident(db) + " FROM " + strings.Join(q, ", ")})
	}
	if len(rec.Granted) > 0 {
		out = append(out, grantConnectStmt(on, db, rec.Granted, false))
	}
	return out
}

// OpenStmts give back what a fence of database db took (rec): GRANT to
// rec.Revoked (with the grant option where it was held), REVOKE from
// rec.Granted.
func OpenStmts(on, db string, rec FenceRecord) []Stmt {
	var plain, grantable []string
	for _, g := range rec.Revoked {
		if g.Grantable {
			grantable = append(grantable, g.Role)
		} else {
			plain = append(plain, g.Role)
		}
	}
	var out []Stmt
	if len(plain) > 0 {
		out = append(out, grantConnectStmt(on, db, plain, false))
	}
	if len(grantable) > 0 {
		out = append(out, grantConnectStmt(on, db, grantable, true))
	}
	if len(rec.Granted) > 0 {
		q := make([]string, len(rec.Granted))
		for i, r := range rec.Granted {
			q[i] = grantee(r)
		}
		out = append(out, Stmt{On: on, SQL: "REVOKE CONNECT ON DATABASE " + Ident(db) + " FROM " + strings.Join(q, ", ")})
	}
	return out
}

func grantConnectStmt(on, db string, roles []string, withGrant bool) Stmt {
	q := make([]string, len(roles))
	for i, r := range roles {
		q[i] = grantee(r)
	}
	sql := "GRANT CONNECT ON DATABASE " + Ident(db) + " TO " + strings.Join(q, ", ")
	if withGrant {
		sql += " WITH GRANT OPTION"
	}
	return Stmt{On: on, SQL: sql}
}

// FenceRoles are the roles a fence closes, and those it was given but
// spares, each with why.
type FenceRoles struct {
	Fence []string
	// Spared are "role (why)": a superuser (CONNECT does not bind it),
	// the role pgbluegreen connects as, an administrator, the replication
	// role, or a role this server does not have.
	Spared []string
}

// ReadFenceRoles sorts roles into those a fence closes and those it
// spares: superusers, the session's own role, administrators and the
// replication role are never touched.
func ReadFenceRoles(ctx context.Context, q RowQuerier, roles, administrators []string, replication string) (FenceRoles, error) {
	var out FenceRoles
	var names, why []string
	err := q.QueryRow(ctx, `
SELECT coalesce(array_agg(r.name ORDER BY r.n), '{}'),
       coalesce(array_agg(CASE WHEN a.oid IS NULL THEN 'not on this server'
                               WHEN a.rolsuper THEN 'superuser'
                               WHEN a.rolname = current_user THEN 'pgbluegreen''s own role'
                               WHEN a.rolname = ANY($2) THEN 'administrator'
                               WHEN a.rolname = $3 THEN 'replication role'
                               ELSE '' END ORDER BY r.n), '{}')
FROM unnest($1::text[]) WITH ORDINALITY r(name, n) LEFT JOIN pg_roles a ON a.rolname = r.name`, roles, administrators, replication).Scan(&names, &why)
	if err != nil {
		return out, fmt.Errorf("read the roles to fence: %w", err)
	}
	for i, n := range names {
		if why[i] == "" {
			out.Fence = append(out.Fence, n)
		} else {
			out.Spared = append(out.Spared, n+" ("+why[i]+")")
		}
	}
	return out, nil
}

// aclConnect are a database d's CONNECT grants, its default ACL when it
// has none of its own (PUBLIC and the owner).
const aclConnect = `aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a WHERE a.privilege_type = 'CONNECT'`

// ReadFencePlan reads what closing CONNECT on each of dbs takes and gives:
// the grants to revoke (PUBLIC's, the fence roles', and those of the roles
// they inherit it from; never a superuser's, the session role's or one of
// keep's), and the roles of keep and the session's own, not superusers,
// that hold no grant of their own there and would lose CONNECT with
// PUBLIC's. A database not on the server is left out.
func ReadFencePlan(ctx context.Context, q Querier, dbs, fence, keep []string) (map[string]FenceRecord, error) {
	rows, err := q.Query(ctx, `
SELECT d.datname::text,
       coalesce((SELECT json_agg(json_build_object('role', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                                                   'grantable', a.is_grantable) ORDER BY a.grantee <> 0, pg_get_userbyid(a.grantee))
                 FROM `+aclConnect+`
                   AND CASE WHEN a.grantee = 0 THEN true
                            ELSE EXISTS (SELECT 1 FROM pg_roles f WHERE f.rolname = ANY($2) AND pg_has_role(f.oid, a.grantee, 'USAGE')) END
                   AND NOT EXISTS (SELECT 1 FROM pg_roles p WHERE p.oid = a.grantee
                                   AND (p.rolsuper OR p.rolname = current_user OR p.rolname = ANY($3)))), '[]'),
       ARRAY(SELECT k.rolname::text FROM pg_roles k
             WHERE (k.rolname = ANY($3) OR k.rolname = current_user) AND NOT k.rolsuper
               AND NOT EXISTS (SELECT 1 FROM `+aclConnect+` AND a.grantee = k.oid)
             ORDER BY 1)
FROM pg_database d WHERE d.datname = ANY($1)`, dbs, fence, keep)
	if err != nil {
		return nil, fmt.Errorf("read the databases' CONNECT grants: %w", err)
	}
	out := map[string]FenceRecord{}
	var db string
	var rec FenceRecord
	_, err = pgx.ForEachRow(rows, []any{&db, &rec.Revoked, &rec.Granted}, func() error {
		// One grantee may hold it from several grantors: once is enough.
		var seen []ConnectGrant
		for _, g := range rec.Revoked {
			if k := slices.IndexFunc(seen, func(x ConnectGrant) bool { return x.Role == g.Role }); k >= 0 {
				seen[k].Grantable = seen[k].Grantable || g.Grantable
				continue
			}
			seen = append(seen, g)
		}
		out[db] = FenceRecord{Revoked: seen, Granted: slices.Clone(rec.Granted)}
		rec = FenceRecord{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the databases' CONNECT grants: %w", err)
	}
	return out, nil
}

// ReadConnectGrants reads, for each of dbs on the server, the CONNECT
// grants of PUBLIC and of the roles that roles inherit from (their own
// included): what a fence there would take, as a FenceRecord's Revoked.
// Opening a side the run has no record for gives back the other side's.
func ReadConnectGrants(ctx context.Context, q Querier, dbs, roles []string) (map[string][]ConnectGrant, error) {
	plan, err := ReadFencePlan(ctx, q, dbs, roles, nil)
	if err != nil {
		return nil, err
	}
	out := map[string][]ConnectGrant{}
	for db, rec := range plan {
		out[db] = rec.Revoked
	}
	return out, nil
}

// SideAccess is how a server's databases let a list of roles in.
type SideAccess struct {
	// NoLogin are the roles without LOGIN.
	NoLogin []string
	// Connect are, per database, the roles that can connect to it: LOGIN
	// and CONNECT (has_database_privilege).
	Connect map[string][]string
	// ReadOnly are the databases set default_transaction_read_only.
	ReadOnly []string
	// Missing are the databases the server does not have.
	Missing []string
}

// Fenced reports whether no role can connect to any of the databases.
func (a SideAccess) Fenced() bool {
	for _, r := range a.Connect {
		if len(r) > 0 {
			return false
		}
	}
	return true
}

// Closed are the databases no role can connect to.
func (a SideAccess) Closed() []string {
	var out []string
	for db, r := range a.Connect {
		if len(r) == 0 {
			out = append(out, db)
		}
	}
	slices.Sort(out)
	return out
}

// ReadSideAccess reads, in one query, which of roles can log in and
// connect to each of dbs, and which of dbs are read-only.
func ReadSideAccess(ctx context.Context, q Querier, dbs, roles []string) (SideAccess, error) {
	a := SideAccess{Connect: map[string][]string{}}
	rows, err := q.Query(ctx, `
SELECT x.name, d.oid IS NOT NULL,
       ARRAY(SELECT r.rolname::text FROM pg_roles r
             WHERE d.oid IS NOT NULL AND r.rolname = ANY($2) AND r.rolcanlogin AND has_database_privilege(r.oid, d.oid, 'CONNECT') ORDER BY 1),
       EXISTS (SELECT 1 FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0
               AND 'default_transaction_read_only=on' = ANY(s.setconfig)),
       ARRAY(SELECT r.rolname::text FROM pg_roles r WHERE r.rolname = ANY($2) AND NOT r.rolcanlogin ORDER BY 1)
FROM unnest($1::text[]) WITH ORDINALITY x(name, n) LEFT JOIN pg_database d ON d.datname = x.name
ORDER BY x.n`, dbs, roles)
	if err != nil {
		return a, fmt.Errorf("read who can connect: %w", err)
	}
	var name string
	var exists, ro bool
	var connect, noLogin []string
	_, err = pgx.ForEachRow(rows, []any{&name, &exists, &connect, &ro, &noLogin}, func() error {
		a.NoLogin = slices.Clone(noLogin)
		switch {
		case !exists:
			a.Missing = append(a.Missing, name)
		case ro:
			a.ReadOnly = append(a.ReadOnly, name)
		}
		if exists {
			a.Connect[name] = slices.Clone(connect)
		}
		return nil
	})
	if err != nil {
		return a, fmt.Errorf("read who can connect: %w", err)
	}
	return a, nil
}

// ReadKeptDatabases reads, for each of roles, the databases outside moved
// and skip that it can connect to (templates and databases that refuse
// connections aside): what a fence of the moved ones leaves it.
func ReadKeptDatabases(ctx context.Context, q Querier, roles, moved, skip []string) (map[string][]string, error) {
	rows, err := q.Query(ctx, `
SELECT r.rolname::text,
       ARRAY(SELECT d.datname::text FROM pg_database d
             WHERE NOT d.datistemplate AND d.datallowconn AND d.datname <> ALL($2) AND d.datname <> ALL($3)
               AND has_database_privilege(r.oid, d.oid, 'CONNECT') ORDER BY 1)
FROM pg_roles r WHERE r.rolname = ANY($1) ORDER BY 1`, roles, moved, skip)
	if err != nil {
		return nil, fmt.Errorf("read the databases the roles keep: %w", err)
	}
	out := map[string][]string{}
	var role string
	var kept []string
	_, err = pgx.ForEachRow(rows, []any{&role, &kept}, func() error {
		out[role] = slices.Clone(kept)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the databases the roles keep: %w", err)
	}
	return out, nil
}
