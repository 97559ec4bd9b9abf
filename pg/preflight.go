package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReplicationSettings are the server settings logical replication needs.
type ReplicationSettings struct {
	VersionNum                    int
	Version                       string
	WALLevel                      string
	MaxReplicationSlots           int
	MaxWALSenders                 int
	MaxLogicalReplicationWorkers  int
	MaxWorkerProcesses            int
	MaxSyncWorkersPerSubscription int
	// RDSLogicalReplication is rds.logical_replication ("" off RDS).
	RDSLogicalReplication string
	// SlotsUsed counts the replication slots that exist already.
	SlotsUsed int
}

// ReadReplicationSettings reads the settings in one statement.
func ReadReplicationSettings(ctx context.Context, pool *pgxpool.Pool) (ReplicationSettings, error) {
	var s ReplicationSettings
	err := pool.QueryRow(ctx, `
SELECT current_setting('server_version_num')::int, split_part(current_setting('server_version'), ' ', 1),
       current_setting('wal_level'), current_setting('max_replication_slots')::int, current_setting('max_wal_senders')::int,
       current_setting('max_logical_replication_workers')::int, current_setting('max_worker_processes')::int,
       current_setting('max_sync_workers_per_subscription')::int,
       coalesce(current_setting('rds.logical_replication', true), ''),
       (SELECT count(*) FROM pg_replication_slots)::int`).Scan(
		&s.VersionNum, &s.Version, &s.WALLevel, &s.MaxReplicationSlots, &s.MaxWALSenders,
		&s.MaxLogicalReplicationWorkers, &s.MaxWorkerProcesses, &s.MaxSyncWorkersPerSubscription,
		&s.RDSLogicalReplication, &s.SlotsUsed)
	if err != nil {
		return s, fmt.Errorf("read replication settings: %w", err)
	}
	return s, nil
}

// SchemaFacts are what preflight reports about the replicated schemas.
type SchemaFacts struct {
	Unlogged          []Rel
	MaterializedViews []Rel
	LargeObjects      int64
	Sequences         int64
	// IdentityNothing are tables with REPLICA IDENTITY NOTHING: their
	// UPDATEs and DELETEs fail on blue once published.
	IdentityNothing []Rel
}

// ReadSchemaFacts reads the facts about schemas in a few statements.
func ReadSchemaFacts(ctx context.Context, pool *pgxpool.Pool, schemas []string) (SchemaFacts, error) {
	var f SchemaFacts
	var err error
	list := func(where string) ([]Rel, error) {
		return scanRels(pool.Query(ctx, `
SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND `+where+` ORDER BY 1, 2`, schemas))
	}
	if f.Unlogged, err = list("c.relkind IN ('r', 'p') AND c.relpersistence = 'u'"); err != nil {
		return f, fmt.Errorf("list unlogged tables: %w", err)
	}
	if f.MaterializedViews, err = list("c.relkind = 'm'"); err != nil {
		return f, fmt.Errorf("list materialized views: %w", err)
	}
	if f.IdentityNothing, err = list("c.relkind IN ('r', 'p') AND c.relreplident = 'n'"); err != nil {
		return f, fmt.Errorf("list tables with replica identity nothing: %w", err)
	}
	err = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_largeobject_metadata), (SELECT count(*) FROM pg_sequences WHERE schemaname = ANY($1::text[]))`, schemas).
		Scan(&f.LargeObjects, &f.Sequences)
	if err != nil {
		return f, fmt.Errorf("count large objects and sequences: %w", err)
	}
	return f, nil
}

// FullIdentityWithoutIndex lists tables of schemas that have (or will get)
// REPLICA IDENTITY FULL and no index a PG16+ subscriber can use to find a
// row (a btree index on plain columns, not partial): on green every
// replicated UPDATE and DELETE on them scans the whole table. Checked on
// green, where apply runs. Tables with a primary key are not included.
func FullIdentityWithoutIndex(ctx context.Context, pool *pgxpool.Pool, schemas []string) ([]Rel, error) {
	rels, err := scanRels(pool.Query(ctx, `
SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND c.relkind = 'r' AND c.relreplident IN ('d', 'f')
  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
  AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
                  WHERE i.indrelid = c.oid AND am.amname = 'btree' AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid)
ORDER BY 1, 2`, schemas))
	if err != nil {
		return nil, fmt.Errorf("list tables without a usable index: %w", err)
	}
	return rels, nil
}

// Ping runs SELECT 1.
func Ping(ctx context.Context, pool *pgxpool.Pool) error {
	var one int
	if err := pool.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol).Scan(&one); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	return nil
}
