package cutover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// cutEnv holds what a cutover uses inside the pause, opened before it.
type cutEnv struct {
	from, to *pgxpool.Conn
	// toSide and fromSide are second connections, for what runs at the
	// same time as the drain (the release of held commits) or the feeds'
	// swap (the logins): opened before the pause.
	toSide, fromSide *pgxpool.Conn
	consoles         []*pg.Console
	// inis are each PgBouncer's ini store, in the order of the consoles:
	// an SSH store keeps its connection from the precheck to the repoint.
	inis                   []pg.IniStore
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
		for _, st := range []pg.Stmt{pg.ReadWriteSessionStmt(d.from.name), pg.SyncLocalStmt(d.from.name)} {
			if err := st.Exec(pg.Quiet(ctx), c); err != nil {
				return e, fmt.Errorf("prepare session: %w", err)
			}
		}
	}
	for _, c := range []*pgxpool.Conn{e.to, e.toSide} {
		if err := pg.ReadWriteSessionStmt(d.to.name).Exec(pg.Quiet(ctx), c); err != nil {
			return e, fmt.Errorf("prepare session: %w", err)
		}
	}
	if e.fromVersion, e.fromDB, err = pg.ReadVersionAndDatabase(ctx, e.from); err != nil {
		return e, fmt.Errorf("read %s's version: %w", d.from.name, err)
	}
	if e.toVersion, e.toDB, err = pg.ReadVersionAndDatabase(ctx, e.to); err != nil {
		return e, fmt.Errorf("read %s's version: %w", d.to.name, err)
	}
	if r.p.Method == MethodPgBouncer {
		for _, b := range r.p.Bouncers {
			c, err := pg.ConnectConsole(ctx, b.Name, b.AdminConninfo, r.p.StatementTimeout)
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
		if prior.TargetReadOnly, err = pg.IsReadOnly(ctx, e.to); err != nil {
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
		p.Hooks.PrecheckDone(c)
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
	detail, err := retryWhile(cctx, pg.ErrNoSubscriber, func(ctx context.Context) (string, error) {
		return pg.CheckLag(ctx, e.from, f.drainSlots, p.MaxLagBytes)
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
	coll, err := pg.SequenceCollisions(cctx, e.from, e.to)
	cancel()
	switch {
	case err == nil && len(coll) > 0:
		err = fmt.Errorf("%s", strings.Join(coll, "; "))
	}
	add(result("sequences will not collide", "every sequence exists on "+d.to.name+" and none is ahead there", err))
	cctx, cancel = bound()
	if d.rollback {
		detail, err = pg.CheckForwardRestartable(cctx, e.to, e.from, f.startSlots, f.startSubs) // rollback: to is blue
	} else {
		detail, err = pg.CheckReversePrereqs(cctx, e.from, e.to, pg.ReversePrereqs{Name: p.Reverse, Role: p.ReplicationRole, Password: p.ReplicationPassword})
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

// checkHealth: every subscription of the drained feed applying, every
// table ready, and no apply or sync error counted within the health
// window. pg_stat_subscription_stats keeps only lifetime counters, so a
// count is dated by when it was first seen (Health.Known, KnownAt): one
// that grew since, or within the window, refuses; older ones only warn.
func (r *run) checkHealth(ctx context.Context) Check {
	for {
		c := r.checkHealthOnce(ctx)
		if c.OK || !errors.Is(c.err, pg.ErrNoSubscriber) {
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
	fh, err := pg.ReadFeedHealth(ctx, r.e.to, subs)
	n, running, notReady, errs := fh.Found, fh.Running, fh.NotReady, fh.Errors
	r.rep.ErrorCount = errs
	h := r.p.Health
	switch {
	case err != nil:
		return healthCheck{Check: Check{Name: name, Detail: "read the subscriptions: " + err.Error()}}
	case n != len(subs):
		return healthCheck{Check: Check{Name: name, Detail: fmt.Sprintf("found %d of the subscriptions %s", n, strings.Join(subs, ", "))}}
	case running != n:
		return healthCheck{Check{Name: name, Detail: fmt.Sprintf("%d of %d subscriptions have no apply worker running (disabled, or failing: see the server log)", n-running, n)}, pg.ErrNoSubscriber}
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
	me, err := pg.CurrentUser(ctx, r.e.from)
	if err != nil {
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
		return Check{Name: name, OK: true, Warn: true, Detail: fmt.Sprintf("%d session(s) bypass PgBouncer and will be ended right after the PAUSE: %s", len(direct), pg.SessionList(direct))}
	}
	return Check{Name: name, Detail: fmt.Sprintf("%d session(s) on %s do not come through PgBouncer and would keep writing there after the switch: %s; stop them, or let the cutover end them (cutover.terminate_direct_sessions: true)", len(direct), r.d.from.name, pg.SessionList(direct))}
}

// directSessions are the client sessions of the source's database that
// are neither PgBouncer's server connections (SHOW SERVERS remote_pid),
// nor pgbluegreen's own. It reads twice and keeps what both reads agree
// on, so a server connection PgBouncer opens or closes meanwhile is not
// taken for a stray session.
func (r *run) directSessions(ctx context.Context) ([]pg.Session, error) {
	read := func() (map[int32]pg.Session, error) {
		all, err := pg.ReadSessions(ctx, r.e.from)
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
		out := map[int32]pg.Session{}
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
	var out []pg.Session
	for pid, s := range second {
		if _, ok := first[pid]; ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b pg.Session) int { return int(a.PID - b.PID) })
	return out, nil
}

// checkBouncer: pointing at the source, transaction pooling, not paused,
// its ini (read where it lives: over SSH, an SSH host key verified) saying
// the same as SHOW DATABASES, and a client connection reaching the
// source's server.
func checkBouncer(ctx context.Context, c *pg.Console, ini pg.IniStore, b pg.BouncerParams, want pg.Endpoint, wantVersion string) (string, error) {
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
	case errors.Is(err, pg.ErrIniUnreadable):
		iniSays = "ini not readable here (SHOW DATABASES only)"
	case err != nil:
		return "", err
	case entry.Get("host") != want.Host || entry.Get("port") != fmt.Sprint(want.Port):
		return "", fmt.Errorf("%s points database %s at %s:%s, not %s (a later RELOAD would move it)", ini.Where(), b.Database, entry.Get("host"), entry.Get("port"), want)
	}
	v, err := pg.VersionThrough(ctx, b.ClientConninfo)
	if err != nil {
		return "", err
	}
	if v != wantVersion {
		return "", fmt.Errorf("SELECT version() through PgBouncer says %q, not the expected server", v)
	}
	return fmt.Sprintf("%s -> %s:%d, transaction pooling, not paused; %s", b.Database, d.Host, d.Port, iniSays), nil
}
