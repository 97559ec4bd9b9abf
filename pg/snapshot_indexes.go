package pg

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A snapshot copy loads a large table faster into a table with no index
// to keep: pg_restore and pgcopydb copy first and build the indexes after,
// each by one sort instead of one insertion per row, several at once. So
// does a snapshot copy, for tables of at least DefaultDeferAbove on blue:
// their indexes on green, the primary key and the replica identity's
// included, are dropped before the data and built after it, in parallel on
// the copy's sessions, before the subscription exists (nothing applies to
// green until copy-data is done).
//
// What was dropped is recorded on green, in the transaction that drops it,
// in a table of the program's own (DeferredTable); each index's build
// deletes its row in the transaction that builds it. A copy killed half
// way leaves the rows, and the next copy-data builds what they list; a
// copy that fails builds them before it returns (its tables emptied, in no
// time).

// DefaultDeferAbove is the size on blue from which a table's indexes are
// built after its data (SnapshotCopyParams.DeferAbove).
const DefaultDeferAbove = 64 << 20

// DeferredTable records, on green, the indexes a snapshot copy dropped and
// has not built again yet.
const DeferredTable = RecorderSchema + ".deferred_indexes"

// DeferredIndex is an index of green's that a snapshot copy builds after
// the data.
type DeferredIndex struct {
	Table Rel
	Name  string
	// Def is its CREATE INDEX, as green's pg_get_indexdef gives it.
	Def string
	// Constraint is the PRIMARY KEY or UNIQUE constraint it backs ("" for
	// none), Kind which of the two, Deferrable and InitiallyDeferred its
	// timing.
	Constraint, Kind              string
	Deferrable, InitiallyDeferred bool
	// ReplicaIdentity: the table's replica identity is this index
	// (REPLICA IDENTITY USING INDEX).
	ReplicaIdentity bool
	// Recorded: an earlier copy dropped it and recorded it; only its build
	// is left.
	Recorded bool
	// Build are the statements that build it again, read from the record
	// for a recorded one (BuildStmts).
	Build []string
	// Bytes is its table's size on blue: the largest are built first.
	Bytes int64
}

// deferrableIndexesSQL lists green's indexes of the named tables that a
// copy may build after the data: valid, of an ordinary table that is not
// a partition, not an exclusion constraint's, not attached to a parent's
// index, and no foreign key's referenced key.
const deferrableIndexesSQL = `
SELECT n.nspname::text, t.relname::text, i.relname::text, pg_get_indexdef(i.oid),
       coalesce(c.conname::text, ''), CASE c.contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'u' THEN 'UNIQUE' ELSE '' END,
       coalesce(c.condeferrable, false), coalesce(c.condeferred, false), x.indisreplident
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')
WHERE x.indrelid = ANY($1::text[]::regclass[])
  AND t.relkind = 'r' AND NOT t.relispartition
  AND x.indisvalid AND x.indislive
  AND coalesce(c.contype, '') <> 'x'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = x.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = x.indexrelid)
ORDER BY 1, 2, 3`

// DeferrableIndexes reads, on green, the indexes of ts a copy builds after
// the data: those of the tables of at least above bytes on blue (0:
// DefaultDeferAbove), with the ones an earlier copy of publication pub
// recorded and did not build.
func DeferrableIndexes(ctx context.Context, green *pgxpool.Pool, pub string, ts []SnapshotTable, above int64) ([]DeferredIndex, error) {
	if above <= 0 {
		above = DefaultDeferAbove
	}
	size := map[Rel]int64{}
	var names []string
	for _, t := range ts {
		size[t.Rel] = t.Bytes
		if t.Bytes >= above && !t.Partitioned {
			names = append(names, t.Rel.String())
		}
	}
	out, err := recordedIndexes(ctx, green, pub)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Bytes = size[out[i].Table]
	}
	if len(names) > 0 {
		rows, err := green.Query(ctx, deferrableIndexesSQL, names)
		if err != nil {
			return nil, fmt.Errorf("read the indexes of the largest tables on green: %w", err)
		}
		found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeferredIndex, error) {
			var d DeferredIndex
			err := r.Scan(&d.Table.Schema, &d.Table.Name, &d.Name, &d.Def, &d.Constraint, &d.Kind, &d.Deferrable, &d.InitiallyDeferred, &d.ReplicaIdentity)
			d.Bytes = size[d.Table]
			return d, err
		})
		if err != nil {
			return nil, fmt.Errorf("read the indexes of the largest tables on green: %w", err)
		}
		out = append(out, found...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Bytes > out[j].Bytes })
	return out, nil
}

// recordedIndexes reads what an earlier copy of pub ("": of any
// publication) dropped and did not build again; none when the table of
// records does not exist.
func recordedIndexes(ctx context.Context, green *pgxpool.Pool, pub string) ([]DeferredIndex, error) {
	var there bool
	if err := green.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", DeferredTable).Scan(&there); err != nil {
		return nil, fmt.Errorf("read %s on green: %w", DeferredTable, err)
	}
	if !there {
		return nil, nil
	}
	rows, err := green.Query(ctx, "SELECT table_schema, table_name, index_name, build FROM "+DeferredTable+" WHERE $1 = '' OR publication = $1 ORDER BY 1, 2, 3", pub)
	if err != nil {
		return nil, fmt.Errorf("read %s on green: %w", DeferredTable, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeferredIndex, error) {
		d := DeferredIndex{Recorded: true}
		err := r.Scan(&d.Table.Schema, &d.Table.Name, &d.Name, &d.Build)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s on green: %w", DeferredTable, err)
	}
	return out, nil
}

// dropStmt drops the index, or the constraint it backs.
func (d DeferredIndex) dropStmt() Stmt {
	if d.Constraint != "" {
		return Stmt{On: "green", SQL: "ALTER TABLE " + d.Table.String() + " DROP CONSTRAINT " + Ident(d.Constraint)}
	}
	return Stmt{On: "green", SQL: "DROP INDEX " + Ident(d.Table.Schema, d.Name)}
}

// BuildStmts build it again as it was: the index, its constraint on it,
// the replica identity on it.
func (d DeferredIndex) BuildStmts() []string {
	if d.Recorded {
		return d.Build
	}
	out := []string{d.Def}
	name := d.Name
	if d.Constraint != "" {
		c := "ALTER TABLE " + d.Table.String() + " ADD CONSTRAINT " + Ident(d.Constraint) + " " + d.Kind + " USING INDEX " + Ident(d.Name)
		if d.Deferrable {
			c += " DEFERRABLE"
			if d.InitiallyDeferred {
				c += " INITIALLY DEFERRED"
			}
		}
		out = append(out, c)
		name = d.Constraint // USING INDEX renames the index to the constraint
	}
	if d.ReplicaIdentity {
		out = append(out, "ALTER TABLE "+d.Table.String()+" REPLICA IDENTITY USING INDEX "+Ident(name))
	}
	return out
}

// deferStmts record the indexes not recorded yet and drop them, in one
// transaction on green.
func deferStmts(pub string, ds []DeferredIndex) []Stmt {
	var body []Stmt
	for _, d := range ds {
		if d.Recorded {
			continue
		}
		if len(body) == 0 {
			body = append(body,
				Stmt{On: "green", SQL: "CREATE SCHEMA IF NOT EXISTS " + Ident(RecorderSchema)},
				Stmt{On: "green", SQL: "CREATE TABLE IF NOT EXISTS " + DeferredTable + " (publication text NOT NULL, table_schema text NOT NULL, table_name text NOT NULL, index_name text NOT NULL, build text[] NOT NULL, PRIMARY KEY (publication, table_schema, index_name))"})
		}
		body = append(body,
			Stmt{On: "green", SQL: "INSERT INTO " + DeferredTable + " VALUES ($1, $2, $3, $4, $5)", Args: []any{pub, d.Table.Schema, d.Table.Name, d.Name, d.BuildStmts()}},
			d.dropStmt())
	}
	if len(body) == 0 {
		return nil
	}
	return InTx("green", body)
}

// buildStmts build one index again, in two transactions on green: the
// index (what a build a kill stopped half way left of it dropped first),
// then its constraint and replica identity with its record's removal.
// Several indexes of one table build at once (CREATE INDEX shares the
// table); an ALTER TABLE in the index's own transaction would deadlock
// with another's.
func buildStmts(pub string, d DeferredIndex) [][]Stmt {
	build := d.BuildStmts()
	index := InTx("green", []Stmt{{On: "green", SQL: "DROP INDEX IF EXISTS " + Ident(d.Table.Schema, d.Name)}, {On: "green", SQL: build[0]}})
	var rest []Stmt
	for _, s := range build[1:] {
		rest = append(rest, Stmt{On: "green", SQL: s})
	}
	rest = append(rest, Stmt{On: "green", SQL: "DELETE FROM " + DeferredTable + " WHERE publication = $1 AND table_schema = $2 AND index_name = $3", Args: []any{pub, d.Table.Schema, d.Name}})
	return [][]Stmt{index, InTx("green", rest)}
}

// forgetStmts drop a table of records (DeferredTable, CopiedTable) once
// it is empty, and the program's schema on green with it when nothing
// else is in it.
func forgetStmts(table string) []Stmt {
	return []Stmt{{On: "green", SQL: fmt.Sprintf(`DO $pgbg$ BEGIN
  IF to_regclass(%[1]s) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %[2]s) THEN
    DROP TABLE %[2]s;
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %[3]s) THEN
      DROP SCHEMA %[4]s;
    END IF;
  END IF;
END $pgbg$`, Literal(table), table, Literal(RecorderSchema), Ident(RecorderSchema))}}
}

// buildOne builds index d again on session c.
func buildOne(ctx context.Context, pub string, d DeferredIndex, c *pgx.Conn) error {
	for _, tx := range buildStmts(pub, d) {
		if err := ExecTx(ctx, c, tx); err != nil {
			return fmt.Errorf("build index %s of %s again on green (it stays recorded in %s; copy-data builds it when run again): %w", d.Name, d.Table, DeferredTable, err)
		}
	}
	return nil
}

// buildDeferred builds deferred indexes on the sessions, largest table
// first, each with its record's removal. The first error stops the
// others; what was not built stays recorded.
func buildDeferred(ctx context.Context, pub string, ds []DeferredIndex, sessions []*pgx.Conn) error {
	if len(ds) == 0 {
		return nil
	}
	next := make(chan DeferredIndex, len(ds))
	for _, d := range ds {
		next <- d
	}
	close(next)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, c := range sessions {
		wg.Add(1)
		go func(c *pgx.Conn) {
			defer wg.Done()
			for d := range next {
				if ctx.Err() != nil {
					return
				}
				if err := buildOne(ctx, pub, d, c); err != nil {
					cancel(err)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	return context.Cause(ctx)
}

// deferredNames names up to n indexes, and how many more.
func deferredNames(ds []DeferredIndex, n int) string {
	var names []string
	for _, d := range ds[:min(n, len(ds))] {
		names = append(names, d.Table.Schema+"."+d.Name)
	}
	if len(ds) > n {
		names = append(names, fmt.Sprintf("%d more", len(ds)-n))
	}
	return strings.Join(names, ", ")
}

// DeferredLeft names, up to 3 and how many more, the indexes a snapshot
// copy dropped on green and has not built again: "" when none. Nothing
// may subscribe to a table that lacks its keys.
func DeferredLeft(ctx context.Context, green *pgxpool.Pool) (string, error) {
	left, err := recordedIndexes(ctx, green, "")
	if err != nil || len(left) == 0 {
		return "", err
	}
	return deferredNames(left, 3), nil
}
