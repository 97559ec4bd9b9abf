package pg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// cutEnv holds what a cutover uses inside the pause, opened before it.
type cutEnv struct {
	from, to *pgxpool.Conn
	// toSide and fromSide are second connections, for what runs at the
	// same time as the drain (the release of held commits) or the feeds'
	// swap (the logins): opened before the pause.
	toSide, fromSide *pgxpool.Conn
	consoles         []*Console
	// inis are each PgBouncer's ini store, in the order of the consoles:
	// an SSH store keeps its connection from the precheck to the repoint.
	inis                   []IniStore
	fromVersion, toVersion string
	// fromDB and toDB are the databases' names, as the servers say.
	fromDB, toDB string
	names        [2]string // from's and to's side names
}

func (e *cutEnv) close() {
	for _, c := range e.consoles {
		c.Close()
	}
	for _, s := range e.inis {
		s.Close()
	}
	if e.from != nil {
		e.from.Release()
	}
	if e.to != nil {
		e.to.Release()
	}
	for _, c := range []*pgxpool.Conn{e.toSide, e.fromSide} {
		if c != nil {
			c.Release()
		}
	}
}

// broken says whether a held connection was closed, as a cancelled
// statement closes it.
func (e *cutEnv) broken() bool {
	for _, c := range []*pgxpool.Conn{e.from, e.to, e.fromSide, e.toSide} {
		if c == nil || c.Conn().IsClosed() {
			return true
		}
	}
	for _, c := range e.consoles {
		if c.Closed() {
			return true
		}
	}
	return false
}

// conn returns the held connection to blue or green.
func (e *cutEnv) conn(name string) *pgxpool.Conn {
	if e.names[0] == name {
		return e.from
	}
	return e.to
}

// pids are the source-side sessions the cutover holds.
func (e *cutEnv) pids() []int32 {
	return []int32{int32(e.from.Conn().PgConn().PID())}
}

// open acquires the connections the cutover holds to the end, and reads
// p.Prior when the caller has none.
func (r *run) open(ctx context.Context) (*cutEnv, error) {
	d := r.d
	e := &cutEnv{names: [2]string{d.from.name, d.to.name}}
	var err error
	if e.from, err = d.from.pool.Acquire(ctx); err != nil {
		return e, fmt.Errorf("connect to %s: %w", d.from.name, err)
	}
	if e.to, err = d.to.pool.Acquire(ctx); err != nil {
		return e, fmt.Errorf("connect to %s: %w", d.to.name, err)
	}
	if e.fromSide, err = d.from.pool.Acquire(ctx); err != nil {
		return e, fmt.Errorf("connect to %s: %w", d.from.name, err)
	}
	if e.toSide, err = d.to.pool.Acquire(ctx); err != nil {
		return e, fmt.Errorf("connect to %s: %w", d.to.name, err)
	}

	// A side made read-only by the readonly method must still take the
	// cutover's own writes (setval, ALTER SUBSCRIPTION) on these sessions.
	// A session setting changes nothing on the server: it is not journaled.
	// Its own commits on the source never wait for a synchronous standby
	// (an HA one, or the hold of cutover_hold.go).
	for _, c := range []*pgxpool.Conn{e.from, e.fromSide} {
		for _, st := range []Stmt{readWriteSessionStmt(d.from.name), {On: d.from.name, SQL: "SET synchronous_commit = local"}} {
			if err := st.Exec(Quiet(ctx), c); err != nil {
				return e, fmt.Errorf("prepare session: %w", err)
			}
		}
	}
	for _, c := range []*pgxpool.Conn{e.to, e.toSide} {
		if err := readWriteSessionStmt(d.to.name).Exec(Quiet(ctx), c); err != nil {
			return e, fmt.Errorf("prepare session: %w", err)
		}
	}
	if err := e.from.QueryRow(ctx, "SELECT version(), current_database()").Scan(&e.fromVersion, &e.fromDB); err != nil {
		return e, fmt.Errorf("read %s's version: %w", d.from.name, err)
	}
	if err := e.to.QueryRow(ctx, "SELECT version(), current_database()").Scan(&e.toVersion, &e.toDB); err != nil {
		return e, fmt.Errorf("read %s's version: %w", d.to.name, err)
	}
	if r.p.Method == MethodPgBouncer {
		for _, b := range r.p.Bouncers {
			c, err := ConnectConsole(ctx, b.Name, b.AdminConninfo, r.p.StatementTimeout)
			if err != nil {
				return e, err
			}
			e.consoles = append(e.consoles, c)
			e.inis = append(e.inis, b.NewIniStore())
		}
	}
	if r.p.Prior == nil {
		prior := Prior{LoginRetry: map[string]string{}}
		for k, c := range e.consoles {
			cfg, err := c.Config(ctx)
			if err != nil {
				return e, err
			}
			prior.LoginRetry[r.p.Bouncers[k].Name] = cfg["server_login_retry"]
		}
		if prior.TargetReadOnly, err = isReadOnly(ctx, e.to); err != nil {
			return e, err
		}
		r.p.Prior = &prior
	}
	return e, nil
}

// precheck runs every check before anything changes; each is reported. It
// returns the failed ones.
func (r *run) precheck(ctx context.Context) []Check {
	p, d, f, e := r.p, r.d, r.f, r.e
	var checks []Check
	// Each check has its own time limit: one slow answer must not eat the
	// others' time.
	bound := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, p.StatementTimeout) }
	add := func(c Check) {
		checks = append(checks, c)
		if p.OnPrecheck != nil {
			p.OnPrecheck(c)
		}
	}
	result := func(name, detail string, err error) Check {
		if err != nil {
			return Check{Name: name, Detail: err.Error()}
		}
		return Check{Name: name, OK: true, Detail: detail}
	}
	// A feed enabled moments ago (a way out, the previous attempt) gets
	// its worker back within wal_retrieve_retry_interval: the first two
	// checks give it that long before they refuse.
	cctx, cancel := context.WithTimeout(ctx, workerWait)
	detail, err := retryWhile(cctx, errNoSubscriber, func(ctx context.Context) (string, error) {
		return checkLag(ctx, e.from, f.drainSlots, p.MaxLagBytes)
	})
	cancel()
	add(result(fmt.Sprintf("lag below %d bytes", p.MaxLagBytes), detail, err))
	cctx, cancel = context.WithTimeout(ctx, workerWait)
	add(r.checkHealth(cctx))
	cancel()
	cctx, cancel = bound()
	add(r.checkRoles(cctx))
	cancel()
	if p.Method == MethodPgBouncer {
		results := make([]Check, len(p.Bouncers))
		var wg sync.WaitGroup
		for k, b := range p.Bouncers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := bound()
				defer cancel()
				detail, err := checkBouncer(ctx, e.consoles[k], e.inis[k], b, d.from.endpoint, e.fromVersion)
				results[k] = result("pgbouncer "+b.Name, detail, err)
			}()
		}
		wg.Wait()
		for _, c := range results {
			add(c)
		}
		cctx, cancel = bound()
		add(r.checkDirectSessions(cctx))
		cancel()
	}
	cctx, cancel = bound()
	coll, err := SequenceCollisions(cctx, e.from, e.to)
	cancel()
	switch {
	case err == nil && len(coll) > 0:
		err = fmt.Errorf("%s", strings.Join(coll, "; "))
	}
	add(result("sequences will not collide", "every sequence exists on "+d.to.name+" and none is ahead there", err))
	cctx, cancel = bound()
	if d.rollback {
		detail, err = checkForwardRestartable(cctx, e.to, e.from, f.startSlots, f.startSubs) // rollback: to is blue
	} else {
		detail, err = checkReversePrereqs(cctx, e.from, e.to, p)
	}
	cancel()
	add(result("reverse replication prerequisites", detail, err))
	r.rep.Prechecks = checks
	var failed []Check
	for _, c := range checks {
		if !c.OK {
			failed = append(failed, c)
		}
	}
	return failed
}

// workerWait is how long a precheck waits for an apply worker that is not
// running yet (PostgreSQL restarts one at most every
// wal_retrieve_retry_interval, 5 s by default).
const workerWait = 12 * time.Second

// errNoSubscriber marks a slot or subscription whose worker is not running.
var errNoSubscriber = errors.New("no apply worker running")

// retryWhile runs f until it returns an error other than one wrapping
// transient, or ctx ends (then the last result stands).
func retryWhile(ctx context.Context, transient error, f func(ctx context.Context) (string, error)) (string, error) {
	for {
		detail, err := f(ctx)
		if err == nil || !errors.Is(err, transient) {
			return detail, err
		}
		select {
		case <-ctx.Done():
			return detail, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// slotApplyLag is the largest lag of the slots s (each joined to its
// walsender r in pg_stat_replication) in bytes: behind what the subscriber
// has applied (replay_lsn, which it reports after every batch), or, where
// that is not visible, behind its flushed position (confirmed_flush_lsn,
// which trails by up to the subscriber's next WAL flush and report: a
// second of writes at 1,000 writes/s).
const slotApplyLag = `coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(r.replay_lsn, s.confirmed_flush_lsn))), 0)::bigint`

func checkLag(ctx context.Context, c *pgxpool.Conn, slots []string, maxLag int64) (string, error) {
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
		return "", fmt.Errorf("slot %s has no subscriber connected: %w", strings.Join(inactive, ", "), errNoSubscriber)
	case lag > maxLag:
		return "", fmt.Errorf("lag is %d bytes, more than %d: wait for green to catch up", lag, maxLag)
	}
	return fmt.Sprintf("largest lag %d bytes", lag), nil
}

// checkHealth: every subscription of the drained feed applying, every
// table ready, and no apply or sync error counted within the health
// window. pg_stat_subscription_stats keeps only lifetime counters, so a
// count is dated by when it was first seen (Health.Known, KnownAt): one
// that grew since, or within the window, refuses; older ones only warn.
func (r *run) checkHealth(ctx context.Context) Check {
	for {
		c := r.checkHealthOnce(ctx)
		if c.OK || !errors.Is(c.err, errNoSubscriber) {
			return c.Check
		}
		select {
		case <-ctx.Done():
			return c.Check
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type healthCheck struct {
	Check
	err error
}

func (r *run) checkHealthOnce(ctx context.Context) healthCheck {
	subs := r.f.drainSubs
	name := "subscriptions healthy"
	var n, running, notReady int
	var errs int64
	err := r.e.to.QueryRow(ctx, `
SELECT count(*),
       count(*) FILTER (WHERE s.subenabled AND EXISTS (SELECT 1 FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.relid IS NULL AND w.pid IS NOT NULL)),
       (SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s2 ON s2.oid = r.srsubid WHERE s2.subname = ANY($1) AND r.srsubstate <> 'r'),
       coalesce((SELECT sum(apply_error_count + sync_error_count) FROM pg_stat_subscription_stats WHERE subname = ANY($1)), 0)::bigint
FROM pg_subscription s WHERE s.subname = ANY($1) AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, subs).Scan(&n, &running, &notReady, &errs)
	r.rep.ErrorCount = errs
	h := r.p.Health
	switch {
	case err != nil:
		return healthCheck{Check: Check{Name: name, Detail: "read the subscriptions: " + err.Error()}}
	case n != len(subs):
		return healthCheck{Check: Check{Name: name, Detail: fmt.Sprintf("found %d of the subscriptions %s", n, strings.Join(subs, ", "))}}
	case running != n:
		return healthCheck{Check{Name: name, Detail: fmt.Sprintf("%d of %d subscriptions have no apply worker running (disabled, or failing: see the server log)", n-running, n)}, errNoSubscriber}
	case notReady > 0:
		return healthCheck{Check: Check{Name: name, Detail: fmt.Sprintf("%d tables are still in their initial copy", notReady)}}
	case errs > h.Known:
		return healthCheck{Check: Check{Name: name, Detail: fmt.Sprintf("%d apply/sync error(s) counted in pg_stat_subscription_stats since they were last read (%d then): errors are happening now; read the subscriber's log, fix the cause, and wait %s without a new one", errs-h.Known, h.Known, h.Window)}}
	case errs > 0 && !h.KnownAt.IsZero() && time.Since(h.KnownAt) < h.Window:
		return healthCheck{Check: Check{Name: name, Detail: fmt.Sprintf("the last apply/sync error was counted at %s, within the health window (%s): wait until %s without a new one", h.KnownAt.Format(time.RFC3339), h.Window, h.KnownAt.Add(h.Window).Format(time.RFC3339))}}
	case errs > 0:
		return healthCheck{Check: Check{Name: name, OK: true, Warn: true, Detail: fmt.Sprintf("%d subscriptions applying, every table ready; %d apply/sync error(s) counted before %s, none since (older than the %s window)", n, errs, orUnknown(h.KnownAt), h.Window)}}
	}
	return healthCheck{Check: Check{Name: name, OK: true, Detail: fmt.Sprintf("%d subscriptions applying, every table ready, no errors", n)}}
}

func orUnknown(t time.Time) string {
	if t.IsZero() {
		return "now"
	}
	return t.Format(time.RFC3339)
}

// checkRoles: the application does not log in as pgbluegreen's own role
// (fencing it would lock pgbluegreen out, and its sessions could never be
// told from the application's).
func (r *run) checkRoles(ctx context.Context) Check {
	name := "application roles are not pgbluegreen's"
	var me string
	if err := r.e.from.QueryRow(ctx, "SELECT current_user").Scan(&me); err != nil {
		return Check{Name: name, Detail: err.Error()}
	}
	if slices.Contains(r.p.AppRoles, me) || slices.Contains(r.p.FenceRoles, me) {
		return Check{Name: name, Detail: fmt.Sprintf("the application logs in as %s, the role pgbluegreen connects as: blue could not be fenced after the switch. Give pgbluegreen its own role (CREATE ROLE pgbg_admin LOGIN SUPERUSER, or rds_superuser on RDS) and use it in blue.conninfo and green.conninfo, or give the application its own role", me)}
	}
	return Check{Name: name, OK: true, Detail: fmt.Sprintf("pgbluegreen connects as %s; fenced after the switch: %s", me, orNone(r.p.FenceRoles))}
}

// checkDirectSessions: sessions on the source that do not come through a
// configured PgBouncer keep writing to it after the switch. They refuse
// the cutover unless the operator lets them be ended (TerminateDirect).
func (r *run) checkDirectSessions(ctx context.Context) Check {
	name := "no session bypasses PgBouncer"
	direct, err := r.directSessions(ctx)
	switch {
	case err != nil:
		return Check{Name: name, Detail: err.Error()}
	case len(direct) == 0:
		return Check{Name: name, OK: true, Detail: "every application session on " + r.d.from.name + " comes through PgBouncer"}
	case r.p.TerminateDirect:
		return Check{Name: name, OK: true, Warn: true, Detail: fmt.Sprintf("%d session(s) bypass PgBouncer and will be ended right after the PAUSE: %s", len(direct), sessionList(direct))}
	}
	return Check{Name: name, Detail: fmt.Sprintf("%d session(s) on %s do not come through PgBouncer and would keep writing there after the switch: %s; stop them, or let the cutover end them (cutover.terminate_direct_sessions: true)", len(direct), r.d.from.name, sessionList(direct))}
}

// directSessions are the client sessions of the source's database that
// are neither PgBouncer's server connections (SHOW SERVERS remote_pid),
// nor pgbluegreen's own. It reads twice and keeps what both reads agree
// on, so a server connection PgBouncer opens or closes meanwhile is not
// taken for a stray session.
func (r *run) directSessions(ctx context.Context) ([]Session, error) {
	read := func() (map[int32]Session, error) {
		all, err := ReadSessions(ctx, r.e.from)
		if err != nil {
			return nil, err
		}
		servers := map[int32]bool{}
		for _, c := range r.e.consoles {
			pids, err := c.ServerPIDs(ctx)
			if err != nil {
				return nil, err
			}
			for _, p := range pids {
				servers[p] = true
			}
		}
		out := map[int32]Session{}
		for _, s := range all {
			if !servers[s.PID] && !s.Ours {
				out[s.PID] = s
			}
		}
		return out, nil
	}
	first, err := read()
	if err != nil || len(first) == 0 {
		return nil, err
	}
	second, err := read()
	if err != nil {
		return nil, err
	}
	var out []Session
	for pid, s := range second {
		if _, ok := first[pid]; ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Session) int { return int(a.PID - b.PID) })
	return out, nil
}

// checkBouncer: pointing at the source, transaction pooling, not paused,
// its ini (read where it lives: over SSH, an SSH host key verified) saying
// the same as SHOW DATABASES, and a client connection reaching the
// source's server.
func checkBouncer(ctx context.Context, c *Console, ini IniStore, b BouncerParams, want Endpoint, wantVersion string) (string, error) {
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
	iniSays := "ini " + ini.Where() + " agrees"
	entry, err := ini.ReadEntry(ctx, b.Database)
	switch {
	case errors.Is(err, ErrIniUnreadable):
		iniSays = "ini not readable here (SHOW DATABASES only)"
	case err != nil:
		return "", err
	case entry.Get("host") != want.Host || entry.Get("port") != fmt.Sprint(want.Port):
		return "", fmt.Errorf("%s points database %s at %s:%s, not %s (a later RELOAD would move it)", ini.Where(), b.Database, entry.Get("host"), entry.Get("port"), want)
	}
	v, err := versionThrough(ctx, b.ClientConninfo)
	if err != nil {
		return "", err
	}
	if v != wantVersion {
		return "", fmt.Errorf("SELECT version() through PgBouncer says %q, not the expected server", v)
	}
	return fmt.Sprintf("%s -> %s:%d, transaction pooling, not paused; %s", b.Database, d.Host, d.Port, iniSays), nil
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
	var subActive, canAnchor bool
	err = blue.QueryRow(ctx, `
SELECT current_setting('max_logical_replication_workers')::int,
       EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1 AND subenabled),
       has_function_privilege((SELECT oid FROM pg_proc WHERE proname = 'pg_replication_origin_advance' AND pronargs = 2), 'EXECUTE')`, p.Reverse).Scan(&workers, &subActive, &canAnchor)
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
		return "", fmt.Errorf("subscription %s on blue is enabled already: a cutover is in force", p.Reverse)
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
