package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The SQL of the cutover's sub-steps, each on a connection the caller holds
// for the whole cutover (no pool round trip inside the pause).

func qi(name string) string { return pgx.Identifier{name}.Sanitize() }

// drainTarget flushes the source's WAL (the walsenders decode flushed WAL
// only, and commits may be asynchronous), then takes its current WAL
// position as the drain target, with the largest lag of the feed's slots.
func drainTarget(ctx context.Context, c *pgxpool.Conn, slots []string) (lsn string, lag int64, err error) {
	if err := flushWAL(ctx, c); err != nil {
		return "", 0, fmt.Errorf("flush the WAL: %w", err)
	}
	var n int
	err = c.QueryRow(ctx, `
SELECT pg_current_wal_lsn()::text,
       coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)::bigint,
       count(*)
FROM pg_replication_slots WHERE slot_name = ANY($1)`, slots).Scan(&lsn, &lag, &n)
	if err != nil {
		return "", 0, fmt.Errorf("read the drain target: %w", err)
	}
	if n != len(slots) {
		return "", 0, fmt.Errorf("found %d of the slots %s", n, strings.Join(slots, ", "))
	}
	return lsn, lag, nil
}

// waitDrained polls until every slot's confirmed_flush_lsn reached lsn:
// the subscriber has applied and flushed everything written before it.
//
// Left alone this takes up to a second after the last apply: the
// subscriber's apply worker commits asynchronously and reports a flushed
// position only when it next wakes (its nap is 1 s) or a keepalive arrives.
// So each round flushes the subscriber's WAL and then commits an empty
// transaction synchronously on the source: its walsender wakes, decodes
// nothing to send, and pings the subscriber, which answers at once with its
// now-flushed position.
func waitDrained(ctx context.Context, src, dst *pgxpool.Conn, slots []string, lsn string) (int, error) {
	polls := 0
	for {
		polls++
		var done bool
		err := src.QueryRow(ctx, `
SELECT coalesce(bool_and(confirmed_flush_lsn >= $2::pg_lsn), false)
FROM pg_replication_slots WHERE slot_name = ANY($1)`, slots, lsn).Scan(&done)
		if err != nil {
			return polls, fmt.Errorf("wait for the slots to reach %s: %w", lsn, err)
		}
		if done {
			return polls, nil
		}
		if err := flushWAL(ctx, dst); err != nil {
			return polls, fmt.Errorf("flush the subscriber's WAL: %w", err)
		}
		if err := flushWAL(ctx, src); err != nil {
			return polls, fmt.Errorf("wake the walsenders: %w", err)
		}
		select {
		case <-ctx.Done():
			return polls, fmt.Errorf("wait for the slots to reach %s: %w", lsn, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// flushWAL commits a transaction holding only a logical message (which no
// subscriber asks for) synchronously: every WAL record before it is
// flushed, and walsenders are woken. A transaction that wrote no WAL
// before its commit record would commit asynchronously whatever the
// setting, hence the message.
func flushWAL(ctx context.Context, c *pgxpool.Conn) error {
	_, err := flushWALAt(ctx, c)
	return err
}

// flushWALAt is flushWAL returning the message's LSN: every record before
// it is flushed.
func flushWALAt(ctx context.Context, c *pgxpool.Conn) (string, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = on")
	var lsn string
	b.Queue("SELECT pg_logical_emit_message(true, 'pgbluegreen', '')::text").QueryRow(func(r pgx.Row) error { return r.Scan(&lsn) })
	b.Queue("COMMIT")
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		return "", err
	}
	return lsn, nil
}

// disableSubscriptions disables the subscriptions and ends their apply
// workers at once (a disabled worker would otherwise notice only on its
// next wake-up), so nothing more is applied once it returns.
func disableSubscriptions(ctx context.Context, c *pgxpool.Conn, subs []string) error {
	for _, s := range subs {
		if _, err := c.Exec(ctx, "ALTER SUBSCRIPTION "+qi(s)+" DISABLE"); err != nil {
			return fmt.Errorf("disable subscription %s: %w", s, err)
		}
	}
	_, err := terminateAndWait(ctx, c, "SELECT pid FROM pg_stat_subscription WHERE subname = ANY($1) AND pid IS NOT NULL", subs)
	if err != nil {
		return fmt.Errorf("stop the apply workers of %s: %w", strings.Join(subs, ", "), err)
	}
	return nil
}

func enableSubscriptions(ctx context.Context, c *pgxpool.Conn, subs []string) error {
	for _, s := range subs {
		if _, err := c.Exec(ctx, "ALTER SUBSCRIPTION "+qi(s)+" ENABLE"); err != nil {
			return fmt.Errorf("enable subscription %s: %w", s, err)
		}
	}
	return nil
}

// scrubPassword keeps a password out of an error text.
func scrubPassword(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "********"))
}

// dropSubscription removes a subscription without touching the remote slot
// (it is dropped separately on the other side).
func dropSubscription(ctx context.Context, c *pgxpool.Conn, name string) error {
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look for subscription %s: %w", name, err)
	}
	if !exists {
		return nil
	}
	if err := disableSubscriptions(ctx, c, []string{name}); err != nil {
		return err
	}
	for _, s := range []string{"ALTER SUBSCRIPTION " + qi(name) + " SET (slot_name = NONE)", "DROP SUBSCRIPTION " + qi(name)} {
		if _, err := c.Exec(ctx, s); err != nil {
			return fmt.Errorf("drop subscription %s: %w", name, err)
		}
	}
	return nil
}

// dropSlot drops a logical slot when it exists, retrying while its
// walsender is still going away.
func dropSlot(ctx context.Context, c *pgxpool.Conn, name string) error {
	for {
		var exists, active bool
		err := c.QueryRow(ctx, "SELECT count(*) > 0, coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&exists, &active)
		if err != nil {
			return fmt.Errorf("look for slot %s: %w", name, err)
		}
		if !exists {
			return nil
		}
		if !active {
			if _, err := c.Exec(ctx, "SELECT pg_drop_replication_slot($1)", name); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drop slot %s: still in use: %w", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// setLogin gives roles LOGIN or NOLOGIN and returns those it changed.
func setLogin(ctx context.Context, c *pgxpool.Conn, roles []string, login bool) ([]string, error) {
	rows, err := c.Query(ctx, "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) AND rolcanlogin <> $2 ORDER BY 1", roles, login)
	if err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	change, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	word := "NOLOGIN"
	if login {
		word = "LOGIN"
	}
	for k, r := range change {
		if _, err := c.Exec(ctx, "ALTER ROLE "+qi(r)+" "+word); err != nil {
			return change[:k], fmt.Errorf("ALTER ROLE %s %s: %w", r, word, err)
		}
	}
	return change, nil
}

// writerRoles finds every role that can write to the database: the
// configured application roles plus any login role (not superuser, not the
// replication role, not this session's) that owns a table or may change
// one.
func writerRoles(ctx context.Context, c *pgxpool.Conn, app []string, replication string) ([]string, error) {
	rows, err := c.Query(ctx, `
SELECT r.rolname::text FROM pg_roles r
WHERE r.rolcanlogin AND NOT r.rolsuper AND r.rolname <> $2 AND r.rolname <> current_user
  AND r.rolname !~ '^(pg_|rds)'
  AND (r.rolname = ANY($1) OR EXISTS (
        SELECT 1 FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE t.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND (pg_has_role(r.oid, t.relowner, 'USAGE')
               OR has_table_privilege(r.oid, t.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))))
ORDER BY 1`, app, replication)
	if err != nil {
		return nil, fmt.Errorf("find the roles that write: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("find the roles that write: %w", err)
	}
	return out, nil
}

// terminateAndWait signals the backends pidsQuery selects and waits (polling
// every 2 ms; pg_terminate_backend's own wait polls every 100 ms) until
// they are gone. It returns how many it ended.
func terminateAndWait(ctx context.Context, c *pgxpool.Conn, pidsQuery string, args ...any) (int, error) {
	var pids []int32
	err := c.QueryRow(ctx, "SELECT coalesce(array_agg(pid) FILTER (WHERE pg_terminate_backend(pid)), '{}') FROM ("+pidsQuery+") t", args...).Scan(&pids)
	if err != nil {
		return 0, err
	}
	for len(pids) > 0 {
		var left int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&left); err != nil {
			return 0, err
		}
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%d sessions still there: %w", left, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return len(pids), nil
}

// terminateSessions ends the client sessions of roles (all roles when nil)
// in the current database, except the pids in keep (the cutover's own),
// and returns how many it ended. Walsenders and background workers are
// left alone.
func terminateSessions(ctx context.Context, c *pgxpool.Conn, roles []string, keep []uint32) (int, error) {
	n, err := terminateAndWait(ctx, c, `
SELECT pid FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid <> ALL($2::int[])
  AND ($1::text[] IS NULL AND datname = current_database() OR usename = ANY($1))`, roles, keep)
	if err != nil {
		return 0, fmt.Errorf("terminate sessions: %w", err)
	}
	return n, nil
}

// setReadOnly sets or resets default_transaction_read_only for the current
// database (new sessions only; terminateSessions ends the old ones).
func setReadOnly(ctx context.Context, c *pgxpool.Conn, on bool) error {
	var stmt string
	tmpl := "ALTER DATABASE %I RESET default_transaction_read_only"
	if on {
		tmpl = "ALTER DATABASE %I SET default_transaction_read_only = on"
	}
	if err := c.QueryRow(ctx, "SELECT format($1::text, current_database())", tmpl).Scan(&stmt); err != nil {
		return fmt.Errorf("read the database name: %w", err)
	}
	if _, err := c.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// isReadOnly reports whether the current database is set read-only.
func isReadOnly(ctx context.Context, c *pgxpool.Conn) (bool, error) {
	var on bool
	err := c.QueryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
               WHERE d.datname = current_database() AND s.setrole = 0
                 AND 'default_transaction_read_only=on' = ANY(s.setconfig))`).Scan(&on)
	if err != nil {
		return false, fmt.Errorf("read the database's settings: %w", err)
	}
	return on, nil
}

// probeSQL is a tiny write that touches no table of the application: a
// temporary table, dropped at commit. It fails in a read-only transaction.
const probeSQL = "CREATE TEMP TABLE pgbg_probe ON COMMIT DROP AS SELECT 1 AS x"

// probeWrite opens a new session (so database-level settings apply) and
// runs the probe write.
func probeWrite(ctx context.Context, pool *pgxpool.Pool) error {
	cfg := pool.Config().ConnConfig.Copy()
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect for a probe write: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, probeSQL)
	return err
}

// isReadOnlyError reports SQLSTATE 25006 (read_only_sql_transaction).
func isReadOnlyError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "25006"
}

// advanceSlots moves logical slots to the current WAL position without
// sending anything: what they skip is what the other side already has.
// pg_replication_slot_advance stops at the flushed position, and the
// reverse feed's commits are asynchronous: the WAL is flushed first, and the
// position each slot reached is checked.
func advanceSlots(ctx context.Context, c *pgxpool.Conn, slots []string) (string, error) {
	flushed, err := flushWALAt(ctx, c)
	if err != nil {
		return "", fmt.Errorf("flush the WAL: %w", err)
	}
	var lsn string
	for _, s := range slots {
		// The end reached can sit a page header short of the position
		// asked for; what matters is that it passed the flush marker, after
		// everything the slot must skip.
		var reached bool
		err := c.QueryRow(ctx, "SELECT end_lsn::text, end_lsn >= $2::pg_lsn FROM pg_replication_slot_advance($1, pg_current_wal_lsn())", s, flushed).Scan(&lsn, &reached)
		if err != nil {
			return "", fmt.Errorf("advance slot %s: %w", s, err)
		}
		if !reached {
			return "", fmt.Errorf("advance slot %s: it stopped at %s, before %s (WAL not flushed)", s, lsn, flushed)
		}
	}
	return lsn, nil
}
