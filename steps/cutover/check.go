package cutover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// precheck runs every check before anything changes; each is reported. It
// returns the failed ones. What is a database's is checked for each (its
// feed's lag and health, its sequences, its reverse feed), at once.
func (r *run) precheck(ctx context.Context) []Check {
	p, d := r.p, r.d
	var checks []Check
	// Each check has its own time limit: one slow answer must not eat the
	// others' time.
	bound := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, p.StatementTimeout) }
	add := func(c Check) {
		checks = append(checks, c)
		p.Hooks.PrecheckDone(c)
	}
	// A feed enabled moments ago (a way out, the previous attempt) gets
	// its worker back within wal_retrieve_retry_interval: the lag and the
	// health give it that long before they refuse.
	lags := make([]Check, len(r.dbs))
	healths := make([]pg.FeedHealth, len(r.dbs))
	states := make([]*Check, len(r.dbs))
	var wg sync.WaitGroup
	for k, db := range r.dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			detail, err := r.waitWindow(ctx, db)
			lags[k] = result(r.label(fmt.Sprintf("lag below %d bytes", p.MaxLagBytes), db), detail, err)
			cctx, cancel := context.WithTimeout(ctx, workerWait)
			defer cancel()
			healths[k], states[k] = r.readHealth(cctx, db)
		}()
	}
	wg.Wait()
	var errs int64
	for _, h := range healths {
		errs += h.Errors
	}
	r.rep.ErrorCount = errs
	for k, db := range r.dbs {
		add(lags[k])
		if states[k] != nil {
			add(*states[k])
		} else {
			add(r.judgeHealth(db, healths[k], errs))
		}
	}
	cctx, cancel := bound()
	add(r.checkRoles(cctx))
	cancel()
	cctx, cancel = bound()
	add(r.checkFence(cctx))
	cancel()
	if p.Method == MethodPgBouncer {
		results := make([]Check, len(p.Bouncers))
		for k, b := range p.Bouncers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := bound()
				defer cancel()
				detail, err := r.checkBouncer(ctx, k, b)
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
	for _, db := range r.dbs {
		cctx, cancel = bound()
		coll, err := pg.SequenceCollisions(cctx, db.c.from, db.c.to)
		cancel()
		if err == nil && len(coll) > 0 {
			err = fmt.Errorf("%s", strings.Join(coll, "; "))
		}
		add(result(r.label("sequences will not collide", db), "every sequence exists on "+d.to.name+" and none is ahead there", err))
	}
	for _, db := range r.dbs {
		cctx, cancel = bound()
		var detail string
		var err error
		if d.rollback {
			detail, err = pg.CheckForwardRestartable(cctx, db.c.to, db.c.from, db.f.startSlots, db.f.startSubs) // rollback: to is blue
		} else {
			var others []string
			for _, o := range r.dbs {
				if o != db {
					others = append(others, o.Reverse)
				}
			}
			detail, err = pg.CheckReversePrereqs(cctx, db.c.from, db.c.to, pg.ReversePrereqs{Name: db.Reverse, Role: p.ReplicationRole, Password: p.ReplicationPassword, Others: others})
		}
		cancel()
		add(result(r.label("reverse replication prerequisites", db), detail, err))
	}
	r.rep.Prechecks = checks
	var failed []Check
	for _, c := range checks {
		if !c.OK {
			failed = append(failed, c)
		}
	}
	return failed
}

func result(name, detail string, err error) Check {
	if err != nil {
		return Check{Name: name, Detail: err.Error()}
	}
	return Check{Name: name, OK: true, Detail: detail}
}

// windowRead is how often the window's wait reads the lag; windowTell how
// often it says so.
const (
	windowRead = 100 * time.Millisecond
	windowTell = time.Second
)

// waitWindow reads db's lag until it is under the gate, for at most the
// window (Params.Window), telling Hooks.Waiting how it stands every
// windowTell; an apply worker not running yet is waited for workerWait at
// least. Past the window it fails, saying how often the gate was met and
// the lowest lag read.
func (r *run) waitWindow(ctx context.Context, db *dbRun) (string, error) {
	p := r.p
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, max(workerWait, p.Window))
	defer cancel()
	var reads, above int
	lowest, told := int64(-1), start
	for {
		detail, err := pg.CheckLag(pg.Quiet(ctx), db.c.from, db.f.drainSlots, p.MaxLagBytes)
		reads++
		var la *pg.LagAboveError
		switch {
		case err == nil:
			if above > 0 {
				detail += fmt.Sprintf(", under the gate after %s of waiting (%d readings above it)", time.Since(start).Round(100*time.Millisecond), above)
			}
			return detail, nil
		case errors.As(err, &la):
			above++
			if lowest < 0 || la.Lag < lowest {
				lowest = la.Lag
			}
			if time.Since(start) > p.Window {
				return "", fmt.Errorf("%w; for %s the gate was met in 0 of %d readings (the lowest %d bytes); raise cutover.window or max_lag_bytes, or cut over when the writes are lighter", err, p.Window, reads, lowest)
			}
			if time.Since(told) >= windowTell {
				told = time.Now()
				who := ""
				if len(r.dbs) > 1 {
					who = db.Name + ": "
				}
				p.Hooks.Waiting(fmt.Sprintf("%slag %d bytes, gate %d bytes: waiting for the window (%s of %s)", who, la.Lag, la.Max, time.Since(start).Round(time.Second), p.Window))
			}
		case errors.Is(err, pg.ErrNoSubscriber) && time.Since(start) < workerWait:
		default:
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(windowRead):
		}
	}
}

// workerWait is how long a precheck waits for an apply worker that is not
// running yet (PostgreSQL restarts one at most every
// wal_retrieve_retry_interval, 5 s by default).
const workerWait = 12 * time.Second

// readHealth reads a database's drained feed: every subscription applying
// and every table ready, waiting (ctx) for an apply worker that is not
// running yet. It returns what it read, and a failed check when the feed
// is not whole whatever its errors say.
func (r *run) readHealth(ctx context.Context, db *dbRun) (pg.FeedHealth, *Check) {
	subs := db.f.drainSubs
	name := r.label("subscriptions healthy", db)
	for {
		fh, err := pg.ReadFeedHealth(ctx, db.c.to, subs)
		var c *Check
		switch {
		case err != nil:
			c = &Check{Name: name, Detail: "read the subscriptions: " + err.Error()}
		case fh.Found != len(subs):
			c = &Check{Name: name, Detail: fmt.Sprintf("found %d of the subscriptions %s", fh.Found, strings.Join(subs, ", "))}
		case fh.Running != fh.Found:
			c = &Check{Name: name, Detail: fmt.Sprintf("%d of %d subscriptions have no apply worker running (disabled, or failing: see the server log)", fh.Found-fh.Running, fh.Found)}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
				continue
			}
		case fh.NotReady > 0:
			c = &Check{Name: name, Detail: fmt.Sprintf("%d tables are still in their initial copy", fh.NotReady)}
		}
		return fh, c
	}
}

// judgeHealth judges a database's apply and sync errors. pg_stat_subscription_stats
// keeps only lifetime counters, so a count is dated by when it was first
// seen (Health.Known, KnownAt, the whole run's count): one that grew
// since, or within the window, refuses; older ones only warn. A database
// with no error of its own passes.
func (r *run) judgeHealth(db *dbRun, fh pg.FeedHealth, errs int64) Check {
	name := r.label("subscriptions healthy", db)
	n := fh.Found
	h := r.p.Health
	switch {
	case fh.Errors == 0:
	case errs > h.Known:
		return Check{Name: name, Detail: fmt.Sprintf("%d apply/sync error(s) counted in pg_stat_subscription_stats since they were last read (%d then): errors are happening now; read the subscriber's log, fix the cause, and wait %s without a new one", errs-h.Known, h.Known, h.Window)}
	case !h.KnownAt.IsZero() && time.Since(h.KnownAt) < h.Window:
		return Check{Name: name, Detail: fmt.Sprintf("the last apply/sync error was counted at %s, within the health window (%s): wait until %s without a new one", h.KnownAt.Format(time.RFC3339), h.Window, h.KnownAt.Add(h.Window).Format(time.RFC3339))}
	default:
		return Check{Name: name, OK: true, Warn: true, Detail: fmt.Sprintf("%d subscriptions applying, every table ready; %d apply/sync error(s) counted before %s, none since (older than the %s window)", n, fh.Errors, orUnknown(h.KnownAt), h.Window)}
	}
	return Check{Name: name, OK: true, Detail: fmt.Sprintf("%d subscriptions applying, every table ready, no errors", n)}
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
		return Check{Name: name, Detail: fmt.Sprintf("the application logs in as %s, the role pgbluegreen connects as: %s could not be fenced after the switch. Give pgbluegreen its own role (CREATE ROLE pgbg_admin LOGIN SUPERUSER, or rds_superuser on RDS) and use it in blue.conninfo and green.conninfo, or give the application its own role", me, r.d.from.name)}
	}
	return Check{Name: name, OK: true, Detail: fmt.Sprintf("pgbluegreen connects as %s; fenced after the switch: %s", me, orNone(r.fence))}
}

// checkFence says what the fence will close on the source after the
// switch and what it leaves: CONNECT on the moved databases only, so a
// fence role keeps every database that stays there (listed per role), and
// the roles it never touches.
func (r *run) checkFence(ctx context.Context) Check {
	name := "the fence closes only what moved"
	from := r.d.from.name
	kept, err := pg.ReadKeptDatabases(ctx, r.e.from, r.fence, r.names(), config.ProviderDatabases)
	if err != nil {
		return Check{Name: name, Detail: err.Error()}
	}
	parts := []string{fmt.Sprintf("after the switch CONNECT on %s's %s closes to %s", from, strings.Join(r.names(), ", "), orNone(r.fence))}
	for _, role := range r.fence {
		if k := kept[role]; len(k) > 0 {
			parts = append(parts, fmt.Sprintf("%s keeps logging in to %s on %s", role, strings.Join(k, ", "), from))
		} else {
			parts = append(parts, fmt.Sprintf("%s keeps no other database on %s", role, from))
		}
	}
	c := Check{Name: name, OK: true}
	if len(r.e.spared) > 0 {
		parts = append(parts, "never fenced: "+strings.Join(r.e.spared, ", "))
		c.Warn = true
	}
	c.Detail = strings.Join(parts, "; ")
	return c
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

// directSessions are the client sessions of the source's moved databases
// that are neither PgBouncer's server connections (SHOW SERVERS
// remote_pid), nor pgbluegreen's own. It reads twice and keeps what both
// reads agree on, so a server connection PgBouncer opens or closes
// meanwhile is not taken for a stray session.
func (r *run) directSessions(ctx context.Context) ([]pg.Session, error) {
	read := func() (map[int32]pg.Session, error) {
		var all []pg.Session
		for _, db := range r.dbs {
			s, err := pg.ReadSessions(ctx, db.c.from)
			if err != nil {
				return nil, err
			}
			all = append(all, s...)
		}
		servers := map[int32]bool{}
		for _, cs := range r.e.consoles {
			pids, err := cs[0].ServerPIDs(ctx)
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

// checkBouncer: every entry the run moves pointing at the source, not
// paused, in transaction pooling, its ini (read where it lives: over SSH,
// an SSH host key verified) saying the same as SHOW DATABASES, and a
// client connection through it reaching the source's server.
func (r *run) checkBouncer(ctx context.Context, k int, b pg.BouncerParams) (string, error) {
	c, ini, from := r.e.consoles[k][0], r.e.inis[k], r.d.from
	var says []string
	for _, en := range r.entries(k) {
		want := from.at(en.DBName)
		d, err := c.Database(ctx, en.Name)
		if err != nil {
			return "", err
		}
		if d.Host != want.Host || d.Port != want.Port {
			return "", fmt.Errorf("database %s points at %s:%d, not %s", en.Name, d.Host, d.Port, want)
		}
		if d.Paused {
			return "", fmt.Errorf("database %s is paused: RESUME it first", en.Name)
		}
		mode, err := c.PoolMode(ctx, en.Name)
		if err != nil {
			return "", err
		}
		if mode != "transaction" {
			return "", fmt.Errorf("database %s: pool_mode is %s: PAUSE completes only in transaction mode", en.Name, mode)
		}
		iniSays := "ini " + ini.Where() + " agrees"
		entry, err := ini.ReadEntry(ctx, en.Name)
		switch {
		case errors.Is(err, pg.ErrIniUnreadable):
			iniSays = "ini not readable here (SHOW DATABASES only)"
		case err != nil:
			return "", err
		case entry.Get("host") != want.Host || entry.Get("port") != fmt.Sprint(want.Port):
			return "", fmt.Errorf("%s points database %s at %s:%s, not %s (a later RELOAD would move it)", ini.Where(), en.Name, entry.Get("host"), entry.Get("port"), want)
		}
		v, err := pg.VersionThrough(ctx, clientConninfo(b, en))
		if err != nil {
			return "", fmt.Errorf("database %s: %w", en.Name, err)
		}
		if v != r.e.fromVersion {
			return "", fmt.Errorf("SELECT version() through PgBouncer's %s says %q, not the expected server", en.Name, v)
		}
		says = append(says, fmt.Sprintf("%s -> %s:%d", en.Name, d.Host, d.Port))
		if len(says) == 1 {
			says[0] += ", transaction pooling, not paused; " + iniSays
		}
	}
	return strings.Join(says, "; "), nil
}

// clientConninfo connects through b as the application does, to entry en.
func clientConninfo(b pg.BouncerParams, en pg.IniEntry) string {
	if en.Name == b.Database || b.ClientConninfo == "" {
		return b.ClientConninfo
	}
	return pg.WithDatabase(b.ClientConninfo, en.Name)
}
