package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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

// position is where the servers are, relative to a direction (from: the
// side writes leave; to: the side they go to).
type position struct {
	bouncers []bouncerPos
	// stopped: the application cannot write on from (every PgBouncer
	// paused; the fence roles without LOGIN there; from read-only).
	stopped bool
	// atTarget: writes go to to, and are not stopped.
	atTarget bool
	// drainedOn: the feed from -> to still runs (its subscriptions on to
	// are enabled): nothing was drained and stopped yet.
	drainedOn bool
	// The feed to -> from: its slot on to (the reverse slot; a rollback's
	// forward slots are always there), its subscriptions on from.
	oppositeSlot, oppositeSub, oppositeOn bool
	// toOpen: every fence role can log in on to, and to is not read-only.
	toOpen bool
	// toClosed: no fence role can log in on to.
	toClosed, toReadOnly bool
	// fromFenced: no fence role can log in on from.
	fromFenced, fromReadOnly bool
	// held: the source's commits are held for the target's apply.
	held bool
}

// bouncerPos is one PgBouncer: whether it is paused, where SHOW DATABASES
// and its ini point ("from", "to", or the host:port), and its
// server_login_retry now.
type bouncerPos struct {
	name, pointsAt, iniAt, loginRetry string
	paused                            bool
}

// iniAtTarget reports whether every PgBouncer already serves the target
// and its ini says so too.
func (pos position) iniAtTarget() bool {
	for _, b := range pos.bouncers {
		if b.pointsAt != "to" || b.iniAt != "to" {
			return false
		}
	}
	return len(pos.bouncers) > 0
}

// servesSource reports whether SHOW DATABASES says the PgBouncer named
// name serves the source, whatever its ini says.
func (pos position) servesSource(name string) bool {
	for _, b := range pos.bouncers {
		if b.name == name {
			return b.pointsAt == "from"
		}
	}
	return false
}

// bouncerAtSource reports whether the PgBouncer named name serves the
// source and its ini says so too.
func (pos position) bouncerAtSource(name string) bool {
	for _, b := range pos.bouncers {
		if b.name == name {
			return b.pointsAt == "from" && b.iniAt == "from"
		}
	}
	return false
}

// stoppedPosition is where an attempt stands once writes stopped: nothing
// else has changed yet.
func (r *run) stoppedPosition() position {
	pos := position{stopped: true, drainedOn: true, oppositeSlot: r.d.rollback, oppositeSub: true,
		fromFenced: r.p.Method == MethodNologin, toClosed: true, held: r.p.HoldCommits > 0}
	for _, b := range r.p.Bouncers {
		pos.bouncers = append(pos.bouncers, bouncerPos{name: b.Name, pointsAt: "from", iniAt: "from", paused: true})
	}
	return pos
}

// where names an endpoint relative to the direction.
func (r *run) where(host string, port int) string {
	switch {
	case host == r.d.from.endpoint.Host && port == r.d.from.endpoint.Port:
		return "from"
	case host == r.d.to.endpoint.Host && port == r.d.to.endpoint.Port:
		return "to"
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// readPosition reads where the servers are.
func (r *run) readPosition(ctx context.Context) (position, error) {
	p, d, f, e := r.p, r.d, r.f, r.e
	var pos position
	for k, c := range e.consoles {
		b := p.Bouncers[k]
		if c.Closed() {
			fresh, err := ConnectConsole(ctx, b.Name, b.AdminConninfo, p.StatementTimeout)
			if err != nil {
				return pos, err
			}
			e.consoles[k].Close()
			e.consoles[k], c = fresh, fresh
		}
		db, err := c.Database(ctx, b.Database)
		if err != nil {
			return pos, err
		}
		pointsAt := r.where(db.Host, db.Port)
		// An ini that cannot be read (its host unreachable, its key not
		// verified) leaves the position to SHOW DATABASES, marked: an undo
		// then tries to put it back, and the precheck says why it failed.
		iniAt := pointsAt
		entry, err := r.ini(b).ReadEntry(ctx, b.Database)
		switch {
		case errors.Is(err, ErrIniUnreadable):
		case err != nil:
			iniAt = "unreadable (" + err.Error() + ")"
		default:
			port := 0
			fmt.Sscan(entry.Get("port"), &port)
			iniAt = r.where(entry.Get("host"), port)
		}
		cfg, err := c.Config(ctx)
		if err != nil {
			return pos, err
		}
		pos.bouncers = append(pos.bouncers, bouncerPos{name: b.Name, paused: db.Paused, pointsAt: pointsAt,
			iniAt: iniAt, loginRetry: cfg["server_login_retry"]})
	}
	var err error
	if pos.drainedOn, _, err = subscriptionsState(ctx, e.to, f.drainSubs); err != nil {
		return pos, err
	}
	if pos.oppositeOn, pos.oppositeSub, err = subscriptionsState(ctx, e.from, f.startSubs); err != nil {
		return pos, err
	}
	if pos.held, _, err = holdState(ctx, e.from, f.drainSubs); err != nil {
		return pos, err
	}
	r.held = pos.held
	pos.oppositeSlot = true
	if !d.rollback {
		if err := e.to.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", p.Reverse).Scan(&pos.oppositeSlot); err != nil {
			return pos, fmt.Errorf("look for slot %s: %w", p.Reverse, err)
		}
	}
	toOff, err := rolesToChange(ctx, e.to, p.FenceRoles, true)
	if err != nil {
		return pos, err
	}
	toOn, err := rolesToChange(ctx, e.to, p.FenceRoles, false)
	if err != nil {
		return pos, err
	}
	fromOn, err := rolesToChange(ctx, e.from, p.FenceRoles, false)
	if err != nil {
		return pos, err
	}
	if pos.toReadOnly, err = isReadOnly(ctx, e.to); err != nil {
		return pos, err
	}
	if pos.fromReadOnly, err = isReadOnly(ctx, e.from); err != nil {
		return pos, err
	}
	pos.toOpen = len(toOff) == 0 && !pos.toReadOnly
	pos.toClosed = len(toOn) == 0
	pos.fromFenced = len(fromOn) == 0 && len(p.FenceRoles) > 0
	switch p.Method {
	case MethodPgBouncer:
		pos.stopped, pos.atTarget = len(pos.bouncers) > 0, len(pos.bouncers) > 0
		for _, b := range pos.bouncers {
			pos.stopped = pos.stopped && b.paused
			pos.atTarget = pos.atTarget && !b.paused && b.pointsAt == "to"
		}
	case MethodNologin:
		pos.stopped = pos.fromFenced
		pos.atTarget = pos.stopped && pos.toOpen
	default:
		pos.stopped = pos.fromReadOnly
		pos.atTarget = pos.stopped && pos.toOpen
	}
	return pos, nil
}

// subscriptionsState reads whether any of subs is enabled, and whether all exist.
func subscriptionsState(ctx context.Context, c *pgxpool.Conn, subs []string) (anyEnabled, allExist bool, err error) {
	var n int
	err = c.QueryRow(ctx, "SELECT coalesce(bool_or(subenabled), false), count(*) FROM pg_subscription WHERE subname = ANY($1)", subs).Scan(&anyEnabled, &n)
	if err != nil {
		return false, false, fmt.Errorf("read subscriptions %s: %w", strings.Join(subs, ", "), err)
	}
	return anyEnabled, n == len(subs), nil
}

// describe says where the servers are, in a line.
func (r *run) describe(pos position) string {
	d := r.d
	name := func(w string) string {
		switch w {
		case "from":
			return d.from.name
		case "to":
			return d.to.name
		}
		return w
	}
	var parts []string
	for _, b := range pos.bouncers {
		s := fmt.Sprintf("PgBouncer %s -> %s", b.name, name(b.pointsAt))
		if b.iniAt != b.pointsAt {
			s += " (ini: " + name(b.iniAt) + ")"
		}
		if b.paused {
			s += ", PAUSED"
		}
		parts = append(parts, s)
	}
	onOff := func(on bool) string {
		if on {
			return "on"
		}
		return "off"
	}
	if pos.held {
		parts = append(parts, d.from.name+"'s commits held for "+d.to.name+"'s apply")
	}
	parts = append(parts, fmt.Sprintf("%s -> %s replication %s", d.from.name, d.to.name, onOff(pos.drainedOn)),
		fmt.Sprintf("%s -> %s replication %s", d.to.name, d.from.name, onOff(pos.oppositeOn)))
	switch {
	case pos.toOpen && pos.fromFenced:
		parts = append(parts, "application roles log in on "+d.to.name+" only")
	case pos.toOpen:
		parts = append(parts, "application roles log in on "+d.to.name+" and "+d.from.name)
	case pos.fromFenced:
		parts = append(parts, "application roles log in nowhere")
	default:
		parts = append(parts, "application roles log in on "+d.from.name+" only")
	}
	return strings.Join(parts, "; ")
}

// undoSteps take the servers from pos back to the source: PgBouncer back
// and resumed, the opposite feed stopped, the target closed again, the
// source open, the drained feed running again, the reverse replication of
// a cutover dropped. Each only when pos says it is needed.
func (r *run) undoSteps(pos position) []subStep {
	p, d, f := r.p, r.d, r.f
	var out []subStep
	if pos.held {
		// First: a RESUME must not let the application commit into a wait
		// for a feed being stopped.
		out = append(out, r.releaseStep(true))
	}
	if p.Method == MethodPgBouncer {
		back := false
		for _, b := range pos.bouncers {
			back = back || b.pointsAt != "from" || b.iniAt != "from"
		}
		if back {
			out = append(out, subStep{name: "repoint back to " + d.from.name, target: "pgbouncer",
				plan: func() []PlanLine {
					var out []PlanLine
					for _, b := range p.Bouncers {
						if !pos.bouncerAtSource(b.Name) {
							out = append(out, repointPlan(b, d.from, true)...)
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
					err := r.eachBouncer(ctx, func(ctx context.Context, c *Console, b BouncerParams) error {
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
					return "database entry -> " + d.from.endpoint.String() + ", RELOAD, WAIT_CLOSE", err
				}})
		}
	}
	if pos.oppositeOn {
		out = append(out, subStep{name: "stop " + d.to.name + " -> " + d.from.name + " replication", target: d.from.name,
			plan: func() []PlanLine { return stmtLines(disableSubscriptionStmts(d.from.name, f.startSubs)...) },
			run: func(ctx context.Context) (string, error) {
				return "disabled " + strings.Join(f.startSubs, ", "), disableSubscriptions(ctx, r.e.from, d.from.name, f.startSubs)
			}})
	}
	prior := r.p.Prior != nil && r.p.Prior.TargetReadOnly
	if !pos.toClosed || prior && !pos.toReadOnly {
		out = append(out, subStep{name: "close writes on " + d.to.name, target: d.to.name,
			plan: func() []PlanLine {
				out := stmtLines(loginStmts(d.to.name, p.FenceRoles, false)...)
				if prior {
					out = append(out, stmtLines(readOnlyStmt(d.to.name, d.to.endpoint.DBName, true))...)
				}
				return out
			},
			run: func(ctx context.Context) (string, error) {
				changed, err := setLogin(ctx, r.e.to, d.to.name, p.FenceRoles, false)
				if err == nil && prior && !pos.toReadOnly {
					err = readOnlyStmt(d.to.name, r.e.toDB, true).Exec(ctx, r.e.to)
				}
				return "NOLOGIN: " + orNone(changed), err
			}})
	}
	if p.Method == MethodPgBouncer {
		paused := false
		for _, b := range pos.bouncers {
			paused = paused || b.paused || b.loginRetry == "0"
		}
		if paused {
			out = append(out, subStep{name: "resume on " + d.from.name, target: "pgbouncer",
				plan: func() []PlanLine {
					var out []PlanLine
					for _, b := range p.Bouncers {
						out = append(out, stmtLines(SetStmt(b.Name, "server_login_retry", "0"), ResumeStmt(b.Name, b.Database))...)
					}
					return out
				},
				run: func(ctx context.Context) (string, error) { return "", r.resumeAll(ctx) }})
		}
	}
	if !pos.fromFenced && p.Method == MethodNologin || pos.fromFenced || pos.fromReadOnly {
		out = append(out, subStep{name: "open writes on " + d.from.name, target: d.from.name,
			plan: func() []PlanLine {
				return append(stmtLines(loginStmts(d.from.name, p.FenceRoles, true)...),
					stmtLines(readOnlyStmt(d.from.name, d.from.endpoint.DBName, false).with("where the readonly method set it"))...)
			},
			run: func(ctx context.Context) (string, error) {
				changed, err := setLogin(ctx, r.e.from, d.from.name, p.FenceRoles, true)
				if err == nil && pos.fromReadOnly {
					err = readOnlyStmt(d.from.name, r.e.fromDB, false).Exec(ctx, r.e.from)
				}
				return "LOGIN: " + orNone(changed), err
			}})
	}
	if !pos.drainedOn {
		out = append(out, subStep{name: "restart " + d.from.name + " -> " + d.to.name + " replication", target: d.to.name,
			plan: func() []PlanLine { return stmtLines(enableSubscriptionStmts(d.to.name, f.drainSubs)...) },
			run: func(ctx context.Context) (string, error) {
				return "enabled " + strings.Join(f.drainSubs, ", "), ExecAll(ctx, r.e.to, enableSubscriptionStmts(d.to.name, f.drainSubs))
			}})
	}
	if p.Method == MethodPgBouncer {
		out = append(out, r.restoreLoginRetryStep(), subStep{name: "verify target is " + d.from.name, target: "pgbouncer",
			plan: func() []PlanLine {
				return []PlanLine{noteLine("pgbouncer", "SHOW DATABASES and the ini must say %s, and SELECT version() through each PgBouncer must be %s's", d.from.endpoint, d.from.name)}
			},
			run: func(ctx context.Context) (string, error) { return r.verifyTarget(ctx, d.from, r.e.fromVersion) }})
	}
	if !d.rollback && (pos.oppositeSub || pos.oppositeSlot) {
		out = append(out, r.dropReverseStep())
	}
	return out
}

// postSwitchSteps finish an attempt whose traffic already moved: the
// checks, server_login_retry, the probe, the fence.
func (r *run) postSwitchSteps() []subStep {
	pos := position{stopped: true, oppositeSlot: true, oppositeSub: true, oppositeOn: true, toOpen: true}
	for _, b := range r.p.Bouncers {
		pos.bouncers = append(pos.bouncers, bouncerPos{name: b.Name, pointsAt: "to", iniAt: "to"})
	}
	all := r.forwardSteps(pos)
	var out []subStep
	for _, s := range all {
		if s.name != "sync sequences" && s.name != "resume" {
			out = append(out, s)
		}
	}
	return out
}

// wayOutSteps are the sub-steps a way out runs from pos, and whether it
// must then run a whole new attempt (finishing forward when writes reach
// the source again: what was drained is stale).
func (r *run) wayOutSteps(pos position, way string) (steps []subStep, fresh bool, reverse bool) {
	switch {
	case way == WayUndo && pos.atTarget:
		return nil, false, true // the switch happened: undoing it is the opposite attempt
	case way == WayUndo:
		return r.undoSteps(pos), false, false
	case pos.atTarget:
		return r.postSwitchSteps(), false, false
	case pos.stopped:
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
func WayOut(ctx context.Context, p CutoverParams, rollback bool, way string) (rep *Report, err error) {
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
		// The opposite attempt opens its own connections: this run's go
		// back to the pools first.
		r.e.close()
		r.e = nil
		r.j.close()
		r.j = newSubJournal(nil)
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
			r.rep.FinalTarget, r.rep.FinalVersion = r.d.from.endpoint.String(), r.e.fromVersion
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
func PlanWayOut(ctx context.Context, p CutoverParams, rollback bool) (finish, undo WayOutPlan, err error) {
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

// Traffic is where the application's writes go, read from the servers.
type Traffic struct {
	// Target is "blue", "green", "paused" or "unknown".
	Target string `json:"target"`
	// How says how it was determined, in a line.
	How string `json:"how"`
	// Warnings are what looks wrong (the roles can log in on both sides, an
	// ini that disagrees with what its PgBouncer serves).
	Warnings []string `json:"warnings,omitempty"`
	// Settled: nothing is half way: writes go to one side, no PgBouncer is
	// paused or would move at its next RELOAD, the roles log in on one side.
	Settled bool      `json:"settled"`
	ReadAt  time.Time `json:"read_at"`
}

// ReadTraffic reads where writes go: PgBouncer's SHOW DATABASES for the
// pgbouncer method, the fence roles' LOGIN (and read-only settings) on
// blue and green for every method.
func ReadTraffic(ctx context.Context, p CutoverParams) Traffic {
	p.defaults()
	t := Traffic{Target: "unknown", ReadAt: time.Now().UTC()}
	login := map[string]bool{}
	var how []string
	for _, s := range []side{{"blue", p.Blue, p.BlueEndpoint}, {"green", p.Green, p.GreenEndpoint}} {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			how = append(how, s.name+" unreachable: "+err.Error())
			continue
		}
		off, err := rolesToChange(ctx, c, p.FenceRoles, true)
		ro, rerr := isReadOnly(ctx, c)
		c.Release()
		if err != nil || rerr != nil {
			how = append(how, fmt.Sprintf("%s: %v", s.name, errJoin(err, rerr)))
			continue
		}
		login[s.name] = len(off) == 0 && !ro
		state := "closed (roles without LOGIN)"
		switch {
		case ro:
			state = "read-only"
		case login[s.name]:
			state = "open"
		}
		how = append(how, s.name+" "+state)
	}
	if login["blue"] && login["green"] && len(p.FenceRoles) > 0 {
		t.Warnings = append(t.Warnings, "the application roles can log in on both blue and green: writes may land on both")
	}
	if p.Method != MethodPgBouncer {
		switch {
		case login["blue"] && !login["green"]:
			t.Target = "blue"
		case login["green"] && !login["blue"]:
			t.Target = "green"
		case !login["blue"] && !login["green"] && len(how) == 2:
			t.Target = "paused"
		}
		t.How = strings.Join(how, "; ")
		t.Settled = (t.Target == "blue" || t.Target == "green") && len(t.Warnings) == 0
		return t
	}
	targets := map[string]bool{}
	var bhow []string
	for _, b := range p.Bouncers {
		c, err := ConnectConsole(ctx, b.Name, b.AdminConninfo, p.StatementTimeout)
		if err != nil {
			bhow = append(bhow, "PgBouncer "+b.Name+" unreachable: "+err.Error())
			targets["unknown"] = true
			continue
		}
		db, err := c.Database(ctx, b.Database)
		c.Close()
		if err != nil {
			bhow = append(bhow, err.Error())
			targets["unknown"] = true
			continue
		}
		to := fmt.Sprintf("%s:%d", db.Host, db.Port)
		switch {
		case db.Host == p.BlueEndpoint.Host && db.Port == p.BlueEndpoint.Port:
			to = "blue"
		case db.Host == p.GreenEndpoint.Host && db.Port == p.GreenEndpoint.Port:
			to = "green"
		}
		s := fmt.Sprintf("PgBouncer %s: SHOW DATABASES %s -> %s:%d (%s)", b.Name, b.Database, db.Host, db.Port, to)
		if e, err := ReadBouncerEntry(b.Ini, b.Database); err != nil {
			t.Warnings = append(t.Warnings, fmt.Sprintf("PgBouncer %s's ini could not be read: %v", b.Name, err))
		} else if e.Get("host") != db.Host || e.Get("port") != fmt.Sprint(db.Port) {
			t.Warnings = append(t.Warnings, fmt.Sprintf("PgBouncer %s's ini points %s at %s:%s while it serves %s:%d: its next RELOAD would move the traffic", b.Name, b.Database, e.Get("host"), e.Get("port"), db.Host, db.Port))
		}
		if db.Paused {
			s += ", paused"
			targets["paused"] = true
		} else {
			targets[to] = true
		}
		bhow = append(bhow, s)
	}
	switch {
	case targets["paused"]:
		t.Target = "paused"
	case len(targets) == 1 && (targets["blue"] || targets["green"]):
		for k := range targets {
			t.Target = k
		}
	}
	t.How = strings.Join(append(bhow, how...), "; ")
	t.Settled = (t.Target == "blue" || t.Target == "green") && len(t.Warnings) == 0
	return t
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

// SwitchState is where a switch in one direction stands.
type SwitchState struct {
	State string `json:"state"`
	// Where says what the servers say, in a line.
	Where string `json:"where"`
	// Paused: some PgBouncer holds the application's clients.
	Paused bool `json:"paused"`
}

// ReadSwitchState reads where a cutover (rollback false: source blue) or a
// rollback stands. p.Prior, when the caller has the attempt's, tells a
// server_login_retry left at 0 from one configured so.
func ReadSwitchState(ctx context.Context, p CutoverParams, rollback bool) (st SwitchState, err error) {
	r := newRun(&p, rollback, "")
	defer r.finish(&err)
	if r.e, err = r.open(ctx); err != nil {
		return st, err
	}
	pos, err := r.readPosition(ctx)
	if err != nil {
		return st, err
	}
	st.Where = r.describe(pos)
	retryLeft := false
	for _, b := range pos.bouncers {
		st.Paused = st.Paused || b.paused
		retryLeft = retryLeft || b.loginRetry == "0" && p.Prior != nil && p.Prior.LoginRetry[b.name] != "0"
	}
	fenced := pos.fromFenced || len(p.FenceRoles) == 0
	sourceClean := !pos.stopped && !st.Paused && pos.drainedOn && !pos.oppositeOn && pos.toClosed && !retryLeft && !pos.held
	if p.Method == MethodPgBouncer {
		for _, b := range pos.bouncers {
			// An ini that cannot be read is the precheck's to report (an
			// SSH host key refused there, nothing paused).
			iniOK := b.iniAt == "from" || strings.HasPrefix(b.iniAt, "unreadable")
			sourceClean = sourceClean && b.pointsAt == "from" && iniOK
		}
	}
	switch {
	case pos.atTarget && !pos.drainedOn && pos.oppositeOn && fenced && !retryLeft:
		st.State = StateTarget
	case sourceClean:
		st.State = StateSource
	default:
		st.State = StateBetween
	}
	return st, nil
}

// Guard is what the guard process does when the driver of an attempt died
// or stopped answering: unless the traffic already moved, the attempt is
// undone from where the servers are (PgBouncer resumed on the source, its
// ini put back, replication as before); if it moved, only
// server_login_retry is put back, and finishing (the fence) is left to the
// operator's way out. It returns what it did.
func Guard(ctx context.Context, p CutoverParams, rollback bool) (what string, rep *Report, err error) {
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
		_, err = r.runSteps(ctx, []subStep{r.restoreLoginRetryStep()})
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
func ReadPrior(ctx context.Context, p CutoverParams, rollback bool) (prior *Prior, err error) {
	p.Prior = nil
	r := newRun(&p, rollback, "")
	defer r.finish(&err)
	if r.e, err = r.open(ctx); err != nil {
		return nil, err
	}
	return p.Prior, nil
}

// Rehearse runs every precheck of a cutover (rollback false) or a rollback
// against the live servers, and with measurePause one bare PAUSE and
// RESUME of each PgBouncer, timed: the floor of a pause here. Nothing else
// changes. A failed precheck returns a *PrecheckError; the report holds
// the prechecks and, measured, the pauses.
func Rehearse(ctx context.Context, p CutoverParams, rollback, measurePause bool) (rep *Report, err error) {
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
	for k, c := range r.e.consoles {
		b := p.Bouncers[k]
		err := r.step(ctx, subStep{name: "PAUSE and RESUME " + b.Name, target: "pgbouncer " + b.Name,
			run: func(ctx context.Context) (string, error) {
				start := time.Now()
				if err := c.Pause(ctx, b.Database); err != nil {
					_ = c.Resume(context.WithoutCancel(ctx), b.Database)
					return "", err
				}
				if _, err := c.WaitServersIdle(ctx, b.Database); err != nil {
					_ = c.Resume(context.WithoutCancel(ctx), b.Database)
					return "", err
				}
				paused := time.Now()
				if err := c.Resume(context.WithoutCancel(ctx), b.Database); err != nil {
					return "", err
				}
				d := time.Since(start)
				r.rep.PausedMs = max(r.rep.PausedMs, ms(d))
				r.rep.bouncerTime(b.Name, "pause", paused.Sub(start))
				r.rep.bouncerTime(b.Name, "resume", time.Since(paused))
				return fmt.Sprintf("paused in %.1f ms, resumed %.1f ms later: %.1f ms in all", ms(paused.Sub(start)), ms(time.Since(paused)), ms(d)), nil
			}})
		if err != nil {
			r.rep.Outcome = OutcomeFailed
			return r.rep, err
		}
	}
	return r.rep, nil
}
