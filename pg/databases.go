package pg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DatabaseFacts is one database of a server, as pg_database and
// pg_stat_activity say.
type DatabaseFacts struct {
	Name string `json:"name"`
	// AllowConn is datallowconn; Template is datistemplate.
	AllowConn bool  `json:"allow_conn"`
	Template  bool  `json:"template"`
	SizeBytes int64 `json:"size_bytes"`
	// Sessions are the client sessions connected to it now, pgbluegreen's
	// own left out.
	Sessions int `json:"sessions"`
}

// ReadDatabases lists the server's databases, by name.
func ReadDatabases(ctx context.Context, q Querier) ([]DatabaseFacts, error) {
	rows, err := q.Query(ctx, `
SELECT d.datname::text, d.datallowconn, d.datistemplate,
       CASE WHEN has_database_privilege(d.oid, 'CONNECT') THEN pg_database_size(d.oid) ELSE 0 END,
       (SELECT count(*) FROM pg_stat_activity a
        WHERE a.datid = d.oid AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
          AND coalesce(a.application_name, '') NOT LIKE 'pgbluegreen%')::int
FROM pg_database d ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list the databases: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DatabaseFacts, error) {
		var f DatabaseFacts
		err := r.Scan(&f.Name, &f.AllowConn, &f.Template, &f.SizeBytes, &f.Sessions)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the databases: %w", err)
	}
	return out, nil
}

// DatabaseContent is what a database holds of its own: its tables in
// schemas other than the system's and pgbluegreen's, and how many of them
// have a row.
type DatabaseContent struct {
	Tables, TablesWithRows int
}

// ReadDatabaseContent counts the session's database's own tables, and
// those with at least one row: looked at with LIMIT 1 where the session
// may read the table, else taken from the statistics (reltuples,
// n_live_tup) without reading it.
func ReadDatabaseContent(ctx context.Context, q Querier) (DatabaseContent, error) {
	rows, err := q.Query(ctx, `
SELECT n.nspname::text, c.relname::text, has_table_privilege(c.oid, 'SELECT'),
       greatest(c.reltuples, 0) > 0 OR coalesce((SELECT s.n_live_tup FROM pg_stat_all_tables s WHERE s.relid = c.oid), 0) > 0
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', '`+RecorderSchema+`') AND n.nspname !~ '^pg_'
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.objid = c.oid AND e.deptype = 'e')
ORDER BY 1, 2`)
	if err != nil {
		return DatabaseContent{}, fmt.Errorf("list the tables: %w", err)
	}
	type table struct {
		name            string
		readable, stats bool
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var schema, name string
		var t table
		err := r.Scan(&schema, &name, &t.readable, &t.stats)
		t.name = Ident(schema, name)
		return t, err
	})
	if err != nil {
		return DatabaseContent{}, fmt.Errorf("list the tables: %w", err)
	}
	c := DatabaseContent{Tables: len(tables)}
	for _, t := range tables {
		has := t.stats
		if t.readable {
			if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t.name+")").Scan(&has); err != nil {
				return c, fmt.Errorf("look into %s: %w", t.name, err)
			}
		}
		if has {
			c.TablesWithRows++
		}
	}
	return c, nil
}

// DatabaseDef is what green needs of one of blue's databases to create
// it as blue has it: owner, encoding, locale, settings, privileges.
type DatabaseDef struct {
	Name, Owner, Encoding, Collate, Ctype string
	// LocaleProvider is datlocprovider ("c" libc, "i" icu, "b" builtin);
	// ICULocale its locale when not libc.
	LocaleProvider, ICULocale string
	// Settings are the database's own (ALTER DATABASE ... SET), and
	// RoleSettings a role's in it (ALTER ROLE ... IN DATABASE ... SET),
	// as name=value.
	Settings     []string
	RoleSettings map[string][]string
	// Grants are its privileges (aclexplode of datacl), "" grantee for
	// PUBLIC; DefaultACL says datacl is NULL (PUBLIC's CONNECT and TEMP).
	Grants     []DatabaseGrant
	DefaultACL bool
}

// DatabaseGrant is one privilege on a database.
type DatabaseGrant struct {
	Grantee, Privilege string
}

// ReadDatabaseDefs reads the definitions of the named databases.
func ReadDatabaseDefs(ctx context.Context, q Querier, names []string) ([]DatabaseDef, error) {
	provider := "'c'"
	var v int
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil {
		return nil, fmt.Errorf("read the server's version: %w", err)
	}
	iculocale := "''"
	if v >= 150000 {
		provider, iculocale = "d.datlocprovider::text", "coalesce(d.daticulocale, '')"
	}
	if v >= 170000 {
		iculocale = "coalesce(d.datlocale, '')"
	}
	rows, err := q.Query(ctx, `
SELECT d.datname::text, pg_get_userbyid(d.datdba)::text, pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text,
       `+provider+`, `+iculocale+`,
       coalesce((SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0), '{}'),
       d.datacl IS NULL,
       coalesce((SELECT array_agg(CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee)::text END || ':' || a.privilege_type ORDER BY 1)
                 FROM aclexplode(d.datacl) a), '{}')
FROM pg_database d WHERE d.datname = ANY($1) ORDER BY 1`, names)
	if err != nil {
		return nil, fmt.Errorf("read the databases' definitions: %w", err)
	}
	defs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DatabaseDef, error) {
		var d DatabaseDef
		var grants []string
		err := r.Scan(&d.Name, &d.Owner, &d.Encoding, &d.Collate, &d.Ctype, &d.LocaleProvider, &d.ICULocale, &d.Settings, &d.DefaultACL, &grants)
		for _, g := range grants {
			who, priv, _ := strings.Cut(g, ":")
			d.Grants = append(d.Grants, DatabaseGrant{Grantee: who, Privilege: priv})
		}
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the databases' definitions: %w", err)
	}
	for k := range defs {
		rows, err := q.Query(ctx, `SELECT pg_get_userbyid(s.setrole)::text, s.setconfig FROM pg_db_role_setting s
JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1 AND s.setrole <> 0 ORDER BY 1`, defs[k].Name)
		if err != nil {
			return nil, fmt.Errorf("read the role settings of %s: %w", defs[k].Name, err)
		}
		defs[k].RoleSettings = map[string][]string{}
		var role string
		var conf []string
		if _, err := pgx.ForEachRow(rows, []any{&role, &conf}, func() error {
			defs[k].RoleSettings[role] = conf
			return nil
		}); err != nil {
			return nil, fmt.Errorf("read the role settings of %s: %w", defs[k].Name, err)
		}
	}
	return defs, nil
}

// CreateDatabaseStmt creates database d on green as blue has it (from
// template0: the dump brings the rest).
func CreateDatabaseStmt(on string, d DatabaseDef) Stmt {
	sql := "CREATE DATABASE " + Ident(d.Name) + " WITH OWNER " + Ident(d.Owner) + " TEMPLATE template0 ENCODING " + QuoteLiteral(d.Encoding) +
		" LC_COLLATE " + QuoteLiteral(d.Collate) + " LC_CTYPE " + QuoteLiteral(d.Ctype)
	switch d.LocaleProvider {
	case "i":
		sql += " LOCALE_PROVIDER icu ICU_LOCALE " + QuoteLiteral(d.ICULocale)
	case "b":
		sql += " LOCALE_PROVIDER builtin BUILTIN_LOCALE " + QuoteLiteral(d.ICULocale)
	}
	return Stmt{On: on, SQL: sql, Note: "outside a transaction (CREATE DATABASE cannot be in one)"}
}

// DatabaseSettingsStmts give database d on green blue's settings: its own,
// and its roles' in it; with privileges, unless blue keeps the default,
// exactly blue's privileges too (for a database just made: on one that was
// there, they are the operator's).
func DatabaseSettingsStmts(on string, d DatabaseDef, privileges bool) []Stmt {
	var out []Stmt
	db := Ident(d.Name)
	for _, s := range d.Settings {
		name, value, _ := strings.Cut(s, "=")
		out = append(out, Stmt{On: on, SQL: "ALTER DATABASE " + db + " SET " + Ident(name) + " TO " + settingValue(name, value)})
	}
	roles := make([]string, 0, len(d.RoleSettings))
	for r := range d.RoleSettings {
		roles = append(roles, r)
	}
	slices.Sort(roles)
	for _, r := range roles {
		for _, s := range d.RoleSettings[r] {
			name, value, _ := strings.Cut(s, "=")
			out = append(out, Stmt{On: on, SQL: "ALTER ROLE " + Ident(r) + " IN DATABASE " + db + " SET " + Ident(name) + " TO " + settingValue(name, value)})
		}
	}
	if d.DefaultACL || !privileges {
		return out
	}
	out = append(out, Stmt{On: on, SQL: "REVOKE ALL ON DATABASE " + db + " FROM PUBLIC"})
	for _, g := range d.Grants {
		who := "PUBLIC"
		if g.Grantee != "" {
			who = Ident(g.Grantee)
		}
		out = append(out, Stmt{On: on, SQL: "GRANT " + g.Privilege + " ON DATABASE " + db + " TO " + who})
	}
	return out
}

// settingValue renders a stored setting (pg_db_role_setting's name=value)
// for ALTER ... SET name TO, as pg_dump does: the value a literal, or for
// a list of names (search_path and its kind), each name a literal.
func settingValue(name, value string) string {
	switch strings.ToLower(name) {
	case "search_path", "temp_tablespaces", "session_preload_libraries", "shared_preload_libraries", "local_preload_libraries":
	default:
		return QuoteLiteral(value)
	}
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(value); i++ {
		ch := value[i]
		switch {
		case ch == '"' && quoted && i+1 < len(value) && value[i+1] == '"':
			cur.WriteByte('"')
			i++
		case ch == '"':
			quoted = !quoted
		case ch == ',' && !quoted:
			parts = append(parts, QuoteLiteral(strings.TrimSpace(cur.String())))
			cur.Reset()
		case (ch == ' ' || ch == '\t') && !quoted && cur.Len() == 0:
		default:
			cur.WriteByte(ch)
		}
	}
	parts = append(parts, QuoteLiteral(strings.TrimSpace(cur.String())))
	return strings.Join(parts, ", ")
}

// ConnectPrivileges says, for each role, which of dbs it may connect to.
func ConnectPrivileges(ctx context.Context, q Querier, roles, dbs []string) (map[string][]string, error) {
	rows, err := q.Query(ctx, `SELECT r, d FROM unnest($1::text[]) r, unnest($2::text[]) d
WHERE has_database_privilege(r, d, 'CONNECT') ORDER BY 1, 2`, roles, dbs)
	if err != nil {
		return nil, fmt.Errorf("read who may connect to %s: %w", strings.Join(dbs, ", "), err)
	}
	out := map[string][]string{}
	var r, d string
	if _, err := pgx.ForEachRow(rows, []any{&r, &d}, func() error {
		out[r] = append(out[r], d)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read who may connect to %s: %w", strings.Join(dbs, ", "), err)
	}
	return out, nil
}

// IsMissingDatabase reports whether err is a connection refused because
// the database does not exist (SQLSTATE 3D000).
func IsMissingDatabase(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "3D000"
}

// SameSettings reports whether two databases have the same settings of
// their own and of their roles in them.
func (d DatabaseDef) SameSettings(o DatabaseDef) bool {
	if !slices.Equal(d.Settings, o.Settings) || len(d.RoleSettings) != len(o.RoleSettings) {
		return false
	}
	for r, s := range d.RoleSettings {
		if !slices.Equal(s, o.RoleSettings[r]) {
			return false
		}
	}
	return true
}
