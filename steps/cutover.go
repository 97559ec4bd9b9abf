package steps

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// The cutover and rollback steps: a cycle (cut over, roll back, cut over
// again) whose every attempt is kept in the state. Where traffic goes is
// read from the servers, never only from what was recorded: an attempt
// that aborted is failed, and one that stopped half way offers two ways
// out, finish forward or undo back, each from wherever the servers are.

func cutover() *Step {
	return &Step{ID: cutoverStepID, Phase: PhaseCutover, Target: PgBouncer, Title: "Cut over to green",
		Why: "Writes pause, green drains to blue's last LSN, sequences are synced, reverse replication is set up, traffic moves to green, " +
			"and blue is fenced: its application roles lose LOGIN.",
		Source: "000, 001 §10-12, 002", Destructive: true, Recheck: true, Reopens: []string{rollbackStepID},
		Records:  []string{CutoverReportKey, CutoverDoneAtKey},
		Plan:     func(ctx context.Context, e *Env) ([]Action, error) { return e.planSwitch(ctx, false) },
		Check:    func(ctx context.Context, e *Env) (CheckResult, error) { return e.checkSwitch(ctx, false) },
		Run:      func(ctx context.Context, e *Env) error { return e.switchover(ctx, false) },
		Rehearse: func(ctx context.Context, e *Env, measure bool) error { return e.rehearse(ctx, false, measure) },
	}
}

func rollback() *Step {
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
	cutoverStepID      = "cutover"
	rollbackStepID     = "rollback"
	reverseReplication = pg.DefaultReverseName
	// HoldEnv names a test hook: set to a sub-step's name, the driver stops
	// right before it (writing HoldFile beside the state file) until its
	// context ends or it is killed.
	HoldEnv  = "PGBG_TEST_HOLD_AT"
	HoldFile = "pgbluegreen.held"
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
	st, err := pg.ReadSwitchState(ctx, p, rollback)
	if err != nil {
		return CheckResult{}, fmt.Errorf("read where the servers are: %w", err)
	}
	pending := false
	if rollback && st.State == pg.StateTarget {
		if pending, err = e.revertsPending(); err != nil {
			return CheckResult{}, err
		}
	}
	switch {
	case st.State == pg.StateTarget && rollback && !e.everCutOver():
		return CheckResult{Detail: "no cutover to roll back: writes go to blue: " + st.Where}, nil
	case pending:
		return CheckResult{Detail: "writes go to blue, but the traffic switch (secret, parameters, DNS) still points at green: running rollback puts it back"}, nil
	case st.State == pg.StateTarget:
		return CheckResult{Done: true, Detail: fmt.Sprintf("writes go to %s: %s", n.to, st.Where)}, nil
	case st.State == pg.StateSource:
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
		st, err := pg.ReadSwitchState(ctx, p, rollback)
		if err != nil {
			return nil, fmt.Errorf("read where the servers are: %w", err)
		}
		out = append(out, note(BlueGreen, "now: %s", st.Where))
		if st.State == pg.StateBetween {
			finish, undo, err := pg.PlanWayOut(ctx, p, rollback)
			if err != nil {
				return nil, err
			}
			out = append(out, note(BlueGreen, "an attempt stopped half way: refused without a way out; each runs the sub-steps below"))
			for _, w := range []pg.WayOutPlan{finish, undo} {
				out = append(out, note(Operator, "--%s: %s", w.Way, orThen(w.Then)))
				out = append(out, subStepActions(w.SubSteps)...)
			}
			return out, nil
		}
		if p.Prior, err = pg.ReadPrior(ctx, p, rollback); err != nil {
			return nil, err
		}
	}
	out = append(out, note(BlueGreen, "prechecks, each reported; if one fails nothing changes: %s", strings.Join(precheckNames(p, rollback), "; ")))
	out = append(out, subStepActions(pg.Plan(p, rollback))...)
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

func precheckNames(p pg.CutoverParams, rollback bool) []string {
	out := []string{fmt.Sprintf("lag below %d bytes", p.MaxLagBytes),
		fmt.Sprintf("subscriptions healthy (no apply error within %s)", p.Health.Window),
		"the application does not log in as pgbluegreen's role"}
	if p.Method == pg.MethodPgBouncer {
		out = append(out, "each PgBouncer points at the source, transaction pooling, not paused, SELECT version() through it is the source's",
			"no session on the source bypasses PgBouncer")
	}
	out = append(out, "sequences exist on the target and none is ahead there")
	if rollback {
		return append(out, "blue's slots kept, green's subscriptions disabled")
	}
	return append(out, fmt.Sprintf("green can host the reverse replication (wal_level, a free slot and walsender, role %s)", p.ReplicationRole))
}

// subStepActions renders pg's planned sub-steps as plan actions, each
// sub-step's name first.
func subStepActions(steps []pg.PlannedSubStep) []Action {
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
	st, err := pg.ReadSwitchState(ctx, p, rollback)
	if err != nil {
		return fmt.Errorf("read where the servers are: %w", err)
	}
	switch {
	case st.State == pg.StateBetween && e.way == "":
		return e.refuseHalfWay(ctx, p, rollback, st)
	case st.State != pg.StateBetween && e.way != "":
		return e.refuse("nothing stopped half way (%s): run %s without --%s", st.Where, n.step, e.way)
	case st.State == pg.StateTarget && rollback:
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
	case st.State == pg.StateTarget:
		return e.refuse("the %s is in force already: %s", n.step, st.Where)
	}
	if err := e.refuseSchemaDrift(ctx, rollback); err != nil { // helper D: monitor_drift.go
		return err
	}
	if e.way != "" {
		// The way out runs for the attempt that stopped: its roles and settings.
		if a, ok := e.lastAttempt(n.step); ok {
			p.FenceRoles = union(p.FenceRoles, a.FenceRoles)
			p.Prior = &pg.Prior{LoginRetry: a.LoginRetry, TargetReadOnly: a.TargetReadOnly}
		}
	}
	att, err := e.beginAttempt(n.step, p)
	if err != nil {
		return err
	}
	p.OnPrior = func(prior pg.Prior) error { return e.recordPrior(att, prior) }
	defer e.stopGuard()
	p.BeforePause = func(ctx context.Context) error { return e.startGuard(ctx, att) }
	if e.way != "" && st.Paused {
		// Writes are stopped already: the guard watches the way out too.
		if err := e.startGuard(ctx, att); err != nil {
			return err
		}
	}
	p.OnPrecheck = e.logPrecheck
	var rep *pg.Report
	var runErr error
	switch {
	case e.way != "":
		e.Logf("%s, way out %s, method %s, from: %s", n.step, e.way, p.Method, st.Where)
		rep, runErr = pg.WayOut(ctx, p, rollback, e.way)
	case rollback:
		e.Logf("rollback with method %s: prechecks, then the sub-steps, each timed", p.Method)
		rep, runErr = pg.Rollback(ctx, p)
	default:
		e.Logf("cutover with method %s: prechecks, then the sub-steps, each timed", p.Method)
		rep, runErr = pg.Cutover(ctx, p)
	}
	return e.endAttempt(ctx, att, n, rep, runErr)
}

// refuseHalfWay refuses to start over an attempt that stopped half way,
// naming the two ways out and what each would run now.
func (e *Env) refuseHalfWay(ctx context.Context, p pg.CutoverParams, rollback bool, st pg.SwitchState) error {
	n := namesOf(rollback)
	if a, ok := e.lastAttempt(n.step); ok {
		p.FenceRoles = union(p.FenceRoles, a.FenceRoles)
		p.Prior = &pg.Prior{LoginRetry: a.LoginRetry, TargetReadOnly: a.TargetReadOnly}
	}
	finish, undo, err := pg.PlanWayOut(ctx, p, rollback)
	if err != nil {
		return e.refuse("a %s stopped half way (%s); its ways out could not be read: %v", n.step, st.Where, err)
	}
	names := func(w pg.WayOutPlan) string {
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

// everCutOver reports whether a cutover ever went through in this run.
func (e *Env) everCutOver() bool {
	if _, ok := e.Value(CutoverDoneAtKey); ok {
		return true
	}
	if e.store != nil {
		for _, a := range e.store.Snapshot().Attempts {
			if a.Step == cutoverStepID && a.Outcome == state.AttemptDone {
				return true
			}
		}
	}
	return false
}

func (e *Env) lastAttempt(step string) (state.Attempt, bool) {
	if e.store == nil {
		return state.Attempt{}, false
	}
	return e.store.Snapshot().LastAttempt(step)
}

// beginAttempt records a new attempt, running, before anything changes.
func (e *Env) beginAttempt(step string, p pg.CutoverParams) (int, error) {
	if e.store == nil {
		return 0, nil
	}
	var n int
	err := e.store.Update(func(s *state.State) error {
		n = len(s.Attempts) + 1
		s.Attempts = append(s.Attempts, state.Attempt{N: n, Step: step, Way: e.way, Method: p.Method,
			StartedAt: time.Now().UTC(), Outcome: state.AttemptRunning, FenceRoles: p.FenceRoles, DriverPID: os.Getpid()})
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record the attempt: %w", err)
	}
	return n, nil
}

// recordPrior keeps what the attempt found before it changed anything.
func (e *Env) recordPrior(n int, prior pg.Prior) error {
	return e.editAttempt(n, func(a *state.Attempt) {
		a.LoginRetry, a.TargetReadOnly = prior.LoginRetry, prior.TargetReadOnly
	})
}

func (e *Env) editAttempt(n int, f func(a *state.Attempt)) error {
	if e.store == nil || n == 0 {
		return nil
	}
	return e.store.Update(func(s *state.State) error {
		for k := range s.Attempts {
			if s.Attempts[k].N == n {
				f(&s.Attempts[k])
			}
		}
		return nil
	})
}

// endAttempt writes the report and records how the attempt ended; a
// failed precheck is a refusal (nothing changed), an abort a failure.
func (e *Env) endAttempt(ctx context.Context, n int, names switchNames, rep *pg.Report, runErr error) error {
	report := ""
	if rep != nil {
		way := ""
		if rep.Way != "" {
			way = "-" + rep.Way
		}
		base := filepath.Join(e.reportDir(), fmt.Sprintf("%s%s-%s", names.step, way, rep.StartedAt.UTC().Format(reportTimeLayout)))
		if err := rep.WriteFiles(base); err != nil {
			e.Warnf("the report could not be written: %v", err)
		} else {
			report = base + ".json"
			e.Logf("report: %s.json and %s.md", base, base)
			if err := e.Record(names.reportKey, report); err != nil {
				return err
			}
		}
	}
	outcome := state.AttemptFailed
	if rep != nil {
		switch rep.Outcome {
		case pg.OutcomeDone:
			outcome = state.AttemptDone
		case pg.OutcomeAborted:
			outcome = state.AttemptAborted
		case pg.OutcomeRefused:
			outcome = state.AttemptRefused
		}
	}
	var pe *pg.PrecheckError
	if errors.As(runErr, &pe) {
		outcome = state.AttemptRefused
	}
	now := time.Now().UTC()
	if err := e.editAttempt(n, func(a *state.Attempt) {
		a.Outcome, a.FinishedAt, a.Report = outcome, &now, report
		if rep != nil {
			a.FenceRoles = rep.FenceRoles
		}
		if runErr != nil {
			a.Error = runErr.Error()
		}
	}); err != nil {
		return err
	}
	if rep != nil {
		if err := e.recordHealth(rep.ErrorCount); err != nil {
			return err
		}
	}
	undone := e.way == pg.WayUndo && rep != nil && runErr == nil &&
		(outcome == state.AttemptAborted && rep.Direction == names.step || outcome == state.AttemptDone && rep.Direction != names.step)
	if rep != nil {
		for _, w := range rep.Warnings {
			e.Warnf("%s", w)
		}
	}
	switch {
	case pe != nil:
		return e.refuse("%s", pe.Error())
	case undone:
		return &UndoneError{Detail: fmt.Sprintf("writes go to %s again (%s); run %s again when ready", names.from, rep.FinalTarget, names.step)}
	case outcome != state.AttemptDone:
		if runErr == nil {
			runErr = fmt.Errorf("%s ended %s", names.step, outcome)
		}
		return runErr
	}
	if err := e.Record(names.doneKey, rep.FinishedAt.UTC().Format(time.RFC3339Nano)); err != nil {
		return err
	}
	if names.step == rollbackStepID {
		// Writes are on blue again: the secret, parameters and DNS record
		// switch-traffic pointed at green go back to what they were.
		if err := e.revertTraffic(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("rolled back to blue, but the traffic switch could not be put back: %w; run rollback again to retry it", err)
		}
	}
	e.Logf("writes go to %s; paused %.1f ms, longest probe stall %.1f ms, %d sequences synced in %.1f ms; fenced on %s: %s",
		rep.FinalTarget, rep.PausedMs, rep.Probe.MaxStallMs, rep.Sequences, rep.SeqSyncMs, names.from, strings.Join(rep.FenceRoles, ", "))
	return runErr
}

// onSubStep streams each sub-step to the log pane and the journal.
func (e *Env) onSubStep(s pg.SubStep) {
	ms := float64(s.Duration.Microseconds()) / 1000
	if s.Error != "" {
		e.Warnf("%-34s %8.1f ms  [%s] FAILED: %s", s.Name, ms, s.Target, s.Error)
		return
	}
	e.Logf("%-34s %8.1f ms  [%s] %s", s.Name, ms, s.Target, s.Detail)
}

// reportDir is where reports go: next to the state file; without one (a
// test's bare Env), next to the configuration file; else the working folder.
func (e *Env) reportDir() string {
	if e.StateDir != "" {
		return e.StateDir
	}
	if e.Config != nil && e.Config.Path != "" {
		return filepath.Dir(e.Config.Path)
	}
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "."
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// cutoverParams maps the configuration onto pg.CutoverParams. With a
// connection to the direction's source, the fence roles are the writers
// found there, with those the last attempt fenced.
func (e *Env) cutoverParams(ctx context.Context, rollback bool) (pg.CutoverParams, error) {
	c := e.Config
	blueConninfo := c.Blue.Conninfo
	if c.Replication.BlueConninfo != "" {
		blueConninfo = c.Replication.BlueConninfo
	}
	blue, err := pg.EndpointOf(blueConninfo)
	if err != nil {
		return pg.CutoverParams{}, fmt.Errorf("blue's endpoint: %w", err)
	}
	green, err := pg.EndpointOf(c.Green.Conninfo)
	if err != nil {
		return pg.CutoverParams{}, fmt.Errorf("green's endpoint: %w", err)
	}
	p := pg.CutoverParams{
		Method: c.Cutover.Method, Blue: e.Blue, Green: e.Green,
		BlueEndpoint: blue, GreenEndpoint: green,
		Subscriptions:   c.publicationNames(),
		ReplicationRole: c.Replication.Role,
		AppRoles:        c.AppRoles, FenceRoles: c.AppRoles, TerminateDirect: c.Cutover.TerminateDirectSessions,
		MaxLagBytes: c.Cutover.MaxLagBytes, DrainTimeout: c.Cutover.DrainTimeout.Duration,
		SequenceMargin: c.Cutover.SequenceMargin, StatementTimeout: c.Timeouts.Statement.Duration,
		Health:      e.health(),
		HoldCommits: c.holdCommits(),
		OnSubStep:   e.onSubStep,
	}
	if a, ok := e.lastAttempt(cutoverStepID); ok {
		p.FenceRoles = union(p.FenceRoles, a.FenceRoles)
	}
	if c.Cutover.Method == "pgbouncer" {
		for _, b := range c.Cutover.PgBouncer {
			client, err := bouncerClientConninfo(b.AdminConninfo, b.Database, c.AppRoles)
			if err != nil {
				return pg.CutoverParams{}, fmt.Errorf("cutover.pgbouncer %s: %w", b.Name, err)
			}
			p.Bouncers = append(p.Bouncers, b.bouncerParams(client))
		}
	}
	if hold := os.Getenv(HoldEnv); hold != "" {
		p.BeforeSubStep = e.holdAt(hold)
	}
	source := e.Blue
	if rollback {
		source = e.Green
	}
	if source != nil {
		ctx, cancel := e.bounded(ctx)
		defer cancel()
		found, err := pg.WriterRoles(ctx, source, c.AppRoles, c.Replication.Role)
		if err != nil {
			return p, err
		}
		p.FenceRoles = union(p.FenceRoles, found)
	}
	return p, nil
}

// health is the precheck's judge of apply errors: the window from the
// configuration, the count last seen and when it was first seen.
func (e *Env) health() pg.Health {
	h := pg.Health{Window: e.Config.Cutover.HealthWindow.Duration}
	if h.Window <= 0 {
		h.Window = 10 * time.Minute
	}
	if v, ok := e.Value(SubscriptionErrorsKey); ok {
		count, at, _ := strings.Cut(v, " since ")
		fmt.Sscan(count, &h.Known)
		h.KnownAt, _ = time.Parse(time.RFC3339, at)
	}
	return h
}

// SubscriptionErrorsKey records the forward feed's apply and sync error
// count ("N since TIME", TIME when the count was first seen): the
// precheck judges errors by when they appeared, not by lifetime totals.
const SubscriptionErrorsKey = "subscription_errors"

// recordHealth records the error count when it changed.
func (e *Env) recordHealth(count int64) error {
	h := e.health()
	if _, ok := e.Value(SubscriptionErrorsKey); ok && count == h.Known {
		return nil
	}
	return e.Record(SubscriptionErrorsKey, fmt.Sprintf("%d since %s", count, time.Now().UTC().Format(time.RFC3339)))
}

// holdAt is the test hook of HoldEnv: before the named sub-step, it writes
// HoldFile beside the state file and waits until ctx ends (a SIGHUP or
// SIGTERM cancels it; a SIGKILL ends the process there).
func (e *Env) holdAt(name string) func(ctx context.Context, step string) {
	return func(ctx context.Context, step string) {
		if step != name {
			return
		}
		_ = os.WriteFile(filepath.Join(e.reportDir(), HoldFile), []byte(fmt.Sprintf("%d %s\n", os.Getpid(), step)), 0o644)
		<-ctx.Done()
	}
}

// bouncerClientConninfo connects through PgBouncer as an application does:
// the admin console's host and port, the served database, the first
// application role (password from PGPASSWORD or the passfile, as libpq).
// Later keywords win in a libpq string, so they are appended.
func bouncerClientConninfo(admin, db string, appRoles []string) (string, error) {
	if len(appRoles) == 0 {
		return "", fmt.Errorf("app_roles is empty: the version check and the probes connect through PgBouncer as the first application role")
	}
	if _, err := pgconn.ParseConfig(admin); err != nil {
		return "", fmt.Errorf("admin_conninfo: %w", err)
	}
	if u, err := url.Parse(admin); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + db
		u.User = url.User(appRoles[0])
		return u.String(), nil
	}
	return admin + " dbname=" + pg.QuoteConninfoValue(db) + " user=" + pg.QuoteConninfoValue(appRoles[0]), nil
}

// startGuard starts the guard of attempt n, once per step run.
func (e *Env) startGuard(ctx context.Context, n int) error {
	if e.guard == nil || e.unguard != nil {
		return nil
	}
	stop, err := e.guard(ctx, n)
	if err != nil {
		return fmt.Errorf("start the guard: %w", err)
	}
	e.unguard = stop
	e.Logf("guard started: if this process dies while writes are stopped, it undoes attempt %d", n)
	return e.editAttempt(n, func(a *state.Attempt) { a.Guard = "watching" })
}

// stopGuard ends the guard once the attempt is over.
func (e *Env) stopGuard() {
	if e.unguard != nil {
		e.unguard()
		e.unguard = nil
	}
}

// bouncerName names a PgBouncer in plans, reports and the journal: its
// configured name, else its console's host:port.
func bouncerName(b PgBouncerConfig) string {
	if b.Name != "" {
		return b.Name
	}
	if pc, err := pgconn.ParseConfig(b.AdminConninfo); err == nil {
		return fmt.Sprintf("%s:%d", pc.Host, pc.Port)
	}
	return b.Ini
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
	p.Prior = &pg.Prior{LoginRetry: a.LoginRetry, TargetReadOnly: a.TargetReadOnly}
	p.BeforeSubStep, p.BeforePause = nil, nil // the guard never holds: it is what unblocks
	e.Warnf("guard: the driver of %s attempt %d (pid %d) is gone while the attempt ran: acting", a.Step, n, a.DriverPID)
	what, rep, gerr := pg.Guard(ctx, p, rollback)
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
		} else if rep != nil && rep.Outcome == pg.OutcomeAborted {
			x.Outcome = state.AttemptAborted
		}
	})
	e.Logf("guard: %s", what)
	return what, errors.Join(gerr, err)
}

// ReadTraffic reads where the application's writes go, from the servers
// (PgBouncer's SHOW DATABASES, the application roles' LOGIN, read-only
// settings): what `status` and the screen's status line say.
func ReadTraffic(ctx context.Context, c *Config, blue, green *pgxpool.Pool) pg.Traffic {
	e := &Env{Config: c, Blue: blue, Green: green}
	p, err := e.cutoverParams(ctx, false)
	if err != nil {
		return pg.Traffic{Target: "unknown", How: state.Redact(err.Error()), ReadAt: time.Now().UTC()}
	}
	return pg.ReadTraffic(ctx, p)
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
	st, err := pg.ReadSwitchState(ctx, p, rollback)
	if err != nil || st.State != pg.StateBetween {
		return WaysOut{}, false, err
	}
	if a, ok := e.lastAttempt(step); ok {
		p.FenceRoles = union(p.FenceRoles, a.FenceRoles)
		p.Prior = &pg.Prior{LoginRetry: a.LoginRetry, TargetReadOnly: a.TargetReadOnly}
	}
	finish, undo, err := pg.PlanWayOut(ctx, p, rollback)
	if err != nil {
		return WaysOut{}, true, err
	}
	names := func(w pg.WayOutPlan) []string {
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
	if err := e.refuseSchemaDrift(ctx, rollback); err != nil { // helper D: monitor_drift.go
		return err
	}
	p, err := e.cutoverParams(ctx, rollback)
	if err != nil {
		return err
	}
	p.ReplicationPassword, _ = e.Config.ReplicationPassword() // its absence is a precheck's to report
	p.OnSubStep = e.onSubStep
	p.OnPrecheck = e.logPrecheck
	e.Logf("%s rehearsal: every live precheck%s; nothing else changes", n.step, map[bool]string{true: ", then one bare PAUSE/RESUME of each PgBouncer", false: ""}[measure])
	rep, runErr := pg.Rehearse(ctx, p, rollback, measure)
	if rep != nil {
		base := filepath.Join(e.reportDir(), fmt.Sprintf("%s-check-%s", n.step, rep.StartedAt.UTC().Format(reportTimeLayout)))
		if err := rep.WriteFiles(base); err == nil {
			e.Logf("report: %s.json and %s.md", base, base)
		}
		if measure && rep.PausedMs > 0 {
			e.Logf("bare PAUSE/RESUME: %.1f ms at most (the floor of a pause through PgBouncer here)", rep.PausedMs)
		}
	}
	var pe *pg.PrecheckError
	if errors.As(runErr, &pe) {
		return e.refuse("%s", pe.Error())
	}
	if runErr == nil {
		e.Logf("every precheck passed: the %s would start now", n.step)
	}
	return runErr
}

// logPrecheck streams one precheck to the log.
func (e *Env) logPrecheck(c pg.Check) {
	switch {
	case !c.OK:
		e.Warnf("precheck FAILED: %s: %s", c.Name, c.Detail)
	case c.Warn:
		e.Warnf("precheck ok, but: %s: %s", c.Name, c.Detail)
	default:
		e.Logf("precheck ok: %s: %s", c.Name, c.Detail)
	}
}

// holdCommits is how long blue's commits may be held for green's apply
// before the pause: the configured time, else 3 s where ALTER SYSTEM is
// allowed (the self-managed strategies), else none.
func (c *Config) holdCommits() time.Duration {
	switch {
	case c.Cutover.HoldCommits != nil:
		return c.Cutover.HoldCommits.Duration
	case c.isAWS():
		return 0
	}
	return 3 * time.Second
}
