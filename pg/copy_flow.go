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

// TableSizes lists, on blue, the permanent tables of schemas with their
// sizes and estimated rows, largest first (partitions as themselves, not
// their parents).
func TableSizes(ctx context.Context, blue *pgxpool.Pool, schemas []string) ([]SizedTable, error) {
	rows, err := blue.Query(ctx, `
SELECT n.nspname::text, c.relname::text, pg_table_size(c.oid)::bigint, greatest(c.reltuples, 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND c.relkind = 'r' AND c.relpersistence = 'p'
ORDER BY 3 DESC, 1, 2`, schemas)
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

// ReadRate reads about limit bytes of table t's rows on blue through this
// machine, as COPY text, and returns how many bytes came and in how long:
// what a snapshot copy, which passes every byte through here, can expect
// of the way from blue.
func ReadRate(ctx context.Context, blue *pgxpool.Pool, t SizedTable, limit int64) (int64, time.Duration, error) {
	rows := int64(1000)
	if t.Rows > 0 && t.Bytes > 0 {
		rows = max(limit*t.Rows/t.Bytes, 1)
	}
	c, err := blue.Acquire(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s on blue: %w", t.Rel, err)
	}
	defer c.Release()
	var n atomic.Int64
	sql := "COPY (SELECT * FROM " + t.Rel.String() + " LIMIT " + strconv.FormatInt(rows, 10) + ") TO STDOUT"
	start := time.Now()
	if _, err := c.Conn().PgConn().CopyTo(ctx, countingWriter{io.Discard, &n}, sql); err != nil {
		return 0, 0, fmt.Errorf("read %s on blue: %w", t.Rel, err)
	}
	return n.Load(), time.Since(start), nil
}
