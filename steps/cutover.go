package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps/cutover"
)

// The cutover and rollback steps: a cycle (cut over, roll back, cut over
// again) whose every attempt is kept in the state. Where traffic goes is
// read from the servers, never only from what was recorded: an attempt
// that aborted is failed, and one that stopped half way offers two ways
// out, finish forward or undo back, each from wherever the servers are.

func cutoverStep() *Step {
	return &Step{ID: cutoverStepID, Phase: PhaseCutover, Target: PgBouncer, Title: "Cut over to green",
		Why: "Writes pause, green drains to blue's last LSN, sequences are synced, reverse replication is set up, traffic moves to green, " +
			"and blue is fenced: the application's roles can no longer connect to the databases that moved (a database staying on blue keeps serving them).",
		Source: "000, 001 §10-12, 002", Destructive: true, Recheck: true, Reopens: []string{rollbackStepID},
		Records:  []string{CutoverReportKey, CutoverDoneAtKey},
		Plan:     func(ctx context.Context, e *Env) ([]Action, error) { return e.planSwitch(ctx, false) },
		Check:    func(ctx context.Context, e *Env) (CheckResult, error) { return e.checkSwitch(ctx, false) },
		Run:      func(ctx context.Context, e *Env) error { return e.switchover(ctx, false) },
		Rehearse: func(ctx context.Context, e *Env, measure bool) error { return e.rehearse(ctx, false, measure) },
	}
}

func rollbackStep() *Step {
	return &Step{ID: rollbackStepID, Phase: PhaseCutover, Target: PgBouncer, Title: "Roll back to blue",
		Why:    "The cutover in reverse through the reverse replication, sequences included; the fence moves to green, and the cutover can run again.",
		Source: "001 ROLLBACK", Destructive: true, Optional: true, Recheck: true,
		// The traffic switches it puts back are to do again after a new cutover.
		Reopens:  []string{cutoverStepID, switchTrafficID, readersToGreenID},
		Records:  []string{RollbackReportKey, RollbackDoneAtKey},
		Plan:     func(ctx context.Context, e *Env) ([]Action, error) { return e.planSwitch(ctx, true) },
		Check:    func(ctx context.Context, e *Env) (CheckResult, error) { return e.checkSwitch(ctx, true) },
		Run:      func(ctx context.Context, e *Env) error { return e.switchover(ctx, true) },
		Rehearse: func(ctx context.Context, e *Env, measure bool) error { return e.rehearse(ctx, true, measure) },
	}
}

// Values recorded by the cutover and the rollback.
const (
	CutoverReportKey   = "cutover_report"
	CutoverDoneAtKey   = "cutover_done_at"
	RollbackReportKey  = "rollback_report"
	RollbackDoneAtKey  = "rollback_done_at"
	reportTimeLayout   = "20060102T150405Z"
	cutoverStepID      = cutover.NameCutover
	rollbackStepID     = cutover.NameRollback
	reverseReplication = cutover.DefaultReverseName
)

// names are what a direction calls its step, its values and its sides.
type switchNames struct {
	step, reportKey, doneKey, from, to string
}

func namesOf(rollback bool) switchNames {
	if rollback {
		return switchNames{rollbackStepID, RollbackReportKey, RollbackDoneAtKey, "green", "blue"}
	}
	return switchNames{cutoverStepID, CutoverReportKey, CutoverDoneAtKey, "blue", "green"}
}

// cutoverState reads the recorded times: the cutover counts as in force
// when it is recorded and no rollback is recorded after it. The servers
// are the truth (checkSwitch); this is what cleanup reads offline.
func cutoverState(e *Env) (cutAt, rolledAt time.Time, inForce bool) {
	if v, ok := e.Value(CutoverDoneAtKey); ok {
		cutAt, _ = time.Parse(time.RFC3339Nano, v)
	}
	if v, ok := e.Value(RollbackDoneAtKey); ok {
		rolledAt, _ = time.Parse(time.RFC3339Nano, v)
	}
	return cutAt, rolledAt, !cutAt.IsZero() && !rolledAt.After(cutAt)
}

// checkSwitch reads where the servers are: the step is done when its
// switch is in force (traffic on its target, the feed back running, the
// other side fenced). Half way is not done: the run then offers the two
// ways out.
func (e *Env) checkSwitch(ctx context.Context, rollback bool) (CheckResult, error) {
	n := namesOf(rollback)
	if err := e.needBoth(); err != nil {
		return CheckResult{}, err
	}
	p, err := e.cutoverParams(ctx, rollback)
	if err != nil {
		return CheckResult{}, err
	}
	st, err := cutover.ReadSwitchState(ctx, p, rollback)
	if err != nil {
		return CheckResult{}, fmt.Errorf("read where the servers are: %w", err)
	}
	pending := false
	if rollback && st.State == cutover.StateTarget {
		if pending, err = e.revertsPending(); err != nil {
			return CheckResult{}, err
		}
	}
	switch {
	case st.State == cutover.StateTarget && rollback && !e.everCutOver():
		return CheckResult{Detail: "no cutover to roll back: writes go to blue: " + st.Where}, nil
	case pending:
		return CheckResult{Detail: "writes go to blue, but the traffic switch (secret, parameters, DNS) still points at green: running rollback puts it back"}, nil
	case st.State == cutover.StateTarget:
		return CheckResult{Done: true, Detail: fmt.Sprintf("writes go to %s: %s", n.to, st.Where)}, nil
	case st.State == cutover.StateSource:
		return CheckResult{Detail: fmt.Sprintf("writes go to %s: %s", n.from, st.Where)}, nil
	}
	return CheckResult{Detail: fmt.Sprintf("a %s stopped half way: %s", n.step, st.Where)}, nil
}

// planSwitch is the plan of the cutover or the rollback: offline, the
// attempt's sub-steps with placeholders; live (a dry run), with the roles
// and settings read now, or, when an attempt stopped half way, the two
// ways out as they would run now.
func (e *Env) planSwitch(ctx context.Context, rollback bool) ([]Action, error) {
	p, err := e.cutoverParams(ctx, rollback)
	if err != nil && !e.IsOffline() {
		return nil, err
	}
	var out []Action
	if !e.IsOffline() {
		st, err := cutover.ReadSwitchState(ctx, p, rollback)
		if err != nil {
			return nil, fmt.Errorf("read where the servers are: %w", err)
		}
		out = append(out, note(BlueGreen, "now: %s", st.Where))
		if st.State == cutover.StateBetween {
			finish, undo, err := cutover.PlanWayOut(ctx, p, rollback)
			if err != nil {
				return nil, err
			}
			out = append(out, note(BlueGreen, "an attempt stopped half way: refused without a way out; each runs the sub-steps below"))
			for _, w := range []cutover.WayOutPlan{finish, undo} {
				out = append(out, note(Operator, "--%s: %s", w.Way, orThen(w.Then)))
				out = append(out, subStepActions(w.SubSteps)...)
			}
			return out, nil
		}
		if p.Prior, err = cutover.ReadPrior(ctx, p, rollback); err != nil {
			return nil, err
		}
	}
	out = append(out, note(BlueGreen, "prechecks, each reported; if one fails nothing changes: %s", strings.Join(precheckNames(p, rollback), "; ")))
	out = append(out, subStepActions(cutover.Plan(p, rollback))...)
	if !rollback {
		return out, nil
	}
	// Then the traffic switches of switch-traffic (and readers-to-green) are
	// put back as they were.
	revert, err := e.revertTrafficPlan(ctx)
	if err != nil {
		return nil, err
	}
	return append(out, revert...), nil
}

func orThen(then string) string {
	if then == "" {
		return "the sub-steps below, and nothing else"
	}
	return "the sub-steps below, then " + then
}

func precheckNames(p cutover.Params, rollback bool) []string {
	out := []string{fmt.Sprintf("lag below %d bytes", p.MaxLagBytes),
		fmt.Sprintf("subscriptions healthy (no apply error within %s)", p.Health.Window),
		"the application does not log in as pgbluegreen's role"}
	if p.Method == cutover.MethodPgBouncer {
		out = append(out, "each PgBouncer points at the source, transaction pooling, not paused, SELECT version() through it is the source's",
			"no session on the source bypasses PgBouncer")
	}
	out = append(out, "sequences exist on the target and none is ahead there")
	if !rollback {
		out = append(out, "blue's and green's schemas match (one fingerprint per side; the objects named when they differ)")
	}
	if rollback {
		return append(out, "blue's slots kept, green's subscriptions disabled")
	}
	return append(out, fmt.Sprintf("green can host the reverse replication (wal_level, a free slot and walsender, role %s)", p.ReplicationRole))
}

// subStepActions renders pg's planned sub-steps as plan actions, each
// sub-step's name first.
func subStepActions(steps []cutover.PlannedSubStep) []Action {
	var out []Action
	for _, s := range steps {
		out = append(out, Action{Target: Target(s.Target), Kind: "note", Text: "== " + s.Name})
		for _, l := range s.Lines {
			out = append(out, Action{Target: Target(l.On), Kind: l.Kind, Text: l.Text})
		}
	}
	return out
}

// switchover runs the cutover or the rollback (or, after one stopped half
// way, the way out the operator chose), keeps the attempt in the state and
// writes its report.
func (e *Env) switchover(ctx context.Context, rollback bool) error {
	n := namesOf(rollback)
	if err := e.needBoth(); err != nil {
		return err
	}
	p, err := e.cutoverParams(ctx, rollback)
	if err != nil {
		return err
	}
	// The password goes only into the reverse subscription's statement.
	if p.ReplicationPassword, err = e.Config.ReplicationPassword(); err != nil {
		return err
	}
	st, err := cutover.ReadSwitchState(ctx, p, rollback)
	if err != nil {
		return fmt.Errorf("read where the servers are: %w", err)
	}
	switch {
	case st.State == cutover.StateBetween && e.way == "":
		return e.refuseHalfWay(ctx, p, rollback, st)
	case st.State != cutover.StateBetween && e.way != "":
		return e.refuse("nothing stopped half way (%s): run %s without --%s", st.Where, n.step, e.way)
	case st.State == cutover.StateTarget && rollback:
		if pending, err := e.revertsPending(); err != nil || pending {
			if err == nil {
				e.Logf("writes go to blue already; putting the traffic switch back")
				err = e.revertTraffic(ctx)
			}
			return err
		}
		if !e.everCutOver() {
			return e.refuse("no cutover to roll back: writes go to blue (%s)", st.Where)
		}
		return e.refuse("the rollback is in force already: %s", st.Where)
	case st.State == cutover.StateTarget:
		return e.refuse("the %s is in force already: %s", n.step, st.Where)
	}
	if err := e.refuseSchemaDrift(ctx, rollback); err != nil {
		return err
	}
	if err := e.refuseLoginsThatFail(ctx, rollback); err != nil {
		return err
	}
	if e.way != "" {
		// The way out runs for the attempt that stopped: its roles and settings.
		if a, ok := e.lastAttempt(n.step); ok {
			p.FenceRoles = union(p.FenceRoles, a.FenceRoles)
			p.Prior = priorOf(a)
		}
	}
	att, err := e.beginAttempt(n.step, p)
	if err != nil {
		return err
	}
	p.Hooks, p.Guarded = attemptHooks{e: e, n: att, hold: holdPoint()}, true
	defer e.releaseStops() // after the guard stood down: a Ctrl+Z deferred stops this process then
	defer e.stopGuard()
	if e.way != "" && st.Paused {
		// Writes are stopped already: the guard watches the way out too.
		e.holdStops()
		if err := e.startGuard(ctx, att); err != nil {
			return err
		}
	}
	var rep *cutover.Report
	var runErr error
	switch {
	case e.way != "":
		e.Logf("%s, way out %s, method %s, from: %s", n.step, e.way, p.Method, st.Where)
		rep, runErr = cutover.WayOut(ctx, p, rollback, e.way)
	case rollback:
		e.Logf("rollback with method %s: prechecks, then the sub-steps, each timed", p.Method)
		rep, runErr = cutover.Rollback(ctx, p)
	default:
		e.Logf("cutover with method %s: prechecks, then the sub-steps, each timed", p.Method)
		rep, runErr = cutover.Cutover(ctx, p)
	}
	return e.endAttempt(ctx, att, n, rep, runErr)
}

// refuseHalfWay refuses to start over an attempt that stopped half way,
// naming the two ways out and what each would run now.
func (e *Env) refuseHalfWay(ctx context.Context, p cutover.Params, rollback bool, st cutover.SwitchState) error {
	n := namesOf(rollback)
	if a, ok := e.lastAttempt(n.step); ok {
		p.FenceRoles = union(p.FenceRoles, a.FenceRoles)
		p.Prior = priorOf(a)
	}
	finish, undo, err := cutover.PlanWayOut(ctx, p, rollback)
	if err != nil {
		return e.refuse("a %s stopped half way (%s); its ways out could not be read: %v", n.step, st.Where, err)
	}
	names := func(w cutover.WayOutPlan) string {
		var s []string
		for _, x := range w.SubSteps {
			s = append(s, x.Name)
		}
		out := strings.Join(s, ", ")
		if out == "" {
			out = "nothing left to change"
		}
		if w.Then != "" {
			out += ", then " + w.Then
		}
		return out
	}
	return e.refuse("a %s stopped half way: %s. Two ways out: finish forward to %s (`pgbluegreen run %s --finish --yes`): %s; or undo back to %s (`pgbluegreen run %s --undo --yes`): %s",
		n.step, st.Where, n.to, n.step, names(finish), n.from, n.step, names(undo))
}
