package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The reads and checks the cutover engine (steps/cutover) makes of the
// servers: the lag of a feed, its health, the reverse feed's prerequisites,
// the state of slots and subscriptions. Each holds its SQL here, where
// every statement lives.

// ErrNoSubscriber marks a slot or subscription whose worker is not running.
var ErrNoSubscriber = errors.New("no apply worker running")

// slotApplyLag is the largest lag of the slots s (each joined to its
// walsender r in pg_stat_replication) in bytes: behind what the subscriber
// has applied (replay_lsn, which it reports after every batch), or, where
// that is not visible, behind its flushed position (confirmed_flush_lsn,
// which trails by up to the subscriber's next WAL flush and report: a
// second of writes at 1,000 writes/s).
const slotApplyLag = `coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(r.replay_lsn, s.confirmed_flush_lsn))), 0)::bigint`

func CheckLag(ctx context.Context, c *pgxpool.Conn, slots []string, maxLag int64) (string, error) {
	var n int
	var lag int64
	var inactive []string
	err := c.QueryRow(ctx, `
SELECT count(*), `+slotApplyLag+`,
       coalesce(array_agg(s.slot_name::text) FILTER (WHERE NOT s.active), '{}')
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_name = ANY($1)`, slots).Scan(&n, &lag, &inactive)
	switch {
	case err != nil:
		return "", fmt.Errorf("read the slots: %w", err)
	case n != len(slots):
		return "", fmt.Errorf("found %d of the slots %s", n, strings.Join(slots, ", "))
	case len(inactive) > 0:
		return "", fmt.Errorf("slot %s has no subscriber connected: %w", strings.Join(inactive, ", "), ErrNoSubscriber)
	case lag > maxLag:
		return "", &LagAboveError{Lag: lag, Max: maxLag}
	}
	return fmt.Sprintf("largest lag %d bytes", lag), nil
}

// LagAboveError is CheckLag's answer when the lag is above the gate.
type LagAboveError struct{ Lag, Max int64 }

func (e *LagAboveError) Error() string {
	return fmt.Sprintf("lag is %d bytes, more than %d: wait for green to catch up", e.Lag, e.Max)
}

func CheckReversePrereqs(ctx context.Context, blue, green *pgxpool.Conn, p ReversePrereqs) (string, error) {
	if p.Password == "" {
		return "", fmt.Errorf("no password for replication role %s", p.Role)
	}
	var walLevel string
	var freeSlots, freeSenders int
	var roleOK, slotActive bool
	// Every database's reverse feed takes a slot and, once enabled, a
	// walsender on green: its slots made by an earlier attempt are
	// remade, so they count as free.
	names := append([]string{p.Name}, p.Others...)
	err := green.QueryRow(ctx, `
SELECT current_setting('wal_level'),
       current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots WHERE slot_name <> ALL($3)),
       current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication),
       EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1 AND rolcanlogin AND (rolreplication OR rolsuper)),
       EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $2 AND active)`, p.Role, p.Name, names).
		Scan(&walLevel, &freeSlots, &freeSenders, &roleOK, &slotActive)
	if err != nil {
		return "", fmt.Errorf("read green's settings: %w", err)
	}
	switch {
	case walLevel != "logical":
		return "", fmt.Errorf("green's wal_level is %s: set it to logical and restart green", walLevel)
	case freeSlots < len(names) || freeSenders < len(names):
		return "", fmt.Errorf("green has %d free replication slots and %d free walsenders, and the reverse feeds of %d databases need %d of each: raise max_replication_slots / max_wal_senders", max(freeSlots, 0), max(freeSenders, 0), len(names), len(names))
	case !roleOK:
		return "", fmt.Errorf("role %s does not exist on green with LOGIN and REPLICATION", p.Role)
	case slotActive:
		return "", fmt.Errorf("slot %s on green is in use already", p.Name)
	}
	var workers int
	var subActive, canAnchor bool
	err = blue.QueryRow(ctx, `
SELECT current_setting('max_logical_replication_workers')::int,
       EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1 AND subenabled),
       has_function_privilege((SELECT oid FROM pg_proc WHERE proname = 'pg_replication_origin_advance' AND pronargs = 2), 'EXECUTE')`, p.Name).Scan(&workers, &subActive, &canAnchor)
	if err != nil {
		return "", fmt.Errorf("read blue's settings: %w", err)
	}
	if workers < 1 {
		return "", fmt.Errorf("blue's max_logical_replication_workers is 0")
	}
	if !canAnchor {
		// Inside the pause, the reverse subscription's start is set with it.
		return "", fmt.Errorf("pgbluegreen's role on blue may not run pg_replication_origin_advance: GRANT EXECUTE ON FUNCTION pg_replication_origin_advance(text, pg_lsn) TO it (as a superuser), or connect as a superuser")
	}
	if subActive {
		return "", fmt.Errorf("subscription %s on blue is enabled already: a cutover is in force", p.Name)
	}
	return fmt.Sprintf("green: wal_level logical, %d free slots; role %s can replicate", freeSlots, p.Role), nil
}

// CheckForwardRestartable: for a rollback, the forward slots still exist on
// blue, unused, and the forward subscriptions on green are disabled.
func CheckForwardRestartable(ctx context.Context, blue, green *pgxpool.Conn, slots, subs []string) (string, error) {
	var n int
	var active bool
	if err := blue.QueryRow(ctx, "SELECT count(*), coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = ANY($1)", slots).Scan(&n, &active); err != nil {
		return "", fmt.Errorf("read blue's slots: %w", err)
	}
	if n != len(slots) || active {
		return "", fmt.Errorf("blue's slots %s: %d found, in use %t", strings.Join(slots, ", "), n, active)
	}
	var enabled int
	if err := green.QueryRow(ctx, "SELECT count(*) FILTER (WHERE subenabled), count(*) FROM pg_subscription WHERE subname = ANY($1)", subs).Scan(&enabled, &n); err != nil {
		return "", fmt.Errorf("read green's subscriptions: %w", err)
	}
	if n != len(subs) || enabled > 0 {
		return "", fmt.Errorf("green's subscriptions %s: %d found, %d enabled", strings.Join(subs, ", "), n, enabled)
	}
	return fmt.Sprintf("blue's slots %s kept, green's subscriptions disabled", strings.Join(slots, ", ")), nil
}

func SubscriptionExists(ctx context.Context, c *pgxpool.Conn, name string) (bool, error) {
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look for subscription %s: %w", name, err)
	}
	return exists, nil
}

// WorkersMissing reads which of subs (in the session's database) have no
// apply worker running.
func WorkersMissing(ctx context.Context, q Querier, subs []string) ([]string, error) {
	rows, err := q.Query(ctx, `
SELECT s.subname::text FROM pg_subscription s
WHERE s.subname = ANY($1) AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND NOT EXISTS (SELECT 1 FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.relid IS NULL AND w.pid IS NOT NULL)
ORDER BY 1`, subs)
	if err != nil {
		return nil, fmt.Errorf("read the apply workers of %s: %w", strings.Join(subs, ", "), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the apply workers of %s: %w", strings.Join(subs, ", "), err)
	}
	return out, nil
}

// SubscriptionsState reads whether any of subs is enabled, and whether all exist.
func SubscriptionsState(ctx context.Context, c *pgxpool.Conn, subs []string) (anyEnabled, allExist bool, err error) {
	var n int
	err = c.QueryRow(ctx, "SELECT coalesce(bool_or(subenabled), false), count(*) FROM pg_subscription WHERE subname = ANY($1)", subs).Scan(&anyEnabled, &n)
	if err != nil {
		return false, false, fmt.Errorf("read subscriptions %s: %w", strings.Join(subs, ", "), err)
	}
	return anyEnabled, n == len(subs), nil
}

func VersionThrough(ctx context.Context, conninfo string) (string, error) {
	conn, err := ConnectThrough(ctx, conninfo)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("SELECT version() through PgBouncer: %w", err)
	}
	return v, nil
}

// ConnectThrough opens a connection through PgBouncer as an application
// would, in exec mode (no prepared statements under transaction pooling).
func ConnectThrough(ctx context.Context, conninfo string) (*pgx.Conn, error) {
	if conninfo == "" {
		return nil, fmt.Errorf("no client connection string for PgBouncer")
	}
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return nil, fmt.Errorf("parse PgBouncer client connection string: %w", err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect through PgBouncer: %w", err)
	}
	return conn, nil
}

// FeedLag is the largest lag of slots in bytes (slotApplyLag).
func FeedLag(ctx context.Context, q RowQuerier, slots []string) (int64, error) {
	var lag int64
	err := q.QueryRow(ctx, "SELECT "+slotApplyLag+" FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = ANY($1)", slots).Scan(&lag)
	return lag, err
}

// ReversePrereqs name what CheckReversePrereqs checks for: the reverse
// feed's publication, slot and subscription (Name) and the role blue's
// subscription logs in to green as, with its password. Others are the
// reverse feeds of the other databases that move with this one: green
// needs a free slot and walsender for each.
type ReversePrereqs struct {
	Name, Role, Password string
	Others               []string
}

// SyncLocalStmt makes a session's own commits on the source wait for no
// synchronous standby (an HA one, or the cutover's hold).
func SyncLocalStmt(on string) Stmt {
	return Stmt{On: on, SQL: "SET synchronous_commit = local"}
}

// ReadVersionAndDatabase reads the server's version() and the session's
// database.
func ReadVersionAndDatabase(ctx context.Context, q RowQuerier) (version, database string, err error) {
	err = q.QueryRow(ctx, "SELECT version(), current_database()").Scan(&version, &database)
	return version, database, err
}

// CurrentUser is the role the session logs in as.
func CurrentUser(ctx context.Context, q RowQuerier) (string, error) {
	var me string
	err := q.QueryRow(ctx, "SELECT current_user").Scan(&me)
	return me, err
}

// PublicationExists reports whether the current database has publication name.
func PublicationExists(ctx context.Context, q RowQuerier, name string) (bool, error) {
	var has bool
	if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", name).Scan(&has); err != nil {
		return false, fmt.Errorf("look for publication %s: %w", name, err)
	}
	return has, nil
}

// SlotExists reports whether the server has a replication slot named name.
func SlotExists(ctx context.Context, q RowQuerier, name string) (bool, error) {
	var has bool
	if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", name).Scan(&has); err != nil {
		return false, fmt.Errorf("look for slot %s: %w", name, err)
	}
	return has, nil
}

// FeedHealth is what the subscriber says of a feed's subscriptions: how
// many exist in this database, how many have an apply worker running, how
// many of their tables are not ready, and their apply and sync errors
// counted in pg_stat_subscription_stats (lifetime counters).
type FeedHealth struct {
	Found, Running, NotReady int
	Errors                   int64
}

// ReadFeedHealth reads FeedHealth for subs.
func ReadFeedHealth(ctx context.Context, q RowQuerier, subs []string) (FeedHealth, error) {
	var h FeedHealth
	err := q.QueryRow(ctx, `
SELECT count(*),
       count(*) FILTER (WHERE s.subenabled AND EXISTS (SELECT 1 FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.relid IS NULL AND w.pid IS NOT NULL)),
       (SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s2 ON s2.oid = r.srsubid WHERE s2.subname = ANY($1) AND r.srsubstate <> 'r'),
       coalesce((SELECT sum(apply_error_count + sync_error_count) FROM pg_stat_subscription_stats WHERE subname = ANY($1)), 0)::bigint
FROM pg_subscription s WHERE s.subname = ANY($1) AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, subs).Scan(&h.Found, &h.Running, &h.NotReady, &h.Errors)
	return h, err
}
