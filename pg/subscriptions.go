package pg

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Subscription is one subscription on green, as the lag gauge shows it.
type Subscription struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Slot    string `json:"slot"`
	// WorkerRunning says the apply worker is alive (pg_stat_subscription has a pid).
	WorkerRunning bool `json:"worker_running"`
	// ReceivedLSN and LatestEndLSN are the apply worker's positions; "" when it is not running.
	ReceivedLSN  string `json:"received_lsn"`
	LatestEndLSN string `json:"latest_end_lsn"`
	// LastMessage is when the worker last heard from blue; zero when never.
	LastMessage time.Time `json:"last_message"`
	// TablesNotReady counts tables whose initial sync has not finished
	// (pg_subscription_rel.srsubstate <> 'r'); Tables counts them all.
	TablesNotReady int `json:"tables_not_ready"`
	Tables         int `json:"tables"`
	// ApplyErrors and SyncErrors come from pg_stat_subscription_stats (PG15+);
	// -1 on older servers, where the view does not exist.
	ApplyErrors int64 `json:"apply_errors"`
	SyncErrors  int64 `json:"sync_errors"`
}

// subscriptionsQuery reads every subscription of the current database in one
// statement. PG15+ (pg_stat_subscription_stats); the %s slots take the
// version-dependent parts. Columns: name, enabled, slot, worker running,
// received_lsn, latest_end_lsn, last_msg_receipt_time, tables not ready,
// tables, apply errors, sync errors. subconninfo is never selected: it holds
// the replication password and is not readable by ordinary roles.
const subscriptionsQuery = `
SELECT s.subname::text,
       s.subenabled,
       coalesce(s.subslotname::text, ''),
       w.pid IS NOT NULL,
       coalesce(w.received_lsn::text, ''),
       coalesce(w.latest_end_lsn::text, ''),
       w.last_msg_receipt_time,
       (SELECT count(*) FROM pg_subscription_rel r WHERE r.srsubid = s.oid AND r.srsubstate <> 'r')::int,
       (SELECT count(*) FROM pg_subscription_rel r WHERE r.srsubid = s.oid)::int,
       %s
FROM pg_subscription s
LEFT JOIN LATERAL (
    SELECT pid, received_lsn, latest_end_lsn, last_msg_receipt_time
    FROM pg_stat_subscription w
    WHERE w.subid = s.oid AND w.relid IS NULL %s
    ORDER BY w.pid LIMIT 1) w ON true
%s
WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.subname`

// subscriptionsSQL returns the query for a server version number.
func subscriptionsSQL(versionNum int) string {
	errs, join, leader := "-1::bigint, -1::bigint", "", ""
	if versionNum >= 150000 {
		errs = "coalesce(st.apply_error_count, 0), coalesce(st.sync_error_count, 0)"
		join = "LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid"
	}
	if versionNum >= 160000 {
		// PG16 parallel apply workers also have relid NULL; the leader has no leader_pid.
		leader = "AND w.leader_pid IS NULL"
	}
	return fmt.Sprintf(subscriptionsQuery, errs, leader, join)
}

// ReadSubscriptions reads green's subscriptions once, bounded by timeout.
func ReadSubscriptions(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration) ([]Subscription, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var num int
	if err := pool.QueryRow(ctx, serverVersionNumQuery, pgx.QueryExecModeSimpleProtocol).Scan(&num); err != nil {
		return nil, fmt.Errorf("read subscriptions: server version: %w", err)
	}
	rows, err := pool.Query(ctx, subscriptionsSQL(num), pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	subs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Subscription, error) {
		var s Subscription
		var last *time.Time
		err := r.Scan(&s.Name, &s.Enabled, &s.Slot, &s.WorkerRunning, &s.ReceivedLSN, &s.LatestEndLSN, &last,
			&s.TablesNotReady, &s.Tables, &s.ApplyErrors, &s.SyncErrors)
		if last != nil {
			s.LastMessage = *last
		}
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	return subs, nil
}

// ServerVersion returns the server's version as people say it ("17.5"),
// without the distribution's suffix, bounded by timeout.
func ServerVersion(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var v string
	if err := pool.QueryRow(ctx, "SHOW server_version", pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil {
		return "", fmt.Errorf("read server version: %w", err)
	}
	if i := strings.IndexByte(v, ' '); i > 0 {
		v = v[:i]
	}
	return v, nil
}
