package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The method-specific sub-steps: how writes stop on the source, and how
// PgBouncer is moved to the target.

// stopWritesSteps stop the application's writes on the source, by method.
// Sessions that bypass PgBouncer, when the operator allowed it, are ended
// right after the PAUSE: nothing else would stop them.
func (r *run) stopWritesSteps() []subStep {
	p, d := r.p, r.d
	switch p.Method {
	case MethodPgBouncer:
		out := []subStep{{name: "pause", target: "pgbouncer", own: true,
			plan: func() []PlanLine {
				var out []PlanLine
				for _, b := range p.Bouncers {
					out = append(out, stmtLines(PauseStmt(b.Name, b.Database).with("every PgBouncer in parallel; then SHOW POOLS every ms until no server connection is busy"))...)
				}
				if p.ProbeInterval > 0 {
					out = append(out, noteLine("pgbouncer", "a probe client writes a temporary table through PgBouncer every %s, to measure the stall", p.ProbeInterval))
				}
				return out
			},
			run: func(ctx context.Context) (string, error) {
				// PAUSE waits for in-flight transactions while every other
				// client waits: bounded like the drain (at least a second).
				ctx, cancel := context.WithTimeout(ctx, max(p.DrainTimeout, time.Second))
				defer cancel()
				r.pausedAt = time.Now()
				var mu sync.Mutex
				polls := 0
				err := r.eachBouncer(ctx, func(ctx context.Context, c *Console, b BouncerParams) error {
					start := time.Now()
					defer func() { r.rep.bouncerTime(b.Name, "pause", time.Since(start)) }()
					if err := c.Pause(ctx, b.Database); err != nil {
						return err
					}
					n, err := c.WaitServersIdle(ctx, b.Database)
					mu.Lock()
					polls = max(polls, n)
					mu.Unlock()
					return err
				})
				return fmt.Sprintf("%d PgBouncer(s) paused, no server busy (%d SHOW POOLS)", len(r.e.consoles), polls), err
			}}}
		if p.TerminateDirect {
			out = append(out, subStep{name: "end sessions bypassing PgBouncer", target: d.from.name,
				plan: func() []PlanLine {
					return stmtLines(terminatePidsStmt(d.from.name, nil).with("the sessions on " + d.from.name + " that do not come through a configured PgBouncer, found at the precheck and again now"))
				},
				run: func(ctx context.Context) (string, error) {
					direct, err := r.directSessions(ctx)
					if err != nil || len(direct) == 0 {
						return "none", err
					}
					pids := make([]int32, len(direct))
					for i, s := range direct {
						pids[i] = s.PID
					}
					n, err := terminateAndWait(ctx, r.e.from, terminatePidsStmt(d.from.name, pids))
					return fmt.Sprintf("%d ended: %s", n, sessionList(direct)), err
				}})
		}
		return out
	case MethodNologin:
		roles := p.FenceRoles
		return []subStep{{name: "nologin on " + d.from.name, target: d.from.name,
			plan: func() []PlanLine {
				return append(stmtLines(LoginStmts(d.from.name, roles, false)...),
					stmtLines(terminateSessionsStmt(d.from.name, roles, Later("the pid of pgbluegreen's session")).with("then wait until they are gone"))...)
			},
			run: func(ctx context.Context) (string, error) {
				r.pausedAt = time.Now()
				changed, err := setLogin(ctx, r.e.from, d.from.name, roles, false)
				if err != nil {
					return "", err
				}
				n, err := terminateAndWait(ctx, r.e.from, terminateSessionsStmt(d.from.name, roles, r.e.pids()))
				return fmt.Sprintf("NOLOGIN: %s; %d sessions ended", orNone(changed), n), err
			}}}
	default: // readonly
		return []subStep{{name: "read-only on " + d.from.name, target: d.from.name,
			plan: func() []PlanLine {
				return stmtLines(readOnlyStmt(d.from.name, d.from.endpoint.DBName, true),
					terminateSessionsStmt(d.from.name, nil, Later("the pid of pgbluegreen's session")).with("every session of the database but the cutover's own"),
					probeStmt(d.from.name).with("on a new session: must fail with 25006 read_only_sql_transaction"))
			},
			run: func(ctx context.Context) (string, error) {
				r.pausedAt = time.Now()
				if err := readOnlyStmt(d.from.name, r.e.fromDB, true).Exec(ctx, r.e.from); err != nil {
					return "", err
				}
				n, err := terminateAndWait(ctx, r.e.from, terminateSessionsStmt(d.from.name, nil, r.e.pids()))
				if err != nil {
					return "", err
				}
				// The pool's idle sessions are gone too: let it open new ones.
				d.from.pool.Reset()
				err = probeWrite(ctx, d.from.pool, d.from.name)
				switch {
				case isReadOnlyError(err):
					return fmt.Sprintf("default_transaction_read_only = on; %d sessions ended; a write is refused", n), nil
				case err == nil:
					return "", fmt.Errorf("a write on %s still succeeds after it was made read-only", d.from.name)
				}
				return "", err
			}}}
	}
}

// switchBouncerSteps move every PgBouncer to the target, its ini already
// changed: RELOAD, WAIT_CLOSE and SHOW DATABASES saying the target, every
// PgBouncer before any is resumed; then RESUME (the switch).
func (r *run) switchBouncerSteps(pos position) []subStep {
	p, d := r.p, r.d
	var out []subStep
	moved := len(pos.bouncers) > 0
	for _, b := range pos.bouncers {
		moved = moved && b.pointsAt == "to"
	}
	if !moved {
		out = append(out, subStep{name: "reload", target: "pgbouncer",
			plan: func() []PlanLine {
				var out []PlanLine
				for _, b := range p.Bouncers {
					out = append(out, stmtLines(ReloadStmt(b.Name), WaitCloseStmt(b.Name, b.Database), ConsoleStmt(b.Name, "SHOW DATABASES").with("must say "+d.to.endpoint.String()+", or nothing is resumed"))...)
				}
				return out
			},
			run: func(ctx context.Context) (string, error) {
				err := r.eachBouncer(ctx, func(ctx context.Context, c *Console, b BouncerParams) error {
					if err := c.Reload(ctx); err != nil {
						return err
					}
					if err := c.WaitClose(ctx, b.Database); err != nil {
						return err
					}
					// What RESUME will send the clients to, from PgBouncer
					// itself: an ini that did not take is found here, paused.
					db, err := c.Database(ctx, b.Database)
					if err != nil {
						return err
					}
					if db.Host != d.to.endpoint.Host || db.Port != d.to.endpoint.Port {
						return fmt.Errorf("PgBouncer %s: after the RELOAD, database %s points at %s:%d, not %s", b.Name, b.Database, db.Host, db.Port, d.to.endpoint)
					}
					return nil
				})
				return "RELOAD, WAIT_CLOSE, SHOW DATABASES: database entry -> " + d.to.endpoint.String(), err
			}})
	}
	out = append(out, subStep{name: "resume", target: "pgbouncer", switches: true,
		plan: func() []PlanLine {
			var out []PlanLine
			for _, b := range p.Bouncers {
				out = append(out, stmtLines(SetStmt(b.Name, "server_login_retry", "0").with("a PAUSE that cut a server login short would otherwise hold every client for server_login_retry; put back after the checks"),
					ResumeStmt(b.Name, b.Database))...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			err := r.resumeAll(ctx)
			if !r.pausedAt.IsZero() {
				r.rep.PausedMs = ms(time.Since(r.pausedAt))
			}
			return "", err
		}})
	return out
}

// checkBouncerSteps follow the switch: the checks, server_login_retry put
// back and a probe write through PgBouncer.
func (r *run) checkBouncerSteps() []subStep {
	p, d := r.p, r.d
	var out []subStep
	out = append(out, subStep{name: "verify target is " + d.to.name, target: "pgbouncer",
		plan: func() []PlanLine {
			return []PlanLine{noteLine("pgbouncer", "SHOW DATABASES and the ini must say %s, and SELECT version() through each PgBouncer must be %s's", d.to.endpoint, d.to.name)}
		},
		run: func(ctx context.Context) (string, error) {
			detail, err := r.verifyTarget(ctx, d.to, r.e.toVersion)
			if err == nil {
				r.rep.FinalTarget, r.rep.FinalVersion = d.to.endpoint.String(), r.e.toVersion
			}
			return detail, err
		}})
	out = append(out, r.restoreLoginRetryStep())
	b0 := p.Bouncers[0]
	out = append(out, subStep{name: "probe write on " + d.to.name, target: "pgbouncer",
		plan: func() []PlanLine {
			return stmtLines(probeStmt("pgbouncer " + b0.Name + " (client)").with("through PgBouncer as the application: must succeed"))
		},
		run: func(ctx context.Context) (string, error) {
			conn, err := connectThrough(ctx, b0.ClientConninfo)
			if err != nil {
				return "", err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			return "a write through PgBouncer succeeded", probeStmt("pgbouncer "+b0.Name+" (client)").Exec(ctx, conn)
		}})
	return out
}

// rewriteIniStep points every PgBouncer's ini entry at s through its ini
// store (journaled, read back and verified); PgBouncer reads it at the
// next RELOAD.
func (r *run) rewriteIniStep(s side) subStep {
	p := r.p
	return subStep{name: "rewrite the ini", target: "pgbouncer",
		plan: func() []PlanLine {
			var out []PlanLine
			for _, b := range p.Bouncers {
				out = append(out, b.NewIniStore().Plan(IniChange{Database: b.Database, Side: s.name, To: s.endpoint})...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			err := r.eachBouncer(ctx, func(ctx context.Context, _ *Console, b BouncerParams) error {
				start := time.Now()
				defer func() { r.rep.bouncerTime(b.Name, "repoint", time.Since(start)) }()
				return r.ini(b).Repoint(ctx, IniChange{Database: b.Database, Side: s.name, To: s.endpoint})
			})
			return "database entry -> " + s.endpoint.String() + " (read at the RELOAD)", err
		}}
}

// restoreLoginRetryStep puts back each PgBouncer's server_login_retry.
func (r *run) restoreLoginRetryStep() subStep {
	p := r.p
	return subStep{name: "restore server_login_retry", target: "pgbouncer",
		plan: func() []PlanLine {
			var out []PlanLine
			for _, b := range p.Bouncers {
				out = append(out, stmtLines(SetStmt(b.Name, "server_login_retry", r.loginRetry(b.Name)))...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			err := r.eachBouncer(ctx, func(ctx context.Context, c *Console, b BouncerParams) error {
				if v := r.loginRetry(b.Name); !strings.HasPrefix(v, "<") {
					return c.Set(ctx, "server_login_retry", v)
				}
				return nil
			})
			return "", err
		}}
}

// loginRetry is the PgBouncer's server_login_retry before the attempt, or a
// placeholder when not known (a plan made without connections).
func (r *run) loginRetry(name string) string {
	if r.p.Prior != nil {
		if v, ok := r.p.Prior.LoginRetry[name]; ok && v != "" {
			return v
		}
	}
	return Placeholder("its value before the " + r.d.name)
}

// repointPlan is what repointBouncer runs: the ini change (a file edit,
// local or over SSH, or a command), RELOAD, WAIT_CLOSE.
func repointPlan(b BouncerParams, s side, restore bool) []PlanLine {
	out := b.NewIniStore().Plan(IniChange{Database: b.Database, Side: s.name, To: s.endpoint, Restore: restore})
	return append(out, stmtLines(ReloadStmt(b.Name), WaitCloseStmt(b.Name, b.Database))...)
}

// repointBouncer points b's database entry at s through its ini store
// (journaled, read back and verified), then RELOADs and WAIT_CLOSEs;
// restore marks the way back. Timed for the report.
func (r *run) repointBouncer(ctx context.Context, c *Console, b BouncerParams, s side, restore bool) error {
	start := time.Now()
	defer func() { r.rep.bouncerTime(b.Name, "repoint", time.Since(start)) }()
	ch := IniChange{Database: b.Database, Side: s.name, To: s.endpoint, Restore: restore}
	if err := r.ini(b).Repoint(ctx, ch); err != nil {
		return err
	}
	if err := c.Reload(ctx); err != nil {
		return err
	}
	return c.WaitClose(ctx, b.Database)
}

// ini is b's ini store, the one the attempt holds (an SSH store keeps its
// connection from the precheck on).
func (r *run) ini(b BouncerParams) IniStore {
	for k, x := range r.p.Bouncers {
		if x.Name == b.Name && r.e != nil && k < len(r.e.inis) {
			return r.e.inis[k]
		}
	}
	return b.NewIniStore()
}

// liftLoginRetry sets server_login_retry to 0 on every PgBouncer before a
// RESUME. A PAUSE that lands while PgBouncer is logging in a new server
// connection closes it, and PgBouncer counts that as a failed login: it
// would then open no server connection for server_login_retry (15 s by
// default) and every client would wait that long. RELOAD resets the
// setting, so this comes after it; the restore step puts it back.
//
// resumeAll then resumes every PgBouncer (on a new console connection
// where the old one broke, as eachBouncer does). A database that is not
// paused is fine.
func (r *run) resumeAll(ctx context.Context) error {
	return r.eachBouncer(ctx, func(ctx context.Context, c *Console, b BouncerParams) error {
		start := time.Now()
		defer func() { r.rep.bouncerTime(b.Name, "resume", time.Since(start)) }()
		_ = c.Set(ctx, "server_login_retry", "0")
		if err := c.Resume(ctx, b.Database); err != nil && !IsNotPaused(err) {
			return err
		}
		return nil
	})
}

// verifyTarget checks every PgBouncer's effective target: SHOW DATABASES,
// the ini on disk, and SELECT version() through it.
func (r *run) verifyTarget(ctx context.Context, s side, version string) (string, error) {
	err := r.eachBouncer(ctx, func(ctx context.Context, c *Console, b BouncerParams) error {
		db, err := c.Database(ctx, b.Database)
		if err != nil {
			return err
		}
		if db.Host != s.endpoint.Host || db.Port != s.endpoint.Port || db.Paused {
			return fmt.Errorf("PgBouncer %s: database %s points at %s:%d (paused %t), not %s", b.Name, b.Database, db.Host, db.Port, db.Paused, s.endpoint)
		}
		ini := r.ini(b)
		entry, err := ini.ReadEntry(ctx, b.Database)
		_, left := r.iniLeft.Load(b.Name)
		switch {
		case left: // an undo could not put it back: warned already
		case errors.Is(err, ErrIniUnreadable): // SHOW DATABASES said it
		case err != nil:
			return err
		case entry.Get("host") != s.endpoint.Host || entry.Get("port") != fmt.Sprint(s.endpoint.Port):
			return fmt.Errorf("PgBouncer %s: %s points at %s:%s, not %s", b.Name, ini.Where(), entry.Get("host"), entry.Get("port"), s.endpoint)
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

// connectThrough opens a connection through PgBouncer as an application
// would, in exec mode (no prepared statements under transaction pooling).
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

// errJoin is errors.Join that keeps nil for no error.
func errJoin(errs ...error) error { return errors.Join(errs...) }
