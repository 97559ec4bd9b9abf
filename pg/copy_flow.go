package pg

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SizedTable is a table and its size on blue.
type SizedTable struct {
	Rel
	Bytes, Rows int64
}

// TableSizesQuery lists the permanent tables of schemas ($1) with their
// sizes and estimated rows, largest first (partitions as themselves, not
// their parents).
const TableSizesQuery = `
SELECT n.nspname::text, c.relname::text, pg_table_size(c.oid)::bigint, greatest(c.reltuples, 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND c.relkind = 'r' AND c.relpersistence = 'p'
ORDER BY 3 DESC, 1, 2`

// TableSizes lists, on blue, the permanent tables of schemas
// (TableSizesQuery).
func TableSizes(ctx context.Context, blue *pgxpool.Pool, schemas []string) ([]SizedTable, error) {
	rows, err := blue.Query(ctx, TableSizesQuery, schemas)
	if err != nil {
		return nil, fmt.Errorf("read the tables' sizes on blue: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SizedTable, error) {
		var t SizedTable
		err := r.Scan(&t.Schema, &t.Name, &t.Bytes, &t.Rows)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the tables' sizes on blue: %w", err)
	}
	return out, nil
}

// ReadRateStmt reads about limit bytes of table t's rows on blue, as COPY
// text (its row count from t's estimated rows and size); a plan made
// before blue is read passes a t without a name.
func ReadRateStmt(t SizedTable, limit int64) Stmt {
	rows := "<rows for " + Bytes(limit) + ">"
	if t.Rows > 0 && t.Bytes > 0 {
		rows = strconv.FormatInt(max(limit*t.Rows/t.Bytes, 1), 10)
	}
	if t.Name == "" {
		t.Name = Placeholder("the largest table of a snapshot publication")
	}
	return Stmt{On: "blue", SQL: "COPY (SELECT * FROM " + t.Rel.String() + " LIMIT " + rows + ") TO STDOUT",
		Note: "through this machine, timed: the rate a snapshot copy can expect from blue"}
}

// ReadRate runs ReadRateStmt and returns how many bytes came and in how
// long: what a snapshot copy, which passes every byte through here, can
// expect of the way from blue.
func ReadRate(ctx context.Context, blue *pgxpool.Pool, t SizedTable, limit int64) (int64, time.Duration, error) {
	if t.Rows <= 0 || t.Bytes <= 0 {
		t.Rows, t.Bytes = 1000, limit // no statistics yet: a thousand rows
	}
	s := ReadRateStmt(t, limit)
	c, err := blue.Acquire(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s on blue: %w", t.Rel, err)
	}
	defer c.Release()
	var n atomic.Int64
	start := time.Now()
	_, err = c.Conn().PgConn().CopyTo(ctx, countingWriter{io.Discard, &n}, s.SQL)
	s.report(ctx, start, err)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s on blue: %w", t.Rel, err)
	}
	return n.Load(), time.Since(start), nil
}
