package pg

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Schema drift: logical replication does not carry DDL, so a change made
// on one side while replication runs (a deploy's migration, a partition
// created by a tool) leaves the other behind. A fingerprint of the schema
// is cheap to poll; the object-by-object comparison (SchemaObjects) runs
// only when two fingerprints differ.

// fingerprintQuery is an md5 of every line SchemaObjects returns, in byte
// order, with their count, in one statement over the catalogs: one row,
// however many tables. $1 = schemas.
var fingerprintQuery = `SELECT md5(coalesce(string_agg(l, E'\n' ORDER BY l COLLATE "C"), '')), count(*)
FROM (` + strings.Join(schemaObjectQueries, "\nUNION ALL\n") + `) x(l)`

// reader is what a read needs: a pool, a connection, a transaction.
type reader interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SchemaFingerprint reads the fingerprint of schemas and how many objects
// (tables, columns, indexes, constraints, sequences) it covers.
func SchemaFingerprint(ctx context.Context, q reader, schemas []string) (fp string, objects int64, err error) {
	if err := q.QueryRow(ctx, fingerprintQuery, schemas).Scan(&fp, &objects); err != nil {
		return "", 0, fmt.Errorf("read the schema's fingerprint: %w", err)
	}
	return fp, objects, nil
}

// HasSubscription reports whether q's database subscribes to anything:
// replication runs into it.
func HasSubscription(ctx context.Context, q reader) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = current_database())`).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("read the subscriptions: %w", err)
	}
	return ok, nil
}
