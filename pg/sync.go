package pg

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The copy strategy's initial sync: how many table-sync workers, in which
// order the subscriptions start, and whether each one's worker runs.

// SyncSettings are green's settings that bound the initial sync.
type SyncSettings struct {
	MaxSyncWorkersPerSubscription int
	MaxLogicalReplicationWorkers  int
	MaxWorkerProcesses            int
	// Superuser says whether this session may ALTER SYSTEM.
	Superuser bool
}

// ReadSyncSettings reads them from green.
func ReadSyncSettings(ctx context.Context, pool *pgxpool.Pool) (SyncSettings, error) {
	var s SyncSettings
	err := pool.QueryRow(ctx, `SELECT current_setting('max_sync_workers_per_subscription')::int, current_setting('max_logical_replication_workers')::int,
       current_setting('max_worker_processes')::int, current_setting('is_superuser') = 'on'`).
		Scan(&s.MaxSyncWorkersPerSubscription, &s.MaxLogicalReplicationWorkers, &s.MaxWorkerProcesses, &s.Superuser)
	if err != nil {
		return s, fmt.Errorf("read green's logical replication settings: %w", err)
	}
	return s, nil
}

// SyncWorkerInputs are what PlanSyncWorkers weighs.
type SyncWorkerInputs struct {
	// GreenCores is green's core count.
	GreenCores int
	// Green is green's current settings.
	Green SyncSettings
	// Subscriptions is how many subscriptions copy at once.
	Subscriptions int
	// Tables is, when known, how many tables each subscription copies: a
	// subscription with fewer tables than the per-subscription number uses
	// fewer workers, leaving the others room.
	Tables []int
	// BlueFreeSlots and BlueFreeWALSenders are what blue has left beyond
	// the run's own slots (each table sync takes a slot and a walsender
	// while it copies); negative: unknown.
	BlueFreeSlots, BlueFreeWALSenders int
}

// SyncWorkerPlan is the planned number of table-sync workers per
// subscription and why.
type SyncWorkerPlan struct {
	PerSubscription int
	// Raise is true when green's max_sync_workers_per_subscription is below it.
	Raise bool
	Why   string
	// Limits names what holds the plan below what the cores would take,
	// with the setting to raise (empty when nothing does).
	Limits []string
}

// PlanSyncWorkers plans max_sync_workers_per_subscription for the initial
// sync. A table sync mostly waits (on blue's COPY, on its slot's
// snapshot, on the apply worker's handshake) and small tables are all
// overhead: measured on the lab (2 cores, 476 tables), 4 workers synced
// twice as many tables a second as 2. So three workers per core, within
// max_logical_replication_workers less one apply worker per subscription
// (subscriptions are enabled one at a time, each after the previous one's
// apply worker runs, so every apply worker gets its slot; a later
// subscription's table syncs take the slots left), max_worker_processes
// and what blue can give.
func PlanSyncWorkers(in SyncWorkerInputs) SyncWorkerPlan {
	subs := max(in.Subscriptions, 1)
	want := max(3*in.GreenCores, 2)
	p := SyncWorkerPlan{PerSubscription: want}
	limit := func(n int, why string) {
		if n < p.PerSubscription {
			p.PerSubscription = n
			p.Limits = append(p.Limits, why)
		}
	}
	if in.Green.MaxLogicalReplicationWorkers > 0 {
		// Never more table syncs than green has worker slots for: an apply
		// worker that fails to launch one ("out of logical replication worker
		// slots") stamps every table it tried and retries none of them for
		// wal_retrieve_retry_interval (5 s): the sync stalls in steps.
		limit(fitWorkers(in.Green.MaxLogicalReplicationWorkers-subs, in.Tables, subs), fmt.Sprintf("max_logical_replication_workers = %d on green (one apply worker per subscription besides the table syncs): raise it to %d (a restart of green)", in.Green.MaxLogicalReplicationWorkers, subs*(want+1)))
	}
	if in.Green.MaxWorkerProcesses > 0 {
		// The logical replication launcher and autovacuum's workers need room too.
		limit(fitWorkers(in.Green.MaxWorkerProcesses-1-subs-3, in.Tables, subs), fmt.Sprintf("max_worker_processes = %d on green: raise it to %d (a restart of green)", in.Green.MaxWorkerProcesses, subs*(want+1)+4))
	}
	if in.BlueFreeSlots >= 0 {
		limit(fitWorkers(in.BlueFreeSlots, in.Tables, subs), fmt.Sprintf("blue has %d replication slots to spare: raise max_replication_slots on blue (a restart)", in.BlueFreeSlots))
	}
	if in.BlueFreeWALSenders >= 0 {
		limit(fitWorkers(in.BlueFreeWALSenders, in.Tables, subs), fmt.Sprintf("blue has %d walsenders to spare: raise max_wal_senders on blue (a restart)", in.BlueFreeWALSenders))
	}
	if p.PerSubscription < 1 {
		p.PerSubscription = 1
	}
	p.Raise = in.Green.MaxSyncWorkersPerSubscription < p.PerSubscription
	p.Why = fmt.Sprintf("%d table-sync workers per subscription: green has %d cores, and a table sync waits more than it works (3 per core)", p.PerSubscription, in.GreenCores)
	if len(p.Limits) > 0 {
		p.Why = fmt.Sprintf("%d table-sync workers per subscription (green's %d cores would take %d; held by %s)", p.PerSubscription, in.GreenCores, want, p.Limits[0])
	}
	return p
}

// fitWorkers is the largest per-subscription number k whose table syncs,
// all subscriptions copying at once, fit in budget: the sum over
// subscriptions of min(k, its tables) (tables unknown: k each).
func fitWorkers(budget int, tables []int, subs int) int {
	need := func(k int) int {
		if len(tables) == 0 {
			return k * subs
		}
		n := 0
		for _, t := range tables {
			n += min(k, t)
		}
		return n
	}
	k := 0
	for k < 64 && need(k+1) <= budget {
		k++
	}
	return k
}

// SyncWorkersParams set max_sync_workers_per_subscription on green and
// reload: it takes effect without a restart, for the next workers the
// apply workers launch.
type SyncWorkersParams struct {
	On              string
	PerSubscription int
}

// Statements are what Exec runs.
func (p SyncWorkersParams) Statements() []Stmt {
	return []Stmt{
		alterSystemStmt(p.On, "max_sync_workers_per_subscription", p.PerSubscription),
		reloadConfStmt(p.On),
	}
}

// Exec runs the statements in order (ALTER SYSTEM cannot run in a transaction).
func (p SyncWorkersParams) Exec(ctx context.Context, db Execer) error {
	return ExecAll(ctx, db, p.Statements())
}

// PublicationSize is what one publication has to copy.
type PublicationSize struct {
	Bytes  int64
	Tables int
}

// PublicationSizes reads, on blue, the bytes (pg_table_size of each leaf)
// and the number of the tables each named publication publishes, so the
// subscription with the most to copy starts first and the workers fit. A
// publication not made yet reads as 0 bytes in 0 tables.
func PublicationSizes(ctx context.Context, pool *pgxpool.Pool, pubs []string) (map[string]PublicationSize, error) {
	rows, err := pool.Query(ctx, `
SELECT p.pubname::text,
       coalesce(sum(CASE WHEN t.tablename IS NOT NULL THEN pg_table_size(format('%I.%I', t.schemaname, t.tablename)::regclass) END), 0)::bigint,
       count(t.tablename)::int
FROM unnest($1::text[]) p(pubname) LEFT JOIN pg_publication_tables t ON t.pubname = p.pubname
GROUP BY 1`, pubs)
	if err != nil {
		return nil, fmt.Errorf("read the size of each publication's tables: %w", err)
	}
	out := map[string]PublicationSize{}
	defer rows.Close()
	for rows.Next() {
		var n string
		var x PublicationSize
		if err := rows.Scan(&n, &x.Bytes, &x.Tables); err != nil {
			return nil, fmt.Errorf("read the size of each publication's tables: %w", err)
		}
		out[n] = x
	}
	return out, rows.Err()
}

// LargestFirst orders names by size, largest first (ties by name).
func LargestFirst(names []string, size map[string]PublicationSize) []string {
	out := append([]string(nil), names...)
	sort.SliceStable(out, func(i, j int) bool {
		if size[out[i]].Bytes != size[out[j]].Bytes {
			return size[out[i]].Bytes > size[out[j]].Bytes
		}
		return out[i] < out[j]
	})
	return out
}

// WorkerState is whether a subscription's apply worker runs on green, and
// how full green's logical replication worker slots are.
type WorkerState struct {
	Running bool
	// InUse is how many logical replication workers run on green (apply,
	// table sync, parallel apply); Max is max_logical_replication_workers.
	InUse, Max int
}

// NotLaunched describes a worker not running yet, for the operator: the
// launcher starts it when a worker slot is free.
func (w WorkerState) NotLaunched(sub string) string {
	if w.InUse >= w.Max {
		return fmt.Sprintf("the apply worker of subscription %s is not launched yet: all %d logical replication worker slots of green are in use (max_logical_replication_workers); it starts when one frees", sub, w.Max)
	}
	return fmt.Sprintf("the apply worker of subscription %s is not launched yet (%d of %d logical replication workers in use on green)", sub, w.InUse, w.Max)
}

// ReadWorkerState reads it for subscription sub.
func ReadWorkerState(ctx context.Context, pool *pgxpool.Pool, sub string) (WorkerState, error) {
	var w WorkerState
	err := pool.QueryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM pg_stat_subscription s WHERE s.subname = $1 AND s.relid IS NULL AND s.pid IS NOT NULL),
       (SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL)::int,
       current_setting('max_logical_replication_workers')::int`, sub).Scan(&w.Running, &w.InUse, &w.Max)
	if err != nil {
		return w, fmt.Errorf("read the apply worker of subscription %s: %w", sub, err)
	}
	return w, nil
}

// FreeReplicationCapacity reads, on blue, how many replication slots and
// walsenders are left.
func FreeReplicationCapacity(ctx context.Context, pool *pgxpool.Pool) (slots, walsenders int, err error) {
	err = pool.QueryRow(ctx, `
SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)::int,
       current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication)::int`).Scan(&slots, &walsenders)
	if err != nil {
		return 0, 0, fmt.Errorf("read blue's free replication slots and walsenders: %w", err)
	}
	return slots, walsenders, nil
}

// TableSize is one table and its pg_table_size.
type TableSize struct {
	Table Rel
	Bytes int64
}

// LargestTables reads, on blue, the n largest ordinary tables of schemas
// (partitions included, each on its own: each is synced on its own), the
// bytes of all of them and their number.
func LargestTables(ctx context.Context, pool *pgxpool.Pool, schemas []string, n int) (largest []TableSize, total int64, count int, err error) {
	rows, err := pool.Query(ctx, `
SELECT n.nspname::text, c.relname::text, pg_table_size(c.oid)::bigint, sum(pg_table_size(c.oid)) OVER ()::bigint, count(*) OVER ()::int
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND c.relkind = 'r' AND c.relpersistence = 'p'
ORDER BY 3 DESC, 1, 2 LIMIT $2`, schemas, n)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read the largest tables: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t TableSize
		if err := rows.Scan(&t.Table.Schema, &t.Table.Name, &t.Bytes, &total, &count); err != nil {
			return nil, 0, 0, fmt.Errorf("read the largest tables: %w", err)
		}
		largest = append(largest, t)
	}
	return largest, total, count, rows.Err()
}

// DedicatedPublicationAdvice says, when one table holds a quarter or more
// of a copy of a gigabyte or more that one publication carries with many
// others, to give it a publication of its own: in pg_subscription_rel's
// order (the publisher's, by name) it may be copied last, alone, after
// every small table; in a subscription of its own, enabled first, its copy
// starts at once. "" when there is nothing to say.
func DedicatedPublicationAdvice(largest []TableSize, total int64, tablesInItsPublication int) string {
	if len(largest) == 0 || total < 1e9 || tablesInItsPublication < 10 || largest[0].Bytes*4 < total {
		return ""
	}
	t := largest[0]
	return fmt.Sprintf("%s holds %.0f%% of the %s to copy: in one publication with %d other tables its copy may start after all of them; give it a publication of its own, listed first, and copy the others in one snapshot (publications: [{name: pgbg_big, tables: [%s]}, {name: pgbg_all, copy: snapshot}]): its subscription is enabled first and its copy starts at once, and the small tables cost one snapshot instead of a table sync each",
		t.Table, 100*float64(t.Bytes)/float64(total), Bytes(total), tablesInItsPublication-1, t.Table)
}
