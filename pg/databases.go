package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
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
// those with at least one row (each looked at with LIMIT 1).
func ReadDatabaseContent(ctx context.Context, q Querier) (DatabaseContent, error) {
	rows, err := q.Query(ctx, `
SELECT n.nspname::text, c.relname::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', '`+RecorderSchema+`') AND n.nspname !~ '^pg_'
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.objid = c.oid AND e.deptype = 'e')
ORDER BY 1`)
	if err != nil {
		return DatabaseContent{}, fmt.Errorf("list the tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var schema, name string
		err := r.Scan(&schema, &name)
		return Ident(schema, name), err
	})
	if err != nil {
		return DatabaseContent{}, fmt.Errorf("list the tables: %w", err)
	}
	c := DatabaseContent{Tables: len(tables)}
	for _, t := range tables {
		var has bool
		if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t+")").Scan(&has); err != nil {
			return c, fmt.Errorf("look into %s: %w", t, err)
		}
		if has {
			c.TablesWithRows++
		}
	}
	return c, nil
}
