package pg

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Unlogged tables: their changes are not written to the WAL, so logical
// replication never sees them, and a clone (pg_basebackup) starts them
// empty. What green can have is a copy taken at one moment: every table
// read in one snapshot of blue, written on green in one transaction that
// first empties them, so green shows the old rows or the new, never half.

// unloggedTablesSQL lists the unlogged tables of schemas ($1), largest
// first, with their columns a COPY can write (no generated ones;
// attgenerated read through to_jsonb, so a server before PostgreSQL 12,
// which has no such column, reads as having none). Columns: schema,
// table, columns, bytes.
const unloggedTablesSQL = `
SELECT n.nspname::text, c.relname::text,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND coalesce(to_jsonb(a)->>'attgenerated', '') = ''
             ORDER BY a.attnum),
       pg_table_size(c.oid)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND n.nspname = ANY($1::text[])
ORDER BY 4 DESC, 1, 2`

// UnloggedTablesQuery is the read UnloggedTables makes, for plans.
func UnloggedTablesQuery(on string, schemas []string) Stmt {
	return Stmt{On: on, SQL: unloggedTablesSQL, Args: []any{schemas}}
}

// UnloggedTables lists the unlogged tables of schemas, largest first.
func UnloggedTables(ctx context.Context, pool *pgxpool.Pool, schemas []string) ([]SnapshotTable, error) {
	rows, err := pool.Query(ctx, unloggedTablesSQL, schemas)
	if err != nil {
		return nil, fmt.Errorf("list the unlogged tables: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SnapshotTable, error) {
		var t SnapshotTable
		err := r.Scan(&t.Rel.Schema, &t.Rel.Name, &t.Columns, &t.Bytes)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the unlogged tables: %w", err)
	}
	return out, nil
}

// UnloggedCopied is one table copied.
type UnloggedCopied struct {
	Rel Rel
	// Rows are what green took; Streamed the COPY text sent.
	Rows, Streamed int64
	Took           time.Duration
	// Done of Of tables are copied.
	Done, Of int
}

// CopyUnloggedParams copy unlogged tables from blue to green: one session
// on each side, blue's in one read-only snapshot, green's in one
// transaction that empties the tables first. Green's session writes as
// the apply worker does (session_replication_role = replica: no triggers,
// no foreign-key checks), which needs a superuser or, from PostgreSQL 15,
// SET granted on that parameter.
type CopyUnloggedParams struct {
	Tables []SnapshotTable
	// TablesUnknown: a plan made offline; What names the tables.
	TablesUnknown bool
	What          string
}

// statements are what Exec runs, in order, with the tables as given.
func (p CopyUnloggedParams) statements(tables []SnapshotTable) []Stmt {
	out := []Stmt{
		{On: "green", SQL: "SET statement_timeout = 0"},
		replicaRoleStmt,
		{On: "blue", SQL: "SET statement_timeout = 0"},
		{On: "blue", SQL: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", Note: "one snapshot for every table"},
		{On: "green", SQL: "BEGIN", Note: "one transaction: green shows the old rows or the new"},
	}
	q := make([]string, len(tables))
	for i, t := range tables {
		q[i] = "ONLY " + t.Rel.String()
	}
	out = append(out, truncateListStmt("green", q))
	for _, t := range tables {
		o := t.CopyOut().With("into the COPY below")
		if !p.TablesUnknown {
			o = o.With(Bytes(t.Bytes) + ", into the COPY below")
		}
		out = append(out, o, t.CopyIn())
	}
	return append(out, Stmt{On: "green", SQL: "COMMIT"}, Stmt{On: "blue", SQL: "COMMIT"})
}

// Statements are what Exec runs, in order.
func (p CopyUnloggedParams) Statements() []Stmt {
	if p.TablesUnknown {
		return p.statements([]SnapshotTable{{Rel: PlaceholderRel(p.What), Columns: []string{Placeholder("its columns")}}})
	}
	return p.statements(p.Tables)
}

// Exec copies the tables, telling onTable of each as it ends. A failure
// rolls green's transaction back: its tables keep what they had.
func (p CopyUnloggedParams) Exec(ctx context.Context, blue, green *pgxpool.Pool, onTable func(UnloggedCopied)) error {
	if len(p.Tables) == 0 {
		return nil
	}
	stmts := p.Statements()
	gs, err := acquireSessions(ctx, green, 1, func(c *pgx.Conn) error { return ExecAll(ctx, c, stmts[:2]) })
	defer closeSessions(gs) // closing rolls back what was not committed
	if err != nil {
		if IsInsufficientPrivilege(err) {
			return fmt.Errorf("%s on green needs a superuser (rds_superuser on RDS) or, from PostgreSQL 15, GRANT SET ON PARAMETER session_replication_role: %w", replicaRoleStmt.SQL, err)
		}
		return fmt.Errorf("open a session on green: %w", err)
	}
	bs, err := acquireSessions(ctx, blue, 1, func(c *pgx.Conn) error { return ExecAll(ctx, c, stmts[2:4]) })
	defer closeSessions(bs)
	if err != nil {
		return fmt.Errorf("open a snapshot on blue: %w", err)
	}
	b, g := bs[0], gs[0]
	// BEGIN and TRUNCATE on green.
	if err := ExecAll(ctx, g, stmts[4:6]); err != nil {
		return err
	}
	for i, t := range p.Tables {
		var streamed atomic.Int64
		start := time.Now()
		rows, err := copyStream(ctx, b.PgConn(), g.PgConn(), whole(t), &streamed)
		if err != nil {
			return fmt.Errorf("copy %s: %w", t.Rel, err)
		}
		if onTable != nil {
			onTable(UnloggedCopied{Rel: t.Rel, Rows: rows, Streamed: streamed.Load(), Took: time.Since(start), Done: i + 1, Of: len(p.Tables)})
		}
	}
	if err := stmts[len(stmts)-2].Exec(ctx, g); err != nil {
		return fmt.Errorf("commit the copy on green: %w", err)
	}
	return stmts[len(stmts)-1].Exec(ctx, b)
}
