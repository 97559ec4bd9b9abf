package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

type pushFunc func(name string, fn func(ctx context.Context) error)

// stopWrites stops the application's writes on the source, by method.
func (r *run) stopWrites(ctx context.Context, d direction, e *cutEnv, push pushFunc) error {
	p := r.p
	switch p.Method {
	case MethodPgBouncer:
		// Registered first: a PAUSE that half-succeeded is resumed too.
		push("resume on "+d.from.name, func(ctx context.Context) error { return r.resumeAll(ctx, e) })
		return r.step(ctx, "pause", "pgbouncer", func(ctx context.Context) (string, error) {
			// PAUSE waits for in-flight transactions while every other
			// client waits: bounded like the drain (at least a second).
			ctx, cancel := context.WithTimeout(ctx, max(p.DrainTimeout, time.Second))
			defer cancel()
			var mu sync.Mutex
			polls := 0
			err := r.eachBouncer(ctx, e, func(ctx context.Context, c *Console, b BouncerParams) error {
				if err := c.Pause(ctx, b.Database); err != nil {
					return err
				}
				n, err := c.WaitServersIdle(ctx, b.Database)
				mu.Lock()
				polls = max(polls, n)
				mu.Unlock()
				return err
			})
			return fmt.Sprintf("%d PgBouncer(s) paused, no server busy (%d SHOW POOLS)", len(e.consoles), polls), err
		})
	case MethodNologin:
		var roles []string
		err := r.step(ctx, "nologin on "+d.from.name, d.from.name, func(ctx context.Context) (string, error) {
			ctx, cancel := r.timeout(ctx)
			defer cancel()
			var err error
			if roles, err = writerRoles(ctx, e.from, p.AppRoles, p.ReplicationRole); err != nil {
				return "", err
			}
			changed, err := setLogin(ctx, e.from, roles, false)
			push("LOGIN again on "+d.from.name, func(ctx context.Context) error {
				_, err := setLogin(ctx, e.from, changed, true)
				return err
			})
			return "NOLOGIN: " + strings.Join(roles, ", "), err
		})
		if err != nil {
			return err
		}
		return r.step(ctx, "terminate sessions on "+d.from.name, d.from.name, func(ctx context.Context) (string, error) {
			ctx, cancel := r.timeout(ctx)
			defer cancel()
			if len(roles) == 0 {
				return "no role to terminate", nil
			}
			n, err := terminateSessions(ctx, e.from, roles, e.pids())
			return fmt.Sprintf("%d sessions of %s ended", n, strings.Join(roles, ", ")), err
		})
	default: // readonly
		err := r.step(ctx, "read-only on "+d.from.name, d.from.name, func(ctx context.Context) (string, error) {
			ctx, cancel := r.timeout(ctx)
			defer cancel()
			push("read-write again on "+d.from.name, func(ctx context.Context) error { return setReadOnly(ctx, e.from, false) })
			return "default_transaction_read_only = on", setReadOnly(ctx, e.from, true)
		})
		if err != nil {
			return err
		}
		err = r.step(ctx, "terminate sessions on "+d.from.name, d.from.name, func(ctx context.Context) (string, error) {
			ctx, cancel := r.timeout(ctx)
			defer cancel()
			n, err := terminateSessions(ctx, e.from, nil, e.pids())
			// The pool's idle sessions are gone too: let it open new ones.
			d.from.pool.Reset()
			return fmt.Sprintf("%d sessions ended", n), err
		})
		if err != nil {
			return err
		}
		return r.step(ctx, "probe write on "+d.from.name+" must fail", d.from.name, func(ctx context.Context) (string, error) {
			ctx, cancel := r.timeout(ctx)
			defer cancel()
			err := probeWrite(ctx, d.from.pool)
			if isReadOnlyError(err) {
				return "refused: read-only", nil
			}
			if err == nil {
				return "", fmt.Errorf("a write on %s still succeeds after it was made read-only", d.from.name)
			}
			return "", err
		})
	}
}

// startOpposite starts the feed from the target back to the source: the
// reverse feed for a cutover, blue's original feed for a rollback.
func (r *run) startOpposite(ctx context.Context, d direction, e *cutEnv, f feeds, push pushFunc, rollback bool) error {
	p := r.p
	bounded := func(fn func(ctx context.Context) (string, error)) func(ctx context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			ctx, cancel := r.timeout(ctx)
			defer cancel()
			return fn(ctx)
		}
	}
	if !rollback {
		err := r.step(ctx, "create reverse slot", "green", bounded(func(ctx context.Context) (string, error) {
			var lsn string
			err := e.to.QueryRow(ctx, "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", p.Reverse).Scan(&lsn)
			if err != nil {
				return "", fmt.Errorf("create slot %s on green: %w", p.Reverse, err)
			}
			return "slot " + p.Reverse + " at " + lsn, nil
		}))
		if err != nil {
			return err
		}
		return r.step(ctx, "enable reverse subscription", "blue", bounded(func(ctx context.Context) (string, error) {
			push("disable "+p.Reverse, func(ctx context.Context) error { return disableSubscriptions(ctx, e.from, f.startSubs) })
			return "green -> blue replication on", enableSubscriptions(ctx, e.from, f.startSubs)
		}))
	}
	err := r.step(ctx, "advance blue's slots", "blue", bounded(func(ctx context.Context) (string, error) {
		lsn, err := advanceSlots(ctx, e.to, f.startSlots)
		return "skipped what the reverse feed wrote, to " + lsn, err
	}))
	if err != nil {
		return err
	}
	return r.step(ctx, "enable blue -> green replication", "green", bounded(func(ctx context.Context) (string, error) {
		push("disable "+strings.Join(f.startSubs, ", "), func(ctx context.Context) error { return disableSubscriptions(ctx, e.from, f.startSubs) })
		return "enabled " + strings.Join(f.startSubs, ", "), enableSubscriptions(ctx, e.from, f.startSubs)
	}))
}

// openWrites lets the application write on the target: LOGIN for its
// roles, and the read-only setting a readonly cutover left there removed.
func (r *run) openWrites(ctx context.Context, d direction, e *cutEnv, push pushFunc) error {
	return r.step(ctx, "allow writes on "+d.to.name, d.to.name, func(ctx context.Context) (string, error) {
		ctx, cancel := r.timeout(ctx)
		defer cancel()
		var done []string
		if len(r.p.AppRoles) > 0 {
			changed, err := setLogin(ctx, e.to, r.p.AppRoles, true)
			push("NOLOGIN again on "+d.to.name, func(ctx context.Context) error {
				_, err := setLogin(ctx, e.to, changed, false)
				return err
			})
			if err != nil {
				return "", err
			}
			if len(changed) > 0 {
				done = append(done, "LOGIN: "+strings.Join(changed, ", "))
			}
		}
		ro, err := isReadOnly(ctx, e.to)
		if err != nil {
			return "", err
		}
		if ro {
			push("read-only again on "+d.to.name, func(ctx context.Context) error { return setReadOnly(ctx, e.to, true) })
			if err := setReadOnly(ctx, e.to, false); err != nil {
				return "", err
			}
			done = append(done, "default_transaction_read_only reset")
		}
		if len(done) == 0 {
			return "nothing to change", nil
		}
		return strings.Join(done, "; "), nil
	})
}

// repoint rewrites every PgBouncer's database entry to the target,
// RELOADs and waits for the old server connections to close.
func (r *run) repoint(ctx context.Context, d direction, e *cutEnv, push pushFunc) error {
	var mu sync.Mutex
	var backups []*IniBackup
	push("restore PgBouncer's ini and RELOAD", func(ctx context.Context) error {
		var errs []error
		for _, b := range backups {
			errs = append(errs, b.Restore())
		}
		errs = append(errs, r.eachBouncer(ctx, e, func(ctx context.Context, c *Console, _ BouncerParams) error {
			return c.Reload(ctx)
		}))
		return errors.Join(errs...)
	})
	return r.step(ctx, "repoint", "pgbouncer", func(ctx context.Context) (string, error) {
		ctx, cancel := r.timeout(ctx)
		defer cancel()
		err := r.eachBouncer(ctx, e, func(ctx context.Context, c *Console, b BouncerParams) error {
			bk, err := RepointIni(b.Ini, b.Database, d.to.endpoint)
			if err != nil {
				return err
			}
			mu.Lock()
			backups = append(backups, bk)
			mu.Unlock()
			if err := c.Reload(ctx); err != nil {
				return err
			}
			return c.WaitClose(ctx, b.Database)
		})
		return "database entry -> " + d.to.endpoint.String() + ", RELOAD, WAIT_CLOSE", err
	})
}

// eachBouncer runs fn on every PgBouncer in parallel.
func (r *run) eachBouncer(ctx context.Context, e *cutEnv, fn func(ctx context.Context, c *Console, b BouncerParams) error) error {
	errs := make([]error, len(e.consoles))
	var wg sync.WaitGroup
	for k, c := range e.consoles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = fn(ctx, c, r.p.Bouncers[k])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// resumeAll resumes every PgBouncer, on a new console connection where the
// old one broke (a PAUSE cancelled by its timeout closes it).
func (r *run) resumeAll(ctx context.Context, e *cutEnv) error {
	r.liftLoginRetry(ctx, e)
	return r.eachBouncer(ctx, e, func(ctx context.Context, c *Console, b BouncerParams) error {
		err := c.Resume(ctx, b.Database)
		if err == nil || IsNotPaused(err) {
			return nil
		}
		fresh, cerr := ConnectConsole(ctx, b.Name, b.AdminConninfo, r.p.StatementTimeout)
		if cerr != nil {
			return errors.Join(err, cerr)
		}
		defer fresh.Close()
		if err := fresh.Resume(ctx, b.Database); err != nil && !IsNotPaused(err) {
			return err
		}
		return nil
	})
}

// verifyTarget checks every PgBouncer's effective target: SHOW DATABASES,
// the ini on disk, and SELECT version() through it.
func (r *run) verifyTarget(ctx context.Context, e *cutEnv, s side, version string) (string, error) {
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	err := r.eachBouncer(ctx, e, func(ctx context.Context, c *Console, b BouncerParams) error {
		if c.conn.IsClosed() {
			fresh, err := ConnectConsole(ctx, b.Name, b.AdminConninfo, r.p.StatementTimeout)
			if err != nil {
				return err
			}
			defer fresh.Close()
			c = fresh
		}
		db, err := c.Database(ctx, b.Database)
		if err != nil {
			return err
		}
		if db.Host != s.endpoint.Host || db.Port != s.endpoint.Port || db.Paused {
			return fmt.Errorf("PgBouncer %s: database %s points at %s:%d (paused %t), not %s", b.Name, b.Database, db.Host, db.Port, db.Paused, s.endpoint)
		}
		entry, err := ReadBouncerEntry(b.Ini, b.Database)
		if err != nil {
			return err
		}
		if entry.Get("host") != s.endpoint.Host || entry.Get("port") != fmt.Sprint(s.endpoint.Port) {
			return fmt.Errorf("PgBouncer %s: %s points at %s:%s, not %s", b.Name, b.Ini, entry.Get("host"), entry.Get("port"), s.endpoint)
		}
		v, err := versionThrough(ctx, b.ClientConninfo)
		if err != nil {
			// Say what PgBouncer's pool looks like: waiting clients with no
			// server is not the same failure as a refused login.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if pools, perr := c.Show(dctx, "POOLS"); perr == nil {
				for _, p := range pools {
					if p["database"] == b.Database {
						err = fmt.Errorf("%w (SHOW POOLS: cl_active %s, cl_waiting %s, sv_active %s, sv_idle %s, sv_login %s, maxwait %s s)",
							err, p["cl_active"], p["cl_waiting"], p["sv_active"], p["sv_idle"], p["sv_login"], p["maxwait"])
					}
				}
			}
			return err
		}
		if v != version {
			return fmt.Errorf("PgBouncer %s: SELECT version() through it says %q, not %s's", b.Name, v, s.name)
		}
		return nil
	})
	return fmt.Sprintf("SHOW DATABASES, the ini and SELECT version() say %s (%s)", s.name, s.endpoint), err
}

// execThrough runs one statement on a new connection through PgBouncer, in
// exec mode (no prepared statements under transaction pooling).
func execThrough(ctx context.Context, conninfo, sql string) (pgconn.CommandTag, error) {
	conn, err := connectThrough(ctx, conninfo)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Exec(ctx, sql)
}

func versionThrough(ctx context.Context, conninfo string) (string, error) {
	conn, err := connectThrough(ctx, conninfo)
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

func connectThrough(ctx context.Context, conninfo string) (*pgx.Conn, error) {
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

// liftLoginRetry sets server_login_retry to 0 on every PgBouncer before a
// RESUME. A PAUSE that lands while PgBouncer is logging in a new server
// connection closes it, and PgBouncer counts that as a failed login: it
// would then open no server connection for server_login_retry (15 s by
// default) and every client would wait that long. RELOAD resets the
// setting, so this comes after it; restoreLoginRetry puts it back.
func (r *run) liftLoginRetry(ctx context.Context, e *cutEnv) {
	_ = r.eachBouncer(ctx, e, func(ctx context.Context, c *Console, _ BouncerParams) error {
		return c.Set(ctx, "server_login_retry", "0")
	})
}

// restoreLoginRetry puts back each PgBouncer's server_login_retry.
func (r *run) restoreLoginRetry(ctx context.Context, e *cutEnv) error {
	return r.eachBouncer(ctx, e, func(ctx context.Context, c *Console, _ BouncerParams) error {
		for k := range e.consoles {
			if e.consoles[k] == c && k < len(e.loginRetry) && e.loginRetry[k] != "" {
				return c.Set(ctx, "server_login_retry", e.loginRetry[k])
			}
		}
		return nil
	})
}
