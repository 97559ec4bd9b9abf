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

// The statements of the cutover's sub-steps, each built by one function
// that both the plan and the run use, and run on a connection the caller
// holds for the whole cutover (no pool round trip inside the pause).

// readWriteSessionStmt lets the cutover's own session write on a side a
// readonly cutover made read-only (setval, ALTER SUBSCRIPTION).
func ReadWriteSessionStmt(on string) Stmt {
	return Stmt{On: on, SQL: "SET default_transaction_read_only = off"}
}

// FlushStmts commit a transaction holding only a logical message (which no
// subscriber asks for) with its WAL flushed locally: every WAL record
// before it is flushed, and walsenders are woken. A transaction that wrote
// no WAL before its commit record would commit asynchronously whatever the
// setting, hence the message. local, not on: a synchronous standby (an HA
// one, or the cutover's hold) is not waited for. Sent as one batch (one
// round trip).
func FlushStmts(on string) []Stmt {
	return []Stmt{
		{On: on, SQL: "BEGIN"},
		{On: on, SQL: "SET LOCAL synchronous_commit = local"},
		{On: on, SQL: "SELECT pg_logical_emit_message(true, 'pgbluegreen', '')::text"},
		{On: on, SQL: "COMMIT"},
	}
}

type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// execBatch sends statements in one round trip, journaling each; scan, when
// set, reads the row of statement k.
func execBatch(ctx context.Context, c batchSender, stmts []Stmt, scan map[int]func(pgx.Row) error) error {
	b := &pgx.Batch{}
	for k, s := range stmts {
		args, err := s.bind()
		if err != nil {
			return err
		}
		q := b.Queue(s.SQL, args...)
		if f, ok := scan[k]; ok {
			q.QueryRow(f)
		}
	}
	start := time.Now()
	err := c.SendBatch(context.WithValue(ctx, journaledKey{}, true), b).Close()
	for _, s := range stmts {
		s.report(ctx, start, err)
	}
	return err
}

// FlushWAL runs flushStmts and returns the message's LSN: every record
// before it is flushed.
func FlushWAL(ctx context.Context, c *pgxpool.Conn, on string) (string, error) {
	var lsn string
	err := execBatch(ctx, c, FlushStmts(on), map[int]func(pgx.Row) error{2: func(r pgx.Row) error { return r.Scan(&lsn) }})
	if err != nil {
		return "", fmt.Errorf("flush %s's WAL: %w", on, err)
	}
	return lsn, nil
}

// WrittenStmt reads the source's WAL insert position once writes stopped,
// and whether the WAL is flushed up to it: every commit acknowledged
// before the PAUSE ended is before that position.
func WrittenStmt(on string) Stmt {
	return Stmt{On: on, SQL: "SELECT i::text, pg_current_wal_flush_lsn() >= i FROM pg_current_wal_insert_lsn() i"}
}

// LastRecordEnd is where the last record before an insert position ends,
// as the walsender counts it: an insert position right after a page's
// short header (the previous record ended with the page) is the page's
// start. One after a segment's long header (40 bytes) is left as it is:
// without the segment size, 40 bytes into a page may also be the end of a
// record, and a target below a commit's end would end the drain too
// early; a target a header too far is reached by the drain's periodic
// flush instead.
func LastRecordEnd(insert LSN) LSN {
	const page, shortHeader = 8192, 24
	if uint64(insert)%page == shortHeader {
		return insert - shortHeader
	}
	return insert
}

// DrainTargetStmt reads the largest lag of the feed's slots and how many
// exist; the drain target itself is the LSN of the logical message that
// flushWAL writes right before (drainSteps).
func DrainTargetStmt(on string, slots []string) Stmt {
	return Stmt{On: on, Args: []any{slots}, SQL: `SELECT ` + slotApplyLag + `, count(*)
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = ANY($1)`}
}

// AppliedStmt asks, on the subscriber, whether every apply worker of subs
// has taken a keepalive from the source at or past lsn. An apply worker
// reads the stream in order and applies each transaction before it reads
// on, and it records a keepalive's position (latest_end_lsn) only when it
// handles one, after everything sent before it: so everything committed
// on the source before lsn is applied. (received_lsn would not do: it
// moves to a commit's position before that commit is applied.) It reads
// shared memory: no flush report to the source is waited for.
func AppliedStmt(on string, subs []string, lsn any) Stmt {
	return Stmt{On: on, Args: []any{subs, lsn}, SQL: `SELECT count(*) = cardinality($1::text[]) AND coalesce(bool_and(reported >= $2::pg_lsn), false)
FROM (SELECT subname, max(latest_end_lsn) AS reported FROM pg_stat_subscription
      WHERE subname = ANY($1) AND relid IS NULL GROUP BY subname) w`,
		Note: "every half millisecond until true (journaled once); the source's WAL is flushed every 10 polls, which wakes its walsender"}
}

// WaitApplied polls the subscriber until its apply workers of subs have
// applied everything the source wrote before lsn, and returns the
// subscriber's WAL insert position then: every applied change is before
// it. The apply workers commit asynchronously: the caller flushes the
// subscriber's WAL before any client reaches it.
//
// The slots' confirmed_flush_lsn on the source says the same later: it
// moves only when the subscriber next reports a flushed position, which it
// does when it wakes or a keepalive comes, so waiting for it added tens of
// ms to the pause.
func WaitApplied(ctx context.Context, src, dst *pgxpool.Conn, srcName, dstName string, subs []string, lsn string) (string, int, error) {
	for polls := 1; ; polls++ {
		var done bool
		if err := AppliedStmt(dstName, subs, lsn).QueryRow(ctx, dst, &done); err != nil {
			return "", polls, fmt.Errorf("wait for %s to apply up to %s: %w", strings.Join(subs, ", "), lsn, err)
		}
		if done {
			// Read after the check: whatever the check saw applied is
			// before this position.
			var at string
			err := InsertLSNStmt(dstName).QueryRow(ctx, dst, &at)
			return at, polls, err
		}
		if polls%10 == 0 {
			if _, err := FlushWAL(ctx, src, srcName); err != nil {
				return "", polls, err
			}
		}
		ctx = Quiet(ctx)
		select {
		case <-ctx.Done():
			return "", polls, fmt.Errorf("wait for %s to apply up to %s: %w", strings.Join(subs, ", "), lsn, ctx.Err())
		case <-time.After(500 * time.Microsecond):
		}
	}
}

func InsertLSNStmt(on string) Stmt {
	return Stmt{On: on, SQL: "SELECT pg_current_wal_insert_lsn()::text"}
}

// AnchorStmt sets where blue's reverse subscription starts reading green:
// its replication origin moves to at, green's position once everything
// blue sent is applied there, so what the reverse slot (made before the
// pause) holds from before is skipped and every write of the application
// on green after it is sent. The advance is WAL-logged but commits
// nothing: it is made durable by a flush before the subscription is
// enabled (swapSteps), after the switch, not inside the pause.
func AnchorStmt(on, sub string, at any) Stmt {
	return Stmt{On: on, Args: []any{sub, at}, SQL: `SELECT 'pg_' || s.oid, pg_replication_origin_advance('pg_' || s.oid, $2::pg_lsn) IS NULL
FROM pg_subscription s WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`}
}

// Anchor runs anchorStmt; the origin it moved.
func Anchor(ctx context.Context, c *pgxpool.Conn, on, sub, at string) (string, error) {
	var origin string
	var null bool
	err := AnchorStmt(on, sub, at).QueryRow(ctx, c, &origin, &null)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("set the start of subscription %s on %s: it does not exist", sub, on)
	}
	if err != nil {
		return "", fmt.Errorf("set the start of subscription %s on %s: %w", sub, on, err)
	}
	return origin, nil
}

// Anchored reports whether subscription sub on c has a start set (its
// origin has a remote_lsn): enabling it is safe only then.
func Anchored(ctx context.Context, c *pgxpool.Conn, sub string) (bool, error) {
	st, err := ReadOrigin(ctx, c, sub)
	return st.Progressed, err
}

// DisableSubscriptionStmts disable the subscriptions and end their apply
// workers at once (a disabled worker would otherwise notice only on its
// next wake-up), so nothing more is applied once they return.
func DisableSubscriptionStmts(on string, subs []string) []Stmt {
	var out []Stmt
	for _, s := range subs {
		out = append(out, DisableSubscriptionStmt(on, s))
	}
	return append(out, terminateStmt(on, "SELECT pid FROM pg_stat_subscription WHERE subname = ANY($1) AND pid IS NOT NULL", subs))
}

func DisableSubscriptions(ctx context.Context, c *pgxpool.Conn, on string, subs []string) error {
	stmts := DisableSubscriptionStmts(on, subs)
	if err := ExecAll(ctx, c, stmts[:len(stmts)-1]); err != nil {
		return err
	}
	if _, err := TerminateAndWait(ctx, c, stmts[len(stmts)-1]); err != nil {
		return fmt.Errorf("stop the apply workers of %s: %w", strings.Join(subs, ", "), err)
	}
	return nil
}

// DropSubscriptionStmts remove a subscription without touching the remote
// slot (dropped separately on the other side): disabled, its worker ended,
// detached from its slot, dropped.
func DropSubscriptionStmts(on, name string) []Stmt {
	out := DisableSubscriptionStmts(on, []string{name})
	return append(out, DetachSubscriptionStmt(on, name), DropSubscriptionStmt(on, name, false))
}

func DropSubscription(ctx context.Context, c *pgxpool.Conn, on, name string) error {
	stmts := DropSubscriptionStmts(on, name)
	n := len(stmts)
	if err := DisableSubscriptions(ctx, c, on, []string{name}); err != nil {
		return err
	}
	return ExecAll(ctx, c, stmts[n-2:])
}

// rolesToChange reads which of roles can log in where login is not what
// they should be.
func RolesToChange(ctx context.Context, c *pgxpool.Conn, roles []string, login bool) ([]string, error) {
	rows, err := c.Query(ctx, "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) AND rolcanlogin <> $2 ORDER BY 1", roles, login)
	if err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	return out, nil
}

// SetLogin gives roles LOGIN or NOLOGIN where they lack it and returns
// those it changed.
func SetLogin(ctx context.Context, c *pgxpool.Conn, on string, roles []string, login bool) ([]string, error) {
	change, err := RolesToChange(ctx, c, roles, login)
	if err != nil {
		return nil, err
	}
	return change, ExecAll(ctx, c, LoginStmts(on, change, login))
}

// WriterRoles finds every role that can write to the database: the
// configured application roles plus any login role that owns a table or
// may change one, except the replication role, the role this session
// logs in as (pgbluegreen's own: fencing it would lock pgbluegreen out,
// and the reverse subscription applies as it) and the system's roles.
func WriterRoles(ctx context.Context, pool *pgxpool.Pool, app []string, replication string) ([]string, error) {
	rows, err := pool.Query(ctx, `
SELECT r.rolname::text FROM pg_roles r
WHERE r.rolcanlogin AND r.rolname <> $2 AND r.rolname <> current_user
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

// terminateStmt signals the backends pidsQuery selects and returns their pids.
func terminateStmt(on, pidsQuery string, args ...any) Stmt {
	return Stmt{On: on, Args: args, SQL: "SELECT coalesce(array_agg(pid) FILTER (WHERE pg_terminate_backend(pid)), '{}') FROM (" + pidsQuery + ") t"}
}

// TerminateAndWait runs a terminateStmt and waits (polling every 2 ms;
// pg_terminate_backend's own wait polls every 100 ms) until the backends
// are gone. It returns how many it ended.
func TerminateAndWait(ctx context.Context, c *pgxpool.Conn, s Stmt) (int, error) {
	var pids []int32
	if err := s.QueryRow(ctx, c, &pids); err != nil {
		return 0, err
	}
	for len(pids) > 0 {
		var left int
		if err := c.QueryRow(Quiet(ctx), "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&left); err != nil {
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

// TerminateSessionsStmt ends the client sessions of roles (every role when
// roles is nil) in the databases dbs, except the pids in keep (the
// cutover's own) and the driver lock's session. Walsenders and background
// workers are left alone.
func TerminateSessionsStmt(on string, roles, dbs []string, keep any) Stmt {
	return terminateStmt(on, `SELECT pid FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid <> ALL($2::int[])
  AND coalesce(application_name, '') NOT LIKE $3 || '%'
  AND datname = ANY($4) AND ($1::text[] IS NULL OR usename = ANY($1))`, roles, keep, DriverApplicationPrefix, dbs)
}

// TerminatePidsStmt ends the given sessions (the ones that bypass PgBouncer).
func TerminatePidsStmt(on string, pids []int32) Stmt {
	return terminateStmt(on, "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[]) AND pid <> pg_backend_pid()", pids)
}

// ReadOnlyStmt sets or resets default_transaction_read_only for database
// db (new sessions only; the terminate ends the old ones).
func ReadOnlyStmt(on, db string, readOnly bool) Stmt {
	if readOnly {
		return Stmt{On: on, SQL: "ALTER DATABASE " + Ident(db) + " SET default_transaction_read_only = on"}
	}
	return Stmt{On: on, SQL: "ALTER DATABASE " + Ident(db) + " RESET default_transaction_read_only"}
}

// IsReadOnly reports whether the current database is set read-only.
func IsReadOnly(ctx context.Context, q RowQuerier) (bool, error) {
	var on bool
	err := q.QueryRow(ctx, `
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

// ProbeStmt is the probe write on a new session of on ("blue", "green",
// or "pgbouncer NAME" for one through PgBouncer as the application).
func ProbeStmt(on string) Stmt { return Stmt{On: on, SQL: probeSQL} }

// ProbeWrite opens a new session (so database-level settings apply) and
// runs the probe write.
func ProbeWrite(ctx context.Context, pool *pgxpool.Pool, on string) error {
	cfg := pool.Config().ConnConfig.Copy()
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect for a probe write: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return ProbeStmt(on).Exec(ctx, conn)
}

// IsReadOnlyError reports SQLSTATE 25006 (read_only_sql_transaction).
func IsReadOnlyError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "25006"
}

// AdvanceSlotStmt moves a logical slot to the current WAL position without
// sending anything; the end it reached must pass flushed (the flush marker
// written after everything the slot must skip).
func AdvanceSlotStmt(on, slot string, flushed any) Stmt {
	return Stmt{On: on, Args: []any{slot, flushed}, SQL: "SELECT end_lsn::text, end_lsn >= $2::pg_lsn FROM pg_replication_slot_advance($1, pg_current_wal_lsn())"}
}

// AdvanceSlots moves logical slots past what the other side already has.
// pg_replication_slot_advance stops at the flushed position, and the
// reverse feed's commits are asynchronous: the WAL is flushed first, and
// the position each slot reached is checked.
func AdvanceSlots(ctx context.Context, c *pgxpool.Conn, on string, slots []string) (string, error) {
	flushed, err := FlushWAL(ctx, c, on)
	if err != nil {
		return "", err
	}
	var lsn string
	for _, s := range slots {
		// The end reached can sit a page header short of the position
		// asked for; what matters is that it passed the flush marker.
		var reached bool
		if err := AdvanceSlotStmt(on, s, flushed).QueryRow(ctx, c, &lsn, &reached); err != nil {
			return "", fmt.Errorf("advance slot %s: %w", s, err)
		}
		if !reached {
			return "", fmt.Errorf("advance slot %s: it stopped at %s, before %s (WAL not flushed)", s, lsn, flushed)
		}
	}
	return lsn, nil
}

// ScrubPassword keeps a password out of an error text.
func ScrubPassword(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "********"))
}

// FlushedStmt asks whether the WAL is flushed up to at.
func FlushedStmt(on string, at any) Stmt {
	return Stmt{On: on, Args: []any{at}, SQL: "SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn", Note: "when true, nothing more is flushed"}
}
