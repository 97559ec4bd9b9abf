package cutover

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// A cutover that stopped half way (its process killed, the machine gone)
// has two ways out, each of which works from every point: finish forward
// to the target, or undo back to the source. Both read where the servers
// are and run only the sub-steps still to do, the same sub-steps an
// attempt runs; an attempt's own abort is the undo, and so is the guard's.

// The ways out.
const (
	WayFinish = "finish"
	WayUndo   = "undo"
)

// undoSteps take the servers from pos back to the source: PgBouncer's
// entries back and resumed, the opposite feeds stopped, the target closed
// again, the source open, the drained feeds running again, the reverse
// replication of a cutover dropped. Each only when pos says it is needed.
func (r *run) undoSteps(pos position) []subStep {
	p, d := r.p, r.d
	var out []subStep
	if pos.held {
		// First: a RESUME must not let the application commit into a wait
		// for a feed being stopped.
		out = append(out, r.releaseStep())
	}
	if p.Method == MethodPgBouncer {
		back := false
		for _, b := range pos.bouncers {
			back = back || !pos.bouncerAtSource(b.name)
		}
		if back {
			out = append(out, subStep{name: "repoint back to " + d.from.name, target: "pgbouncer",
				plan: func() []pg.PlanLine {
					var out []pg.PlanLine
					for k, b := range p.Bouncers {
						if !pos.bouncerAtSource(b.Name) {
							out = append(out, r.repointPlan(k, d.from, true)...)
						}
					}
					return out
				},
				run: func(ctx context.Context) (string, error) {
					// Only those not already back. One that serves the source
					// already (no RELOAD since the ini changed) but whose ini
					// cannot be put back is not a reason to stay paused: it
					// is resumed, with a warning to fix its ini before its
					// next RELOAD (status says the traffic is not settled).
					err := r.eachBouncer(ctx, func(ctx context.Context, c *pg.Console, b pg.BouncerParams) error {
						if pos.bouncerAtSource(b.Name) {
							return nil
						}
						err := r.repointBouncer(ctx, c, b, d.from, true)
						if err != nil && pos.servesSource(b.Name) {
							r.iniLeft.Store(b.Name, true)
							r.rep.warn("PgBouncer %s serves %s, but its ini could not be put back (%v): fix it before its next RELOAD, which would move the traffic", b.Name, d.from.name, err)
							return nil
						}
						return err
					})
					return "every entry -> " + d.from.name + " (" + d.from.endpoint.String() + "), RELOAD, WAIT_CLOSE", err
				}})
		}
	}
	out = append(out, r.each("stop "+d.to.name+" -> "+d.from.name+" replication", d.from.name, func(db *dbRun) []subStep {
		if !pos.db(db.k).oppositeOn {
			return nil
		}
		f := db.f
		return []subStep{{name: r.label("stop "+d.to.name+" -> "+d.from.name+" replication", db), target: d.from.name,
			plan: func() []pg.PlanLine { return pg.Lines(pg.DisableSubscriptionStmts(d.from.name, f.startSubs)...) },
			run: func(ctx context.Context) (string, error) {
				return "disabled " + strings.Join(f.startSubs, ", "), pg.DisableSubscriptions(ctx, db.c.from, d.from.name, f.startSubs)
			}}}
	})...)
	prior := r.p.Prior != nil && r.p.Prior.TargetReadOnly
	if !pos.toClosed || prior && !pos.toReadOnly {
		out = append(out, subStep{name: "close writes on " + d.to.name, target: d.to.name,
			plan: func() []pg.PlanLine {
				out := r.closePlan(d.to)
				if prior {
					for _, db := range r.dbs {
						out = append(out, pg.Lines(pg.ReadOnlyStmt(d.to.name, d.to.at(db.Name).DBName, true))...)
					}
				}
				return out
			},
			run: func(ctx context.Context) (string, error) {
				detail, err := r.closeSide(ctx, r.e.to, d.to)
				if err == nil && prior && !pos.toReadOnly {
					var stmts []pg.Stmt
					for _, db := range r.dbs {
						stmts = append(stmts, pg.ReadOnlyStmt(d.to.name, db.c.toDB, true))
					}
					err = pg.ExecAll(ctx, r.e.to, stmts)
				}
				return detail, err
			}})
	}
	if p.Method == MethodPgBouncer {
		paused := false
		for _, b := range pos.bouncers {
			paused = paused || b.paused() || b.loginRetry == "0"
		}
		if paused {
			out = append(out, subStep{name: "resume on " + d.from.name, target: "pgbouncer",
				plan: func() []pg.PlanLine {
					var out []pg.PlanLine
					for k, b := range p.Bouncers {
						out = append(out, pg.Lines(pg.SetStmt(b.Name, "server_login_retry", "0"))...)
						for _, en := range r.entries(k) {
							out = append(out, pg.Lines(pg.ResumeStmt(b.Name, en.Name))...)
						}
					}
					return out
				},
				run: func(ctx context.Context) (string, error) { return "", r.resumeAll(ctx) }})
		}
	}
	if !pos.fromOpen {
		out = append(out, subStep{name: "open writes on " + d.from.name, target: d.from.name,
			plan: func() []pg.PlanLine { return r.openPlan(d.from) },
			run: func(ctx context.Context) (string, error) {
				return r.openSide(ctx, r.e.from, r.e.to, d.from)
			}})
	}
	out = append(out, r.each("restart "+d.from.name+" -> "+d.to.name+" replication", d.to.name, func(db *dbRun) []subStep {
		if pos.db(db.k).drainedOn {
			return nil
		}
		f := db.f
		return []subStep{{name: r.label("restart "+d.from.name+" -> "+d.to.name+" replication", db), target: d.to.name,
			plan: func() []pg.PlanLine {
				return append(pg.Lines(pg.EnableParams{On: d.to.name, Names: f.drainSubs}.Statements()...), waitFeedsPlan(d.to.name))
			},
			run: func(ctx context.Context) (string, error) {
				return r.enableFeeds(ctx, db.c.to, d.to.name, f.drainSubs, true)
			},
			own: true}}
	})...)
	if p.Method == MethodPgBouncer {
		out = append(out, r.restoreLoginRetryStep(), subStep{name: "verify target is " + d.from.name, target: "pgbouncer",
			plan: func() []pg.PlanLine {
				return []pg.PlanLine{pg.Note("pgbouncer", "SHOW DATABASES and the ini must say %s for every entry, and SELECT version() through each PgBouncer's every entry must be %s's", d.from.endpoint, d.from.name)}
			},
			run: func(ctx context.Context) (string, error) { return r.verifyTarget(ctx, d.from, r.e.fromVersion) }})
	}
	if !d.rollback {
		out = append(out, r.each("drop reverse replication", "blue, green", func(db *dbRun) []subStep {
			if dp := pos.db(db.k); !dp.oppositeSub && !dp.oppositeSlot {
				return nil
			}
			return []subStep{r.dropReverseStep(db)}
		})...)
	}
	return out
}

// catchUpStep waits, for at most a minute past the drain timeout, until
// the opposite feed (to -> from) is within the lag gate: the way out that
// started it then runs the opposite attempt, which checks that gate.
func (r *run) catchUpStep() subStep {
	p, d := r.p, r.d
	var slots []string
	for _, db := range r.dbs {
		slots = append(slots, db.f.startSlots...)
	}
	return subStep{name: "wait for " + d.to.name + " -> " + d.from.name + " to catch up", target: d.to.name, own: true,
		plan: func() []pg.PlanLine {
			return []pg.PlanLine{pg.Note(d.to.name, "the lag of %s is read until it is under %d bytes (at most %s)", strings.Join(slots, ", "), p.MaxLagBytes, p.WayOutLagWait)}
		},
		run: func(ctx context.Context) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, p.WayOutLagWait)
			defer cancel()
			for {
				detail, err := pg.CheckLag(pg.Quiet(ctx), r.e.to, slots, p.MaxLagBytes)
				if err == nil {
					return detail, nil
				}
				select {
				case <-ctx.Done():
					return "", fmt.Errorf("%s -> %s did not catch up: %w", d.to.name, d.from.name, err)
				case <-time.After(100 * time.Millisecond):
				}
			}
		}}
}

// wayOutSteps are the sub-steps a way out runs from pos, and whether it
// must then run a whole new attempt (finishing forward when writes reach
// the source again: what was drained is stale).
func (r *run) wayOutSteps(pos position, way string) (steps []subStep, fresh bool, reverse bool) {
	switch {
	case way == WayUndo && pos.atTarget:
		// The switch happened: undoing it is the opposite attempt, which
		// drains the feed back, so that feed is started first when the
		// attempt stopped before it.
		var first []subStep
		if pos.held {
			first = append(first, r.releaseStep())
		}
		swap := r.each("swap the feeds", r.d.to.name+", "+r.d.from.name, func(db *dbRun) []subStep { return r.swapSteps(db, pos.db(db.k), true) })
		if len(swap) > 0 {
			// Just started, the feed back has the writes since the switch to
			// send: the opposite attempt's lag gate would refuse.
			first = append(append(first, swap...), r.catchUpStep())
		}
		return first, false, true
	case way == WayUndo:
		return r.undoSteps(pos), false, false
	case pos.atTarget, pos.stopped:
		// Past the switch, only what follows it is left: the feeds, the
		// checks, the fence.
		return r.forwardSteps(pos), false, false
	default:
		return r.undoSteps(pos), true, false
	}
}

// WayOut takes an interrupted cutover (rollback false) or rollback out,
// forward (WayFinish) or back (WayUndo), from wherever the servers are.
// p.Prior should be what the attempt recorded. Finishing forward when
// writes reach the source again puts things back, then runs a whole new
// attempt, prechecks included; undoing once the traffic moved is the
// opposite attempt (a rollback undoes a cutover).
func WayOut(ctx context.Context, p Params, rollback bool, way string) (rep *Report, err error) {
	if way != WayFinish && way != WayUndo {
		return nil, fmt.Errorf("way out %q: use %s or %s", way, WayFinish, WayUndo)
	}
	r := newRun(&p, rollback, way)
	defer r.finish(&err)
	if err := p.validate(); err != nil {
		return r.rep, err
	}
	if r.e, err = r.open(ctx); err != nil {
		return r.rep, err
	}
	ctx = context.WithoutCancel(ctx) // a way out is never left half done
	pos, err := r.readPosition(ctx)
	if err != nil {
		return r.rep, fmt.Errorf("read where the servers are: %w", err)
	}
	steps, fresh, reverse := r.wayOutSteps(pos, way)
	if reverse {
		if _, err := r.runSteps(ctx, steps); err != nil {
			r.rep.Outcome = OutcomeFailed
			return r.rep, err
		}
		// The opposite attempt's target is this one's source: what it was
		// before is read now (its PgBouncers' server_login_retry may be
		// left at 0: this attempt's is kept), with the fences in force.
		acc, err := pg.ReadSideAccess(ctx, r.e.from, r.names(), r.fence)
		if err != nil {
			return r.rep, err
		}
		prior := Prior{LoginRetry: p.Prior.LoginRetry, Entries: p.Prior.Entries, Fences: r.fencesNow(),
			TargetReadOnly: len(acc.ReadOnly) > 0, TargetNoLogin: acc.NoLogin}
		// The opposite attempt opens its own connections: this run's go
		// back to the pools first.
		r.e.close()
		r.e = nil
		r.j.close()
		r.j = newSubJournal(nil)
		p.Prior = &prior
		return execute(ctx, &p, !rollback)
	}
	if _, err := r.runSteps(ctx, steps); err != nil {
		r.rep.Outcome = OutcomeFailed
		return r.rep, err
	}
	if !fresh {
		r.rep.Outcome = OutcomeDone
		if way == WayUndo {
			r.rep.Outcome = OutcomeAborted
			r.endAt(r.d.from, r.e.fromVersion)
		}
		return r.rep, nil
	}
	if failed := r.precheck(ctx); len(failed) > 0 {
		r.rep.Outcome = OutcomeRefused
		return r.rep, &PrecheckError{Failed: failed}
	}
	return r.rep, r.attempt(ctx)
}

// WayOutPlan is what a way out would run now: where the servers are, and
// the sub-steps with their statements.
type WayOutPlan struct {
	Where    string           `json:"where"`
	Way      string           `json:"way"`
	SubSteps []PlannedSubStep `json:"sub_steps"`
	// Then names what follows the sub-steps: "" , "a new attempt" or
	// "the opposite attempt".
	Then string `json:"then,omitempty"`
}

// PlanWayOut reads where the servers are and lists what each way out of
// an interrupted cutover (or rollback) would run; it changes nothing.
func PlanWayOut(ctx context.Context, p Params, rollback bool) (finish, undo WayOutPlan, err error) {
	r := newRun(&p, rollback, "")
	defer r.finish(&err)
	if r.e, err = r.open(ctx); err != nil {
		return finish, undo, err
	}
	pos, err := r.readPosition(ctx)
	if err != nil {
		return finish, undo, err
	}
	plan := func(way string) WayOutPlan {
		steps, fresh, reverse := r.wayOutSteps(pos, way)
		wp := WayOutPlan{Where: r.describe(pos), Way: way, SubSteps: planned(steps)}
		switch {
		case fresh:
			wp.Then = "a new " + r.d.name + " from its prechecks (writes reach " + r.d.from.name + " again: what was drained is stale)"
		case reverse:
			wp.Then = "the opposite attempt: the traffic moved already, so undoing it is a " + p.direction(!rollback).name
		}
		return wp
	}
	return plan(WayFinish), plan(WayUndo), nil
}

// The states of a switch, read from the servers.
const (
	// StateSource: writes go to the source, its feed to the target runs,
	// the target is closed: nothing of the switch is in force.
	StateSource = "source"
	// StateTarget: the switch is in force: writes go to the target, the
	// feed back runs, the source is fenced.
	StateTarget = "target"
	// StateBetween: an attempt stopped half way, or a way out is left to do.
	StateBetween = "between"
)

// Guard is what the guard process does when the driver of an attempt died
// or stopped answering: unless the traffic already moved, the attempt is
// undone from where the servers are (PgBouncer resumed on the source, its
// ini put back, replication as before); if it moved, only held commits
// are released and server_login_retry is put back, and finishing (the
// feeds' swap, the fence) is left to the operator's way out. It returns what it did.
func Guard(ctx context.Context, p Params, rollback bool) (what string, rep *Report, err error) {
	r := newRun(&p, rollback, "guard")
	if r.e, err = r.open(ctx); err != nil {
		r.finish(&err)
		return "", r.rep, err
	}
	pos, err := r.readPosition(ctx)
	if err != nil {
		r.finish(&err)
		return "", r.rep, err
	}
	where := r.describe(pos)
	if pos.atTarget {
		steps := []subStep{r.restoreLoginRetryStep()}
		if pos.held {
			steps = append([]subStep{r.releaseStep()}, steps...)
		}
		_, err = r.runSteps(ctx, steps)
		r.rep.Outcome = OutcomeDone
		r.finish(&err)
		return "server_login_retry put back; the switch itself had happened (" + where + ")", r.rep, err
	}
	r.finish(&err)
	rep, err = WayOut(ctx, p, rollback, WayUndo)
	return "undone from: " + where, rep, err
}

// ReadPrior reads what an attempt would find before changing anything
// (each PgBouncer's server_login_retry, whether the target is read-only):
// the values a dry run shows.
func ReadPrior(ctx context.Context, p Params, rollback bool) (prior *Prior, err error) {
	p.Prior = nil
	r := newRun(&p, rollback, "")
	defer r.finish(&err)
	if r.e, err = r.open(ctx); err != nil {
		return nil, err
	}
	return p.Prior, nil
}

// settleLoginRetry, after a bare RESUME with server_login_retry at 0,
// connects through the PgBouncer once (a server login that the PAUSE cut
// short is retried and clears) and puts server_login_retry back.
func (r *run) settleLoginRetry(ctx context.Context, c *pg.Console, b pg.BouncerParams) error {
	_, err := pg.VersionThrough(ctx, b.ClientConninfo)
	if v := r.loginRetry(b.Name); !strings.HasPrefix(v, "<") {
		if serr := c.Set(context.WithoutCancel(ctx), "server_login_retry", v); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return fmt.Errorf("after the bare PAUSE and RESUME of %s: %w", b.Name, err)
	}
	return nil
}

// Rehearse runs every precheck of a cutover (rollback false) or a rollback
// against the live servers, and with measurePause one bare PAUSE and
// RESUME of each PgBouncer, timed: the floor of a pause here. Nothing else
// changes. A failed precheck returns a *PrecheckError; the report holds
// the prechecks and, measured, the pauses.
func Rehearse(ctx context.Context, p Params, rollback, measurePause bool) (rep *Report, err error) {
	r := newRun(&p, rollback, "check")
	defer r.finish(&err)
	if err := p.validate(); err != nil {
		return r.rep, err
	}
	if r.e, err = r.open(ctx); err != nil {
		return r.rep, err
	}
	failed := r.precheck(ctx)
	r.rep.Outcome = OutcomeRefused
	if len(failed) > 0 {
		return r.rep, &PrecheckError{Failed: failed}
	}
	r.rep.Outcome = OutcomeDone
	if !measurePause || p.Method != MethodPgBouncer {
		return r.rep, nil
	}
	for k, b := range p.Bouncers {
		err := r.step(ctx, subStep{name: "PAUSE and RESUME " + b.Name, target: "pgbouncer " + b.Name,
			run: func(ctx context.Context) (string, error) {
				start := time.Now()
				es := r.entries(k)
				// As the cutover: every entry at once, each on its console.
				err := r.bouncerEntries(ctx, b.Name, func(ctx context.Context, c *pg.Console, en pg.IniEntry) error {
					if err := c.Pause(ctx, en.Name); err != nil {
						return err
					}
					_, err := c.WaitServersIdle(ctx, en.Name)
					return err
				})
				paused := time.Now()
				c, cerr := r.console(ctx, k, 0)
				if err != nil || cerr != nil {
					_ = r.bouncerEntries(context.WithoutCancel(ctx), b.Name, func(ctx context.Context, c *pg.Console, en pg.IniEntry) error {
						return c.Resume(ctx, en.Name)
					})
					return "", errJoin(err, cerr)
				}
				// As the cutover's resume: a PAUSE that cut a server login
				// short would otherwise turn clients away for
				// server_login_retry (resumeAll).
				_ = c.Set(ctx, "server_login_retry", "0")
				if err := r.bouncerEntries(context.WithoutCancel(ctx), b.Name, func(ctx context.Context, c *pg.Console, en pg.IniEntry) error {
					return c.Resume(ctx, en.Name)
				}); err != nil {
					return "", err
				}
				d := time.Since(start)
				resumed := time.Since(paused)
				if err := r.settleLoginRetry(ctx, c, b); err != nil {
					return "", err
				}
				r.rep.PausedMs = max(r.rep.PausedMs, ms(d))
				r.rep.bouncerTime(b.Name, "pause", paused.Sub(start))
				r.rep.bouncerTime(b.Name, "resume", resumed)
				return fmt.Sprintf("%s paused in %.1f ms, resumed %.1f ms later: %.1f ms in all", strings.Join(entryNames(es), ", "), ms(paused.Sub(start)), ms(resumed), ms(d)), nil
			}})
		if err != nil {
			r.rep.Outcome = OutcomeFailed
			return r.rep, err
		}
	}
	return r.rep, nil
}
