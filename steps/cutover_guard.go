package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/cutover"
)

// Around an attempt: its guard process, the ways out the screen offers,
// where the traffic goes, and the rehearsal (run --check).

// startGuard starts the guard of attempt n, once per step run.
func (e *Env) startGuard(ctx context.Context, n int) error {
	if e.guard == nil || e.unguard != nil {
		return nil
	}
	stop, err := e.guard(ctx, n)
	if err != nil {
		return fmt.Errorf("start the guard: %w", err)
	}
	e.unguard, e.guarded = stop, n
	e.Logf("guard started: if this process dies while writes are stopped, it undoes attempt %d", n)
	return e.editAttempt(n, func(a *state.Attempt) { a.Guard = "watching" })
}

// holdStops defers SIGTSTP (Ctrl+Z, kill -TSTP) from right before writes
// stop until the attempt is over: stopped then, the driver would keep every
// client paused until its guard gave up on it. For one that came
// meanwhile, releaseStops stops the process then (SIGSTOP: once Go has
// caught SIGTSTP, sending it again stops nothing), as Ctrl+Z would have;
// fg or SIGCONT goes on.
func (e *Env) holdStops() {
	if e.unstop != nil {
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTSTP)
	e.unstop = func() {
		signal.Stop(ch)
		select {
		case <-ch:
			e.Warnf("Ctrl+Z (SIGTSTP) came while writes were stopped: deferred until the attempt was over, now")
			_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		default:
		}
	}
}

// releaseStops ends holdStops' deferral.
func (e *Env) releaseStops() {
	if e.unstop != nil {
		e.unstop()
		e.unstop = nil
	}
}

// PausedPath is the marker a driver writes beside the state file right
// before PgBouncer's clients are paused, holding the time, and removes once
// they are resumed: its guard holds the pause to cutover.pause_budget.
func PausedPath(statePath string) string { return statePath + ".paused" }

// pausedPath is e's pause marker; "" without a state file.
func (e *Env) pausedPath() string {
	if e.store == nil {
		return ""
	}
	return PausedPath(e.store.Path())
}

// ReadPaused reads a pause marker: when the clients were paused, and
// whether they still are.
func ReadPaused(statePath string) (time.Time, bool) {
	b, err := os.ReadFile(PausedPath(statePath))
	if err != nil {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	return at, err == nil
}

// guardStoodDown is what an attempt's guard says once its driver ended
// the attempt itself: there was nothing for the guard to do.
const guardStoodDown = "stood down: the driver ended the attempt"

// stopGuard ends the guard once the attempt is over, and records that it
// stood down, unless it acted (then it said what it did).
func (e *Env) stopGuard() {
	if path := e.pausedPath(); path != "" {
		_ = os.Remove(path) // the attempt is over: whatever it paused, its guard is gone
	}
	if e.unguard == nil {
		return
	}
	e.unguard()
	e.unguard = nil
	err := e.editAttempt(e.guarded, func(a *state.Attempt) {
		if a.Guard == "watching" {
			a.Guard = guardStoodDown
		}
	})
	if err != nil {
		e.Logf("record that the guard stood down: %v", err)
	}
}

// GuardAttempt is what the guard process does once the driver of attempt
// n died or stopped answering: the attempt is undone from where the
// servers are (or, past its switch, server_login_retry put back), the
// report written, and the attempt records what the guard did.
func GuardAttempt(ctx context.Context, r *Runner, n int) (string, error) {
	var a state.Attempt
	found := false
	for _, x := range r.Store.Snapshot().Attempts {
		if x.N == n {
			a, found = x, true
		}
	}
	if !found {
		return "", fmt.Errorf("no attempt %d in %s", n, r.Store.Path())
	}
	rollback := a.Step == rollbackStepID
	e := r.Env(a.Step)
	e.guard = nil
	ctx = pg.WithJournal(WithStep(ctx, a.Step), r.journalStmt)
	p, err := e.cutoverParams(ctx, rollback)
	if err != nil {
		return "", err
	}
	p.ReplicationPassword, _ = e.Config.ReplicationPassword() // an undo creates nothing that needs it
	p.FenceRoles = union(p.FenceRoles, a.FenceRoles)
	p.Prior = priorOf(a)
	p.Hooks, p.Guarded = attemptHooks{e: e}, false // the guard never holds: it is what unblocks
	e.Warnf("guard: the driver of %s attempt %d (pid %d) is gone while the attempt ran: acting", a.Step, n, a.DriverPID)
	what, rep, gerr := cutover.Guard(ctx, p, rollback)
	at := time.Now().UTC().Format(time.RFC3339Nano)
	report := ""
	if rep != nil {
		base := filepath.Join(e.reportDir(), fmt.Sprintf("%s-guard-%s", a.Step, rep.StartedAt.UTC().Format(reportTimeLayout)))
		if err := rep.WriteFiles(base); err == nil {
			report = base + ".json"
		}
	}
	err = e.editAttempt(n, func(x *state.Attempt) {
		x.Guard = fmt.Sprintf("%s at %s (report %s)", what, at, report)
		if gerr != nil {
			x.Guard += "; failed: " + gerr.Error()
		} else if rep != nil && rep.Outcome == cutover.OutcomeAborted {
			x.Outcome = state.AttemptAborted
		}
	})
	e.Logf("guard: %s", what)
	return what, errors.Join(gerr, err)
}

// WaysOut is where a cutover or rollback that stopped half way stands, and
// what each way out would run now.
type WaysOut struct {
	Where          string
	Finish, Undo   []string // sub-step names
	FinishThen     string   // what follows the finish's sub-steps, if anything
	UndoThen       string
	Step, From, To string
}

// WaysOut reads whether step (cutover or rollback) stopped half way; if so
// it returns its two ways out, to offer the operator (RunParams.Way).
func (r *Runner) WaysOut(ctx context.Context, step string) (WaysOut, bool, error) {
	if step != cutoverStepID && step != rollbackStepID {
		return WaysOut{}, false, nil
	}
	rollback := step == rollbackStepID
	n := namesOf(rollback)
	e := r.Env(step)
	if err := e.needBoth(); err != nil {
		return WaysOut{}, false, err
	}
	p, err := e.cutoverParams(ctx, rollback)
	if err != nil {
		return WaysOut{}, false, err
	}
	st, err := cutover.ReadSwitchState(ctx, p, rollback)
	if err != nil || st.State != cutover.StateBetween {
		return WaysOut{}, false, err
	}
	if a, ok := e.lastAttempt(step); ok {
		p.FenceRoles = union(p.FenceRoles, a.FenceRoles)
		p.Prior = priorOf(a)
	}
	finish, undo, err := cutover.PlanWayOut(ctx, p, rollback)
	if err != nil {
		return WaysOut{}, true, err
	}
	names := func(w cutover.WayOutPlan) []string {
		var out []string
		for _, s := range w.SubSteps {
			out = append(out, s.Name)
		}
		return out
	}
	return WaysOut{Where: st.Where, Finish: names(finish), Undo: names(undo), FinishThen: finish.Then, UndoThen: undo.Then,
		Step: step, From: n.from, To: n.to}, true, nil
}

// rehearse runs the cutover's (or the rollback's) live prechecks, and with
// measure one bare PAUSE/RESUME of each PgBouncer, timed; it writes the
// report (its precheck table) and changes nothing else.
func (e *Env) rehearse(ctx context.Context, rollback, measure bool) error {
	n := namesOf(rollback)
	if err := e.needBoth(); err != nil {
		return err
	}
	if err := e.refuseSchemaDrift(ctx, rollback); err != nil {
		return err
	}
	if err := e.refuseLoginsThatFail(ctx, rollback); err != nil {
		return err
	}
	p, err := e.cutoverParams(ctx, rollback)
	if err != nil {
		return err
	}
	p.ReplicationPassword, _ = e.Config.ReplicationPassword() // its absence is a precheck's to report
	p.Hooks = waitingHooks{e: e}
	e.Logf("%s rehearsal: every live precheck%s; nothing else changes", n.step, map[bool]string{true: ", then one bare PAUSE/RESUME of each PgBouncer", false: ""}[measure])
	rep, runErr := cutover.Rehearse(ctx, p, rollback, measure)
	if rep != nil {
		base := filepath.Join(e.reportDir(), fmt.Sprintf("%s-check-%s", n.step, rep.StartedAt.UTC().Format(reportTimeLayout)))
		if err := rep.WriteFiles(base); err == nil {
			e.Logf("report: %s.json and %s.md", base, base)
		}
		if measure && rep.PausedMs > 0 {
			e.Logf("bare PAUSE/RESUME: %.1f ms at most (the floor of a pause through PgBouncer here)", rep.PausedMs)
		}
	}
	var pe *cutover.PrecheckError
	if errors.As(runErr, &pe) {
		return e.refuse("%s", pe.Error())
	}
	if runErr == nil {
		e.Logf("every precheck passed: the %s would start now", n.step)
	}
	return runErr
}

// waitingHooks follow a rehearsal: what its prechecks wait for is logged
// as the cutover's is.
type waitingHooks struct {
	cutover.NoHooks
	e *Env
}

// Waiting logs what the prechecks wait for.
func (h waitingHooks) Waiting(s string) { h.e.Logf("%s", s) }

// logPrecheck streams one precheck to the log.
func (e *Env) logPrecheck(c cutover.Check) {
	switch {
	case !c.OK:
		e.Warnf("precheck FAILED: %s: %s", c.Name, c.Detail)
	case c.Warn:
		e.Warnf("precheck ok, but: %s: %s", c.Name, c.Detail)
	default:
		e.Logf("precheck ok: %s: %s", c.Name, c.Detail)
	}
}
