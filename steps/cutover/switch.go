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
)

// The method-specific sub-steps: how writes stop on the source, and how
// PgBouncer's entries of every moved database are moved to the target.

// stopWritesSteps stop the application's writes on the source, by method.
// Sessions that bypass PgBouncer, when the operator allowed it, are ended
// right after the PAUSE: nothing else would stop them.
func (r *run) stopWritesSteps() []subStep {
	p, d := r.p, r.d
	switch p.Method {
	case MethodPgBouncer:
		out := []subStep{{name: "pause", target: "pgbouncer", own: true,
			plan: func() []pg.PlanLine {
				var out []pg.PlanLine
				for k, b := range p.Bouncers {
					for _, en := range r.entries(k) {
						out = append(out, pg.Lines(pg.PauseStmt(b.Name, en.Name).With("every entry of every PgBouncer at once, each on a console of its own; then SHOW POOLS every ms until no server connection of it is busy"))...)
					}
				}
				if p.ProbeInterval > 0 {
					out = append(out, pg.Note("pgbouncer", "a probe client writes a temporary table through PgBouncer every %s, to measure the stall", p.ProbeInterval))
				}
				return out
			},
			run: func(ctx context.Context) (string, error) {
				// PAUSE waits for in-flight transactions while every other
				// client waits: bounded like the drain, and by the budget.
				r.pausedAt = time.Now()
				p.Hooks.Paused(r.pausedAt)
				ctx, cancel := context.WithTimeout(ctx, r.pauseLeft(p.PauseTimeout))
				defer cancel()
				var mu sync.Mutex
				polls, n := 0, 0
				err := r.eachEntry(ctx, func(ctx context.Context, c *pg.Console, b pg.BouncerParams, en pg.IniEntry) error {
					start := time.Now()
					defer func() { r.rep.bouncerTime(b.Name, "pause", time.Since(start)) }()
					if err := c.Pause(ctx, en.Name); err != nil {
						return err
					}
					k, err := c.WaitServersIdle(ctx, en.Name)
					mu.Lock()
					polls, n = max(polls, k), n+1
					mu.Unlock()
					return err
				})
				return fmt.Sprintf("%d entries of %d PgBouncer(s) paused, no server busy (%d SHOW POOLS)", n, len(p.Bouncers), polls), err
			}}}
		if p.TerminateDirect {
			out = append(out, subStep{name: "end sessions bypassing PgBouncer", target: d.from.name,
				plan: func() []pg.PlanLine {
					return pg.Lines(pg.TerminatePidsStmt(d.from.name, nil).With("the sessions on " + d.from.name + " that do not come through a configured PgBouncer, in every moved database, found at the precheck and again now"))
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
					n, err := pg.TerminateAndWait(ctx, r.e.from, pg.TerminatePidsStmt(d.from.name, pids))
					return fmt.Sprintf("%d ended: %s", n, pg.SessionList(direct)), err
				}})
		}
		return out
	case MethodNologin:
		// The fence itself stops the writes: CONNECT on the moved
		// databases closed to the fence roles, their sessions ended.
		return []subStep{{name: "close CONNECT on " + d.from.name, target: d.from.name,
			plan: func() []pg.PlanLine { return r.fencePlan(d.from) },
			run: func(ctx context.Context) (string, error) {
				r.pausedAt = time.Now()
				return r.fenceSide(ctx, r.e.from, d.from)
			}}}
	default: // readonly
		return []subStep{{name: "read-only on " + d.from.name, target: d.from.name,
			plan: func() []pg.PlanLine {
				var out []pg.PlanLine
				for _, db := range r.dbs {
					out = append(out, pg.Lines(pg.ReadOnlyStmt(d.from.name, d.from.at(db.Name).DBName, true))...)
				}
				out = append(out, pg.Lines(pg.TerminateSessionsStmt(d.from.name, nil, r.names(), pg.Later("the pids of pgbluegreen's sessions")).With("every session of the moved databases but the cutover's own"))...)
				for _, db := range r.dbs {
					out = append(out, pg.Lines(pg.ProbeStmt(d.from.name).With("on a new session in "+db.Name+": must fail with 25006 read_only_sql_transaction"))...)
				}
				return out
			},
			run: func(ctx context.Context) (string, error) {
				r.pausedAt = time.Now()
				var stmts []pg.Stmt
				for _, db := range r.dbs {
					stmts = append(stmts, pg.ReadOnlyStmt(d.from.name, db.c.fromDB, true))
				}
				if err := pg.ExecAll(ctx, r.e.from, stmts); err != nil {
					return "", err
				}
				n, err := pg.TerminateAndWait(ctx, r.e.from, pg.TerminateSessionsStmt(d.from.name, nil, r.names(), r.e.pids()))
				if err != nil {
					return "", err
				}
				for _, db := range r.dbs {
					// The pool's idle sessions are gone too: let it open new ones.
					db.from.Reset()
					err = pg.ProbeWrite(ctx, db.from, d.from.name)
					switch {
					case pg.IsReadOnlyError(err):
					case err == nil:
						return "", fmt.Errorf("a write on %s's %s still succeeds after it was made read-only", d.from.name, db.Name)
					default:
						return "", err
					}
				}
				return fmt.Sprintf("default_transaction_read_only = on in %s; %d sessions ended; a write is refused", strings.Join(r.names(), ", "), n), nil
			}}}
	}
}

// switchBouncerSteps move every PgBouncer to the target, its ini already
// changed: RELOAD, WAIT_CLOSE and SHOW DATABASES saying the target for
// every entry, every PgBouncer before any is resumed; then RESUME of every
// entry (the switch).
func (r *run) switchBouncerSteps(pos position) []subStep {
	p, d := r.p, r.d
	var out []subStep
	moved := len(pos.bouncers) > 0
	for _, b := range pos.bouncers {
		moved = moved && b.all(func(e entryPos) bool { return e.pointsAt == "to" })
	}
	if !moved {
		out = append(out, subStep{name: "reload", target: "pgbouncer",
			plan: func() []pg.PlanLine {
				var out []pg.PlanLine
				for k, b := range p.Bouncers {
					out = append(out, pg.Lines(pg.ReloadStmt(b.Name))...)
					for _, en := range r.entries(k) {
						out = append(out, pg.Lines(pg.WaitCloseStmt(b.Name, en.Name))...)
					}
					out = append(out, pg.Lines(pg.ConsoleStmt(b.Name, "SHOW DATABASES").With("every entry must say "+d.to.endpoint.String()+"'s host and port, or nothing is resumed"))...)
				}
				return out
			},
			run: func(ctx context.Context) (string, error) {
				err := r.eachBouncer(ctx, func(ctx context.Context, c *pg.Console, b pg.BouncerParams) error {
					if err := c.Reload(ctx); err != nil {
						return err
					}
					if err := r.bouncerEntries(ctx, b.Name, func(ctx context.Context, c *pg.Console, en pg.IniEntry) error {
						return c.WaitClose(ctx, en.Name)
					}); err != nil {
						return err
					}
					// What RESUME will send the clients to, from PgBouncer
					// itself: an ini that did not take is found here, paused.
					return r.entriesAt(ctx, c, b, d.to, false)
				})
				return "RELOAD, WAIT_CLOSE, SHOW DATABASES: every entry -> " + d.to.name + " (" + d.to.endpoint.String() + ")", err
			}})
	}
	out = append(out, subStep{name: "resume", target: "pgbouncer", switches: true,
		plan: func() []pg.PlanLine {
			var out []pg.PlanLine
			for k, b := range p.Bouncers {
				out = append(out, pg.Lines(pg.SetStmt(b.Name, "server_login_retry", "0").With("a PAUSE that cut a server login short would otherwise hold every client for server_login_retry; put back after the checks"))...)
				for _, en := range r.entries(k) {
					out = append(out, pg.Lines(pg.ResumeStmt(b.Name, en.Name))...)
				}
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

// pauseLeft is d, or less when the pause budget leaves less: a wait inside
// the pause ends in time for the driver's own undo to beat its guard.
func (r *run) pauseLeft(d time.Duration) time.Duration {
	if r.p.PauseBudget <= 0 || r.pausedAt.IsZero() {
		return d
	}
	return max(min(d, r.p.PauseBudget-time.Since(r.pausedAt)), 0)
}

// entriesAt checks, from SHOW DATABASES, that every entry of b points at
// side s (and, with unpaused, is not paused).
func (r *run) entriesAt(ctx context.Context, c *pg.Console, b pg.BouncerParams, s side, unpaused bool) error {
	k := slices.IndexFunc(r.p.Bouncers, func(x pg.BouncerParams) bool { return x.Name == b.Name })
	rows, err := c.Databases(ctx)
	if err != nil {
		return err
	}
	for _, en := range r.entries(k) {
		i := slices.IndexFunc(rows, func(d pg.BouncerDatabase) bool { return d.Name == en.Name })
		if i < 0 {
			return fmt.Errorf("PgBouncer %s: SHOW DATABASES has no database %q", b.Name, en.Name)
		}
		db, want := rows[i], s.at(en.DBName)
		if db.Host != want.Host || db.Port != want.Port || unpaused && db.Paused {
			return fmt.Errorf("PgBouncer %s: database %s points at %s:%d (paused %t), not %s", b.Name, en.Name, db.Host, db.Port, db.Paused, want)
		}
	}
	return nil
}

// checkBouncerSteps follow the switch: the checks, server_login_retry put
// back and a probe write through PgBouncer to every entry.
func (r *run) checkBouncerSteps() []subStep {
	p, d := r.p, r.d
	var out []subStep
	out = append(out, subStep{name: "verify target is " + d.to.name, target: "pgbouncer",
		plan: func() []pg.PlanLine {
			return []pg.PlanLine{pg.Note("pgbouncer", "SHOW DATABASES and the ini must say %s for every entry, and SELECT version() through each PgBouncer's every entry must be %s's", d.to.endpoint, d.to.name)}
		},
		run: func(ctx context.Context) (string, error) {
			detail, err := r.verifyTarget(ctx, d.to, r.e.toVersion)
			if err == nil {
				r.endAt(d.to, r.e.toVersion)
			}
			return detail, err
		}})
	out = append(out, r.restoreLoginRetryStep())
	b0 := p.Bouncers[0]
	out = append(out, subStep{name: "probe write on " + d.to.name, target: "pgbouncer",
		plan: func() []pg.PlanLine {
			var out []pg.PlanLine
			for _, en := range r.entries(0) {
				out = append(out, pg.Lines(pg.ProbeStmt("pgbouncer "+b0.Name+" (client)").With("through PgBouncer's "+en.Name+" as the application: must succeed"))...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			for _, en := range r.entries(0) {
				conn, err := pg.ConnectThrough(ctx, clientConninfo(b0, en))
				if err != nil {
					return "", fmt.Errorf("%s: %w", en.Name, err)
				}
				err = pg.ProbeStmt("pgbouncer "+b0.Name+" (client)").Exec(ctx, conn)
				conn.Close(context.WithoutCancel(ctx))
				if err != nil {
					return "", fmt.Errorf("%s: %w", en.Name, err)
				}
			}
			return "a write through PgBouncer succeeded in " + strings.Join(entryNames(r.entries(0)), ", "), nil
		}})
	return out
}

// rewriteIniStep points every PgBouncer's entries at s through its ini
// store, in one write each (journaled, read back and verified); PgBouncer
// reads it at the next RELOAD.
func (r *run) rewriteIniStep(s side) subStep {
	p := r.p
	return subStep{name: "rewrite the ini", target: "pgbouncer",
		plan: func() []pg.PlanLine {
			var out []pg.PlanLine
			for k, b := range p.Bouncers {
				out = append(out, b.NewIniStore().Plan(r.iniChange(k, s, false))...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			err := r.eachBouncer(ctx, func(ctx context.Context, _ *pg.Console, b pg.BouncerParams) error {
				start := time.Now()
				defer func() { r.rep.bouncerTime(b.Name, "repoint", time.Since(start)) }()
				return r.ini(b).Repoint(ctx, r.iniChange(slices.Index(p.Bouncers, b), s, false))
			})
			return "every entry -> " + s.name + " (" + s.endpoint.String() + "; read at the RELOAD)", err
		}}
}

// restoreLoginRetryStep puts back each PgBouncer's server_login_retry.
func (r *run) restoreLoginRetryStep() subStep {
	p := r.p
	return subStep{name: "restore server_login_retry", target: "pgbouncer",
		plan: func() []pg.PlanLine {
			var out []pg.PlanLine
			for _, b := range p.Bouncers {
				out = append(out, pg.Lines(pg.SetStmt(b.Name, "server_login_retry", r.loginRetry(b.Name)))...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			err := r.eachBouncer(ctx, func(ctx context.Context, c *pg.Console, b pg.BouncerParams) error {
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
	return pg.Placeholder("its value before the " + r.d.name)
}

// repointPlan is what repointBouncer runs for the k-th PgBouncer: the ini
// change (a file edit, local or over SSH, or a command), RELOAD,
// WAIT_CLOSE of every entry.
func (r *run) repointPlan(k int, s side, restore bool) []pg.PlanLine {
	b := r.p.Bouncers[k]
	out := b.NewIniStore().Plan(r.iniChange(k, s, restore))
	out = append(out, pg.Lines(pg.ReloadStmt(b.Name))...)
	for _, en := range r.entries(k) {
		out = append(out, pg.Lines(pg.WaitCloseStmt(b.Name, en.Name))...)
	}
	return out
}

// repointBouncer points b's entries at s through its ini store
// (journaled, read back and verified), then RELOADs and WAIT_CLOSEs each;
// restore marks the way back. Timed for the report.
func (r *run) repointBouncer(ctx context.Context, c *pg.Console, b pg.BouncerParams, s side, restore bool) error {
	start := time.Now()
	defer func() { r.rep.bouncerTime(b.Name, "repoint", time.Since(start)) }()
	if err := r.ini(b).Repoint(ctx, r.iniChange(slices.Index(r.p.Bouncers, b), s, restore)); err != nil {
		return err
	}
	if err := c.Reload(ctx); err != nil {
		return err
	}
	return r.bouncerEntries(ctx, b.Name, func(ctx context.Context, c *pg.Console, en pg.IniEntry) error {
		return c.WaitClose(ctx, en.Name)
	})
}

// ini is b's ini store, the one the attempt holds (an SSH store keeps its
// connection from the precheck on).
func (r *run) ini(b pg.BouncerParams) pg.IniStore {
	for k, x := range r.p.Bouncers {
		if x.Name == b.Name && r.e != nil && k < len(r.e.inis) {
			return r.e.inis[k]
		}
	}
	return b.NewIniStore()
}

// resumeAll resumes every entry of every PgBouncer (on a new console
// connection where the old one broke), after server_login_retry is set
// to 0 on each. A PAUSE that lands while PgBouncer is logging in a new
// server connection closes it, and PgBouncer counts that as a failed
// login: it would then open no server connection for server_login_retry
// (15 s by default) and every client would wait that long. RELOAD resets
// the setting, so this comes after it; the restore step puts it back. An
// entry that is not paused is fine.
func (r *run) resumeAll(ctx context.Context) error {
	err := r.eachBouncer(ctx, func(ctx context.Context, c *pg.Console, b pg.BouncerParams) error {
		start := time.Now()
		defer func() { r.rep.bouncerTime(b.Name, "resume", time.Since(start)) }()
		_ = c.Set(ctx, "server_login_retry", "0")
		return r.bouncerEntries(ctx, b.Name, func(ctx context.Context, c *pg.Console, en pg.IniEntry) error {
			if err := c.Resume(ctx, en.Name); err != nil && !pg.IsNotPaused(err) {
				return err
			}
			return nil
		})
	})
	if err == nil {
		r.p.Hooks.Resumed()
	}
	return err
}

// verifyTarget checks every PgBouncer's effective target for every entry:
// SHOW DATABASES, the ini on disk, and SELECT version() through it.
func (r *run) verifyTarget(ctx context.Context, s side, version string) (string, error) {
	err := r.eachBouncer(ctx, func(ctx context.Context, c *pg.Console, b pg.BouncerParams) error {
		if err := r.entriesAt(ctx, c, b, s, true); err != nil {
			return err
		}
		k := slices.Index(r.p.Bouncers, b)
		ini := r.ini(b)
		_, left := r.iniLeft.Load(b.Name)
		for _, en := range r.entries(k) {
			want := s.at(en.DBName)
			entry, err := ini.ReadEntry(ctx, en.Name)
			switch {
			case left: // an undo could not put it back: warned already
			case errors.Is(err, pg.ErrIniUnreadable): // SHOW DATABASES said it
			case err != nil:
				return err
			case entry.Get("host") != want.Host || entry.Get("port") != fmt.Sprint(want.Port):
				return fmt.Errorf("PgBouncer %s: %s points %s at %s:%s, not %s", b.Name, ini.Where(), en.Name, entry.Get("host"), entry.Get("port"), want)
			}
			v, err := pg.VersionThrough(ctx, clientConninfo(b, en))
			if err != nil {
				return r.poolsSay(ctx, c, en.Name, fmt.Errorf("%s: %w", en.Name, err))
			}
			if v != version {
				return fmt.Errorf("PgBouncer %s: SELECT version() through its %s says %q, not %s's", b.Name, en.Name, v, s.name)
			}
		}
		return nil
	})
	return fmt.Sprintf("SHOW DATABASES, the ini and SELECT version() say %s (%s) for every entry", s.name, s.endpoint), err
}

// poolsSay adds to err what PgBouncer's pool of entry looks like: waiting
// clients with no server is not the same failure as a refused login.
func (r *run) poolsSay(ctx context.Context, c *pg.Console, entry string, err error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if pools, perr := c.Show(dctx, "POOLS"); perr == nil {
		for _, p := range pools {
			if p["database"] == entry {
				err = fmt.Errorf("%w (SHOW POOLS: cl_active %s, cl_waiting %s, sv_active %s, sv_idle %s, sv_login %s, maxwait %s s)",
					err, p["cl_active"], p["cl_waiting"], p["sv_active"], p["sv_idle"], p["sv_login"], p["maxwait"])
			}
		}
	}
	return err
}

// errJoin is errors.Join that keeps nil for no error.
func errJoin(errs ...error) error { return errors.Join(errs...) }
