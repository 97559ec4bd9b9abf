package pg

import (
	"context"
	"fmt"
	"sort"
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

// SchemaObjects returns the schema of schemas as sorted comparable lines.
func SchemaObjects(ctx context.Context, pool *pgxpool.Pool, schemas []string) ([]string, error) {
	var out []string
	for _, q := range schemaObjectQueries {
		rows, err := pool.Query(ctx, q, schemas)
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

// Analyze runs ANALYZE on each table, with no statement timeout (it takes
// as long as the data needs); progress goes to onTable after each.
func Analyze(ctx context.Context, pool *pgxpool.Pool, tables []Rel, onTable func(done int, t Rel, d time.Duration)) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Release()
	if _, err := c.Exec(ctx, "SET statement_timeout = 0"); err != nil {
		return err
	}
	defer c.Exec(context.Background(), "RESET statement_timeout")
	for k, t := range tables {
		start := time.Now()
		if _, err := c.Exec(ctx, "ANALYZE "+t.String()); err != nil {
			return fmt.Errorf("ANALYZE %s: %w", t, err)
		}
		if onTable != nil {
			onTable(k+1, t, time.Since(start))
		}
	}
	return nil
}

// AnalyzeProgress reads pg_stat_progress_analyze: one line per running ANALYZE.
func AnalyzeProgress(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	rows, err := pool.Query(ctx, `
SELECT relid::regclass::text || ': ' || phase || ', ' || sample_blks_scanned || '/' || sample_blks_total || ' blocks sampled'
FROM pg_stat_progress_analyze`)
	if err != nil {
		return nil, fmt.Errorf("read ANALYZE progress: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// NotAnalyzedSince lists the tables of schemas whose last analyze (manual
// or auto) is before since, or never happened.
func NotAnalyzedSince(ctx context.Context, pool *pgxpool.Pool, schemas []string, since time.Time) ([]Rel, error) {
	rels, err := scanRels(pool.Query(ctx, `
SELECT s.schemaname::text, s.relname::text FROM pg_stat_all_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = ANY($1::text[]) AND c.relkind = 'r'
  AND coalesce(greatest(s.last_analyze, s.last_autoanalyze), '-infinity') < $2
ORDER BY 1, 2`, schemas, since))
	if err != nil {
		return nil, fmt.Errorf("read when tables were last analyzed: %w", err)
	}
	return rels, nil
}

// ServerNow is the server's clock.
func ServerNow(ctx context.Context, pool *pgxpool.Pool) (time.Time, error) {
	var t time.Time
	if err := pool.QueryRow(ctx, "SELECT now()").Scan(&t); err != nil {
		return t, fmt.Errorf("read the server's clock: %w", err)
	}
	return t, nil
}

// RowCounts counts the rows of each table in one REPEATABLE READ snapshot.
// With checksum, each count comes with an md5 of the rows' text in byte
// order (slow on large tables: every row is read and sorted).
func RowCounts(ctx context.Context, pool *pgxpool.Pool, tables []Rel, checksum bool) (map[Rel]string, error) {
	out := map[Rel]string{}
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
			return err
		}
		for _, t := range tables {
			q := "SELECT count(*)::text FROM " + t.String()
			if checksum {
				q = `SELECT count(*) || ' ' || md5(coalesce(string_agg(x::text, E'\n' ORDER BY x::text COLLATE "C"), '')) FROM ` + t.String() + " x"
			}
			var v string
			if err := tx.QueryRow(ctx, q).Scan(&v); err != nil {
				return fmt.Errorf("count %s: %w", t, err)
			}
			out[t] = v
		}
		return nil
	})
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
