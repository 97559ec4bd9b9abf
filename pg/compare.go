package pg

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaObjectQueries describe a schema as comparable text lines, one query
// per kind of object; $1 = schemas. Each line names its kind first, so two
// servers' sets can be diffed directly. Definitions are normalised by the
// server's own deparsers (format_type, pg_get_indexdef,
// pg_get_constraintdef), which print 15 and 17 alike for the same object.
// NOT NULL constraints (PG18 has them in pg_constraint) are covered by the
// columns' nullability, so contype 'n' is left out.
var schemaObjectQueries = []string{
	`SELECT 'relation ' || format('%I.%I', n.nspname, c.relname) || ' ' || c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')`,
	`SELECT 'column ' || format('%I.%I.%I', n.nspname, c.relname, a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) ||
       CASE WHEN a.attnotnull THEN ' not null' ELSE ' null' END
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped`,
	`SELECT 'index ' || format('%I.%I', n.nspname, i.relname) || ': ' || pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
WHERE n.nspname = ANY($1::text[])`,
	`SELECT 'constraint ' || format('%I.%I', n.nspname, c.relname) || ' ' || quote_ident(k.conname) || ': ' || pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND k.contype <> 'n'`,
	`SELECT 'sequence ' || format('%I.%I', schemaname, sequencename) || ' ' || data_type::text || ' increment ' || increment_by ||
       ' min ' || min_value || ' max ' || max_value || CASE WHEN cycle THEN ' cycle' ELSE '' END
FROM pg_sequences WHERE schemaname = ANY($1::text[])`,
}

// SchemaObjectQueries are the reads SchemaObjects makes, for plans.
func SchemaObjectQueries(on string, schemas []string) []Stmt {
	out := make([]Stmt, len(schemaObjectQueries))
	for i, q := range schemaObjectQueries {
		out[i] = Stmt{On: on, SQL: q, Args: []any{schemas}}
	}
	return out
}

// SchemaObjects returns the schema of schemas as sorted comparable lines.
func SchemaObjects(ctx context.Context, pool *pgxpool.Pool, schemas []string) ([]string, error) {
	var out []string
	for _, q := range SchemaObjectQueries("", schemas) {
		rows, err := pool.Query(ctx, q.SQL, schemas)
		if err != nil {
			return nil, fmt.Errorf("read the schema: %w", err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("read the schema: %w", err)
		}
		out = append(out, lines...)
	}
	// Sorted here, byte-wise: the servers' collations may order differently.
	sort.Strings(out)
	return out, nil
}

// DiffLines returns the lines only in a and the lines only in b; both sorted.
func DiffLines(a, b []string) (onlyA, onlyB []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b) || (i < len(a) && a[i] < b[j]):
			onlyA = append(onlyA, a[i])
			i++
		case i >= len(a) || b[j] < a[i]:
			onlyB = append(onlyB, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return onlyA, onlyB
}

// LeafTables lists the ordinary (non-partitioned) tables of schemas: the
// tables that hold rows and statistics.
func LeafTables(ctx context.Context, pool *pgxpool.Pool, schemas []string) ([]Rel, error) {
	rels, err := scanRels(pool.Query(ctx, `
SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND c.relkind = 'r' ORDER BY 1, 2`, schemas))
	if err != nil {
		return nil, fmt.Errorf("list the tables of the configured schemas: %w", err)
	}
	return rels, nil
}

// AnalyzeTargets lists what ANALYZE must cover in schemas, largest first:
// ordinary tables, and partitioned parents (relkind 'p', sized as the sum
// of their partitions), which autovacuum never analyzes and an ANALYZE of
// the partitions leaves without statistics.
func AnalyzeTargets(ctx context.Context, pool *pgxpool.Pool, schemas []string) ([]Rel, error) {
	rows, err := pool.Query(ctx, `
SELECT n.nspname::text, c.relname::text,
       CASE c.relkind WHEN 'p' THEN coalesce((SELECT sum(pg_table_size(t.relid)) FROM pg_partition_tree(c.oid) t WHERE t.isleaf), 0)
                      ELSE pg_table_size(c.oid) END::bigint AS size
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
ORDER BY size DESC, 1, 2`, schemas)
	if err != nil {
		return nil, fmt.Errorf("list the tables to analyze: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Rel, error) {
		var x Rel
		var size int64
		err := r.Scan(&x.Schema, &x.Name, &size)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the tables to analyze: %w", err)
	}
	return out, nil
}

// AnalyzeParams analyze tables on Jobs connections at once, as vacuumdb
// --analyze-only -j does, each connection with no statement timeout
// (ANALYZE takes as long as the data needs).
type AnalyzeParams struct {
	On     string
	Tables []Rel
	// Jobs is how many connections analyze at once; below 1 means 1 (and,
	// in a plan made offline, not known yet).
	Jobs int
}

func (p AnalyzeParams) jobs() int {
	if p.Jobs < 1 {
		return 1
	}
	if p.Jobs > len(p.Tables) && len(p.Tables) > 0 {
		return len(p.Tables)
	}
	return p.Jobs
}

// Statements are what Exec runs: on each of its connections SET
// statement_timeout = 0, then the ANALYZEs in order, taken by whichever
// connection is free, then RESET statement_timeout on each.
func (p AnalyzeParams) Statements() []Stmt {
	each, at := "on each connection", "largest first, one per connection at a time"
	if p.Jobs > 0 {
		n := p.jobs()
		each, at = fmt.Sprintf("on each of the %d connections", n), fmt.Sprintf("largest first, %d at a time", n)
	}
	out := []Stmt{{On: p.On, SQL: "SET statement_timeout = 0", Note: each}}
	for _, t := range p.Tables {
		out = append(out, Stmt{On: p.On, SQL: "ANALYZE " + t.String()})
	}
	if len(out) > 1 {
		out[1].Note = at
	}
	return append(out, Stmt{On: p.On, SQL: "RESET statement_timeout", Note: each})
}

// Exec runs the statements on Jobs connections of pool's (at most the
// pool's size less one, left for progress reads); onTable hears of each
// table as it ends, one call at a time. The first error stops the others.
func (p AnalyzeParams) Exec(ctx context.Context, pool *pgxpool.Pool, onTable func(done int, t Rel, d time.Duration)) error {
	stmts := p.Statements()
	set, reset := stmts[0], stmts[len(stmts)-1]
	work := make(chan Stmt, len(stmts))
	for _, s := range stmts[1 : len(stmts)-1] {
		work <- s
	}
	close(work)
	jobs := p.jobs()
	if max := int(pool.Config().MaxConns) - 1; jobs > max && max >= 1 {
		jobs = max
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	done := 0
	errs := make(chan error, jobs)
	for i := 0; i < jobs; i++ {
		go func() {
			errs <- func() error {
				c, err := pool.Acquire(ctx)
				if err != nil {
					return fmt.Errorf("connect: %w", err)
				}
				defer c.Release()
				if err := set.Exec(ctx, c); err != nil {
					return err
				}
				defer reset.Exec(context.WithoutCancel(ctx), c)
				for s := range work {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					start := time.Now()
					if err := s.Exec(ctx, c); err != nil {
						return fmt.Errorf("%s: %w", s.SQL, err)
					}
					mu.Lock()
					done++
					if onTable != nil {
						onTable(done, relOfAnalyze(s, p.Tables), time.Since(start))
					}
					mu.Unlock()
				}
				return nil
			}()
		}()
	}
	var first error
	for i := 0; i < jobs; i++ {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// relOfAnalyze finds the table an ANALYZE statement names.
func relOfAnalyze(s Stmt, tables []Rel) Rel {
	for _, t := range tables {
		if s.SQL == "ANALYZE "+t.String() {
			return t
		}
	}
	return Rel{}
}

// analyzeProgressSQL reads pg_stat_progress_analyze: one line per running ANALYZE.
const analyzeProgressSQL = `SELECT relid::regclass::text || ': ' || phase || ', ' || sample_blks_scanned || '/' || sample_blks_total || ' blocks sampled' FROM pg_stat_progress_analyze`

// AnalyzeProgressQuery is the read AnalyzeProgress makes, for plans.
func AnalyzeProgressQuery(on string) Stmt { return Stmt{On: on, SQL: analyzeProgressSQL} }

// AnalyzeProgress reads pg_stat_progress_analyze: one line per running ANALYZE.
func AnalyzeProgress(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	rows, err := pool.Query(ctx, analyzeProgressSQL)
	if err != nil {
		return nil, fmt.Errorf("read ANALYZE progress: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// notAnalyzedSQL lists the tables of schemas $1, partitioned parents
// included, last analyzed (manual or auto) before $2, or never.
const notAnalyzedSQL = `SELECT s.schemaname::text, s.relname::text FROM pg_stat_all_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = ANY($1::text[]) AND c.relkind IN ('r', 'p')
  AND coalesce(greatest(s.last_analyze, s.last_autoanalyze), '-infinity') < $2
ORDER BY 1, 2`

// NotAnalyzedQuery is the read NotAnalyzedSince makes, for plans (since
// may be a Later).
func NotAnalyzedQuery(on string, schemas []string, since any) Stmt {
	return Stmt{On: on, SQL: notAnalyzedSQL, Args: []any{schemas, since}}
}

// NotAnalyzedSince lists the tables of schemas, partitioned parents
// included, whose last analyze (manual or auto) is before since, or never
// happened. Parents appear in pg_stat_all_tables from PostgreSQL 15 on;
// earlier, only their partitions are checked.
func NotAnalyzedSince(ctx context.Context, pool *pgxpool.Pool, schemas []string, since time.Time) ([]Rel, error) {
	rels, err := scanRels(pool.Query(ctx, notAnalyzedSQL, schemas, since))
	if err != nil {
		return nil, fmt.Errorf("read when tables were last analyzed: %w", err)
	}
	return rels, nil
}

// ServerNowQuery is the read ServerNow makes, for plans.
func ServerNowQuery(on string) Stmt { return Stmt{On: on, SQL: "SELECT now()"} }

// ServerNow is the server's clock.
func ServerNow(ctx context.Context, pool *pgxpool.Pool) (time.Time, error) {
	var t time.Time
	if err := pool.QueryRow(ctx, ServerNowQuery("").SQL).Scan(&t); err != nil {
		return t, fmt.Errorf("read the server's clock: %w", err)
	}
	return t, nil
}

// RowCountParams count the rows of tables in one REPEATABLE READ
// snapshot. With Checksum, each count comes with an md5 of the rows' text
// in byte order (slow on large tables: every row is read and sorted).
type RowCountParams struct {
	On       string
	Tables   []Rel
	Checksum bool
}

// Statements are what Exec runs: BEGIN ISOLATION LEVEL REPEATABLE READ
// READ ONLY, no statement timeout for the transaction, one count per
// table, COMMIT.
func (p RowCountParams) Statements() []Stmt {
	out := []Stmt{{On: p.On, SQL: "SET LOCAL statement_timeout = 0"}}
	for _, t := range p.Tables {
		q := "SELECT count(*)::text FROM " + t.String()
		if p.Checksum {
			q = `SELECT count(*) || ' ' || md5(coalesce(string_agg(x::text, E'\n' ORDER BY x::text COLLATE "C"), '')) FROM ` + t.String() + " x"
		}
		out = append(out, Stmt{On: p.On, SQL: q})
	}
	stmts := InTx(p.On, out)
	stmts[0].SQL = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
	return stmts
}

// Exec runs the statements on a connection of pool's and returns each
// table's count (with its md5).
func (p RowCountParams) Exec(ctx context.Context, pool *pgxpool.Pool) (map[Rel]string, error) {
	stmts := p.Statements()
	out := map[Rel]string{}
	quiet := context.WithValue(ctx, journaledKey{}, true)
	start := time.Now()
	tx, err := pool.BeginTx(quiet, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	stmts[0].report(ctx, start, err)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(quiet))
	if err := stmts[1].Exec(ctx, tx); err != nil {
		return nil, err
	}
	for i, t := range p.Tables {
		var v string
		if err := stmts[2+i].QueryRow(ctx, tx, &v); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		out[t] = v
	}
	start = time.Now()
	err = tx.Commit(quiet)
	stmts[len(stmts)-1].report(ctx, start, err)
	return out, err
}

// NextXID is the server's next transaction ID: when it moves between two
// reads, transactions were started (written) in between.
func NextXID(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var x int64
	if err := pool.QueryRow(ctx, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").Scan(&x); err != nil {
		return 0, fmt.Errorf("read the next transaction ID: %w", err)
	}
	return x, nil
}
