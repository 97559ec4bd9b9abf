package pg

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
)

// feeds names the replication a direction drains (from -> to) and the one
// it starts (to -> from).
type feeds struct {
	drainSlots, drainSubs []string // slots on from, subscriptions on to
	startSlots, startSubs []string // slots on to, subscriptions on from
}

func (p *CutoverParams) feeds(rollback bool) feeds {
	fwd, rev := p.Subscriptions, []string{p.Reverse}
	if rollback {
		return feeds{drainSlots: rev, drainSubs: rev, startSlots: fwd, startSubs: fwd}
	}
	return feeds{drainSlots: fwd, drainSubs: fwd, startSlots: rev, startSubs: rev}
}

// cutEnv holds what a cutover uses inside the pause, opened before it.
type cutEnv struct {
	from, to                 *pgxpool.Conn
	consoles                 []*Console
	fromVersion, toVersion   string
	fromReadOnly, toReadOnly bool
	// loginRetry is each PgBouncer's server_login_retry before the switch.
	loginRetry []string
}

func (e *cutEnv) close() {
	for _, c := range e.consoles {
		c.Close()
	}
	if e.from != nil {
		e.from.Release()
	}
	if e.to != nil {
		e.to.Release()
	}

}

// pids are the source-side sessions the cutover holds.
func (e *cutEnv) pids() []uint32 {
	return []uint32{e.from.Conn().PgConn().PID()}
}

// open acquires the connections the cutover holds to the end.
func (r *run) open(ctx context.Context, d direction) (*cutEnv, error) {
	e := &cutEnv{}
	var err error
	if e.from, err = d.from.pool.Acquire(ctx); err != nil {
		return e, fmt.Errorf("connect to %s: %w", d.from.name, err)
	}
	if e.to, err = d.to.pool.Acquire(ctx); err != nil {
		return e, fmt.Errorf("connect to %s: %w", d.to.name, err)
	}

	// A side made read-only by the readonly method must still take the
	// cutover's own writes (setval, ALTER SUBSCRIPTION) on these sessions.
	for _, c := range []*pgxpool.Conn{e.from, e.to} {
		if _, err := c.Exec(ctx, "SET default_transaction_read_only = off"); err != nil {
			return e, fmt.Errorf("prepare session: %w", err)
		}
	}
	if err := e.from.QueryRow(ctx, "SELECT version()").Scan(&e.fromVersion); err != nil {
		return e, fmt.Errorf("read %s's version: %w", d.from.name, err)
	}
	if err := e.to.QueryRow(ctx, "SELECT version()").Scan(&e.toVersion); err != nil {
		return e, fmt.Errorf("read %s's version: %w", d.to.name, err)
	}
	if r.p.Method == MethodPgBouncer {
		for _, b := range r.p.Bouncers {
			c, err := ConnectConsole(ctx, b.Name, b.AdminConninfo, r.p.StatementTimeout)
			if err != nil {
				return e, err
			}
			e.consoles = append(e.consoles, c)
			cfg, err := c.Config(ctx)
			if err != nil {
				return e, err
			}
			e.loginRetry = append(e.loginRetry, cfg["server_login_retry"])
		}
	}
	return e, nil
}

// precheck runs every check before anything changes; each is reported.
func (r *run) precheck(ctx context.Context, d direction, e *cutEnv, rollback bool) []Check {
	f := r.p.feeds(rollback)
	var checks []Check
	// Each check has its own time limit: one slow answer must not eat the
	// others' time.
	bound := func() (context.Context, context.CancelFunc) { return r.timeout(ctx) }
	add := func(name string, detail string, err error) {
		c := Check{Name: name, OK: err == nil, Detail: detail}
		if err != nil {
			c.Detail = err.Error()
		}
		checks = append(checks, c)
		if r.p.OnPrecheck != nil {
			r.p.OnPrecheck(c)
		}
	}
	cctx, cancel := bound()
	detail, err := checkLag(cctx, e.from, f.drainSlots, r.p.MaxLagBytes)
	cancel()
	add("lag below "+fmt.Sprint(r.p.MaxLagBytes)+" bytes", detail, err)
	cctx, cancel = bound()
	detail, err = checkSubscriptions(cctx, e.to, f.drainSubs)
	cancel()
	add("subscriptions healthy", detail, err)
	if r.p.Method == MethodPgBouncer {
		if len(r.p.Bouncers) == 0 {
			add("pgbouncer", "", fmt.Errorf("no PgBouncer configured"))
		}
		results := make([]Check, len(r.p.Bouncers))
		var wg sync.WaitGroup
		for k, b := range r.p.Bouncers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := bound()
				defer cancel()
				detail, err := checkBouncer(ctx, e.consoles[k], b, d.from.endpoint, e.fromVersion)
				results[k] = Check{Name: "pgbouncer " + b.Name, OK: err == nil, Detail: detail}
				if err != nil {
					results[k].Detail = err.Error()
				}
			}()
		}
		wg.Wait()
		checks = append(checks, results...)
	}
	cctx, cancel = bound()
	coll, err := SequenceCollisions(cctx, e.from, e.to)
	cancel()
	switch {
	case err != nil:
		add("sequences will not collide", "", err)
	case len(coll) > 0:
		add("sequences will not collide", "", fmt.Errorf("%s", strings.Join(coll, "; ")))
	default:
		add("sequences will not collide", "every sequence exists on "+d.to.name+" and none is ahead there", nil)
	}
	cctx, cancel = bound()
	if rollback {
		detail, err = checkForwardRestartable(cctx, e.to, e.from, f.startSlots, f.startSubs) // rollback: to is blue
	} else {
		detail, err = checkReversePrereqs(cctx, e.from, e.to, r.p)
	}
	cancel()
	add("reverse replication prerequisites", detail, err)
	return checks
}

func checkLag(ctx context.Context, c *pgxpool.Conn, slots []string, maxLag int64) (string, error) {
	var n int
	var lag int64
	var inactive []string
	err := c.QueryRow(ctx, `
SELECT count(*), coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)::bigint,
       coalesce(array_agg(slot_name::text) FILTER (WHERE NOT active), '{}')
FROM pg_replication_slots WHERE slot_name = ANY($1)`, slots).Scan(&n, &lag, &inactive)
	switch {
	case err != nil:
		return "", fmt.Errorf("read the slots: %w", err)
	case n != len(slots):
		return "", fmt.Errorf("found %d of the slots %s", n, strings.Join(slots, ", "))
	case len(inactive) > 0:
		return "", fmt.Errorf("slot %s has no subscriber connected", strings.Join(inactive, ", "))
	case lag > maxLag:
		return "", fmt.Errorf("lag is %d bytes, more than %d: wait for green to catch up", lag, maxLag)
	}
	return fmt.Sprintf("largest lag %d bytes", lag), nil
}

func checkSubscriptions(ctx context.Context, c *pgxpool.Conn, subs []string) (string, error) {
	var n, running, notReady int
	var errs int64
	err := c.QueryRow(ctx, `
SELECT count(*),
       count(*) FILTER (WHERE s.subenabled AND EXISTS (SELECT 1 FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.relid IS NULL AND w.pid IS NOT NULL)),
       (SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s2 ON s2.oid = r.srsubid WHERE s2.subname = ANY($1) AND r.srsubstate <> 'r'),
       coalesce((SELECT sum(apply_error_count + sync_error_count) FROM pg_stat_subscription_stats WHERE subname = ANY($1)), 0)::bigint
FROM pg_subscription s WHERE s.subname = ANY($1) AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, subs).Scan(&n, &running, &notReady, &errs)
	switch {
	case err != nil:
		return "", fmt.Errorf("read the subscriptions: %w", err)
	case n != len(subs):
		return "", fmt.Errorf("found %d of the subscriptions %s", n, strings.Join(subs, ", "))
	case running != n:
		return "", fmt.Errorf("%d of %d subscriptions have no apply worker running (disabled, or failing: see the server log)", n-running, n)
	case notReady > 0:
		return "", fmt.Errorf("%d tables are still in their initial copy", notReady)
	case errs > 0:
		return "", fmt.Errorf("%d apply/sync errors counted in pg_stat_subscription_stats: fix the cause, then SELECT pg_stat_reset_subscription_stats(NULL)", errs)
	}
	return fmt.Sprintf("%d subscriptions applying, every table ready, no errors", n), nil
}

// checkBouncer: pointing at the source, transaction pooling, not paused, and
// a client connection reaching the source's server.
func checkBouncer(ctx context.Context, c *Console, b BouncerParams, want Endpoint, wantVersion string) (string, error) {
	d, err := c.Database(ctx, b.Database)
	if err != nil {
		return "", err
	}
	if d.Host != want.Host || d.Port != want.Port {
		return "", fmt.Errorf("database %s points at %s:%d, not %s", b.Database, d.Host, d.Port, want)
	}
	if d.Paused {
		return "", fmt.Errorf("database %s is paused: RESUME it first", b.Database)
	}
	mode, err := c.PoolMode(ctx, b.Database)
	if err != nil {
		return "", err
	}
	if mode != "transaction" {
		return "", fmt.Errorf("pool_mode is %s: PAUSE completes only in transaction mode", mode)
	}
	entry, err := ReadBouncerEntry(b.Ini, b.Database)
	if err != nil {
		return "", err
	}
	if entry.Get("host") != want.Host || entry.Get("port") != fmt.Sprint(want.Port) {
		return "", fmt.Errorf("%s points database %s at %s:%s, not %s (a later RELOAD would move it)", b.Ini, b.Database, entry.Get("host"), entry.Get("port"), want)
	}
	v, err := versionThrough(ctx, b.ClientConninfo)
	if err != nil {
		return "", err
	}
	if v != wantVersion {
		return "", fmt.Errorf("SELECT version() through PgBouncer says %q, not the expected server", v)
	}
	return fmt.Sprintf("%s -> %s:%d, transaction pooling, not paused", b.Database, d.Host, d.Port), nil
}

func checkReversePrereqs(ctx context.Context, blue, green *pgxpool.Conn, p *CutoverParams) (string, error) {
	if p.ReplicationPassword == "" {
		return "", fmt.Errorf("no password for replication role %s", p.ReplicationRole)
	}
	var walLevel string
	var freeSlots, freeSenders int
	var roleOK, slotActive bool
	err := green.QueryRow(ctx, `
SELECT current_setting('wal_level'),
       current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots),
       current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication),
       EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1 AND rolcanlogin AND (rolreplication OR rolsuper)),
       EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $2 AND active)`, p.ReplicationRole, p.Reverse).
		Scan(&walLevel, &freeSlots, &freeSenders, &roleOK, &slotActive)
	if err != nil {
		return "", fmt.Errorf("read green's settings: %w", err)
	}
	switch {
	case walLevel != "logical":
		return "", fmt.Errorf("green's wal_level is %s: set it to logical and restart green", walLevel)
	case freeSlots < 1 || freeSenders < 1:
		return "", fmt.Errorf("green has no free replication slot or walsender: raise max_replication_slots / max_wal_senders")
	case !roleOK:
		return "", fmt.Errorf("role %s does not exist on green with LOGIN and REPLICATION", p.ReplicationRole)
	case slotActive:
		return "", fmt.Errorf("slot %s on green is in use already", p.Reverse)
	}
	var workers int
	var subActive bool
	err = blue.QueryRow(ctx, `
SELECT current_setting('max_logical_replication_workers')::int,
       EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1 AND subenabled)`, p.Reverse).Scan(&workers, &subActive)
	if err != nil {
		return "", fmt.Errorf("read blue's settings: %w", err)
	}
	if workers < 1 {
		return "", fmt.Errorf("blue's max_logical_replication_workers is 0")
	}
	if subActive {
		return "", fmt.Errorf("subscription %s on blue is enabled already: a cutover ran before", p.Reverse)
	}
	return fmt.Sprintf("green: wal_level logical, %d free slots; role %s can replicate", freeSlots, p.ReplicationRole), nil
}

// checkForwardRestartable: for a rollback, the forward slots still exist on
// blue, unused, and the forward subscriptions on green are disabled.
func checkForwardRestartable(ctx context.Context, blue, green *pgxpool.Conn, slots, subs []string) (string, error) {
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
