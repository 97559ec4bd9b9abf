package cutover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// A cutover (or a rollback) is a list of sub-steps, each of which shows
// the statements it runs (the plan) and runs them: the dry run and the run
// come from the same list. It moves every database it is given at once.
// Before writes stop, what can be prepared is; then writes stop in every
// moved database, each database's feed is drained to one WAL position,
// its opposite feed's start is set, sequences and logins follow, and the
// traffic moves; the side left behind is fenced last. A failure
// before the switch is undone from where the servers are (Undo), the same
// way the guard and the operator undo an attempt that was interrupted.

// subStep is one timed part of a cutover, a rollback or a way out.
type subStep struct {
	name, target string
	// plan lists what run executes; values known only mid-run are Later.
	plan func() []pg.PlanLine
	run  func(ctx context.Context) (string, error)
	// switches: once it succeeds, writes go to the target; a failure after
	// it is reported, never undone.
	switches bool
	// own: the sub-step bounds itself (the pause, the drain); others run
	// under the statement timeout.
	own bool
}

// PlannedSubStep is a sub-step as a plan shows it.
type PlannedSubStep struct {
	Name   string        `json:"name"`
	Target string        `json:"target"`
	Lines  []pg.PlanLine `json:"lines"`
}

// run is one cutover, rollback or way out in progress.
type run struct {
	p   *Params
	d   direction
	dbs []*dbRun
	rep *Report
	j   *subJournal
	e   *cutEnv

	pausedAt time.Time
	// signals is the caller's context, cancelled by a signal: the test hook
	// holding a sub-step waits on it even past the switch.
	signals context.Context
	// iniLeft names the PgBouncers whose ini an undo could not put back
	// while they served the source already (warned; sync.Map: PgBouncers
	// are handled at the same time).
	iniLeft sync.Map
	// held: the source's commits wait for the target's apply (holdStep).
	held bool
	// drainLSN is the drain target: the source's one WAL position once
	// writes stopped, which every database's apply must pass.
	drainLSN string
	// drainAt is when the drain began, for each database's drain time.
	drainAt time.Time
	// fence are the roles the fence closes the moved databases to (the
	// fence roles less those it never touches), read by open; before
	// (a plan) FenceRoles.
	fence []string
	// fencesMu guards the fences in force (p.Prior.Fences), which a fence
	// and an open change, and fencesToTell: an open's change the caller
	// has not been told of yet (keepFences).
	fencesMu     sync.Mutex
	fencesToTell bool
}

func newRun(p *Params, rollback bool, way string) *run {
	p.defaults()
	d := p.direction(rollback)
	r := &run{p: p, d: d,
		rep:   &Report{Direction: d.name, Way: way, Method: p.Method, StartedAt: time.Now().UTC(), FenceRoles: p.FenceRoles, PauseBudgetMs: ms(p.PauseBudget)},
		j:     newSubJournal(p.Hooks.SubStepDone),
		fence: p.FenceRoles}
	r.dbs = newDBRuns(p, d, r.rep)
	if p.Method == MethodPgBouncer {
		for k, b := range p.Bouncers {
			r.rep.Bouncers = append(r.rep.Bouncers, BouncerTimes{Name: b.Name, Method: b.IniMethod(), Ini: b.NewIniStore().Where(), Entries: entryNames(r.entries(k))})
		}
	}
	return r
}

// Cutover moves writes from blue to green with p.Method, after prechecks
// that change nothing. Any failure before the switch is undone and returns
// an *AbortError; a failed precheck returns a *PrecheckError. The report
// is returned in every case, its Outcome saying how it ended.
func Cutover(ctx context.Context, p Params) (*Report, error) {
	return execute(ctx, &p, false)
}

// Rollback is the cutover in reverse: writes move from green back to blue,
// through the reverse replication the cutover set up, sequences included.
// Blue's original slots are moved past what the reverse feed brought, and
// green's subscriptions are enabled again.
func Rollback(ctx context.Context, p Params) (*Report, error) {
	return execute(ctx, &p, true)
}

func (r *run) finish(err *error) {
	r.tellFences()
	r.j.close()
	r.rep.sumDatabases()
	if r.p.Prior != nil && len(r.p.Prior.Fences) > 0 {
		r.rep.Fences = r.p.Prior.Fences.Clone()
	}
	r.rep.FinishedAt = time.Now().UTC()
	r.rep.TotalMs = ms(r.rep.FinishedAt.Sub(r.rep.StartedAt))
	if *err != nil {
		r.rep.Error = (*err).Error()
	}
	if r.e != nil {
		r.e.close()
	}
}

func execute(ctx context.Context, p *Params, rollback bool) (rep *Report, err error) {
	r := newRun(p, rollback, "")
	defer r.finish(&err)
	r.rep.Outcome = OutcomeRefused
	if err := p.validate(); err != nil {
		return r.rep, err
	}
	if r.e, err = r.open(ctx); err != nil {
		return r.rep, err
	}
	if err := p.Hooks.Prior(r.prior()); err != nil {
		return r.rep, err
	}
	if failed := r.precheck(ctx); len(failed) > 0 {
		return r.rep, &PrecheckError{Failed: failed}
	}
	return r.rep, r.attempt(ctx)
}

// attempt runs the sub-steps after the prechecks; a failure before the
// switch is undone from where the servers are.
func (r *run) attempt(ctx context.Context) error {
	// One probe client writes through each PgBouncer: the report's stall
	// is the worst of them, and each PgBouncer's own is kept with it.
	probes := make([]*pg.Prober, len(r.p.Bouncers))
	for k, b := range r.p.Bouncers {
		probes[k] = pg.StartProbe(ctx, b.ClientConninfo, r.p.ProbeInterval)
	}
	defer func() {
		var all pg.ProbeStats
		for k, pr := range probes {
			st := pr.Stop()
			if k < len(r.rep.Bouncers) {
				r.rep.Bouncers[k].StallMs = st.MaxStallMs
			}
			all.Samples, all.Errors = all.Samples+st.Samples, all.Errors+st.Errors
			all.MaxStallMs = max(all.MaxStallMs, st.MaxStallMs)
			if st.LastError != "" {
				all.LastError = st.LastError
			}
		}
		r.rep.Probe = all
	}()
	steps := append(r.prepareSteps(), r.stopSteps()...)
	steps = append(steps, r.forwardSteps(r.stoppedPosition())...)
	switched, err := r.runSteps(ctx, steps)
	switch {
	case err == nil:
		r.rep.Outcome = OutcomeDone
		return nil
	case switched:
		r.rep.Outcome = OutcomeDone
		return err
	}
	r.rep.Aborted = true
	undoErr := r.undo(ctx)
	if undoErr != nil {
		r.rep.Outcome = OutcomeFailed
	} else {
		r.rep.Outcome = OutcomeAborted
	}
	return &AbortError{Err: err, RestoreErr: undoErr}
}

// undo puts back what the attempt changed, reading where the servers are,
// on a context that outlives a cancelled attempt.
func (r *run) undo(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	if r.e.broken() {
		// A signal that cancelled a statement closed its connection: the
		// undo opens new ones (the pause and the feeds' state live in the
		// servers, not in these sessions; the entries and the fences in
		// force in p.Prior).
		r.e.close()
		var err error
		if r.e, err = r.open(ctx); err != nil {
			return fmt.Errorf("reconnect to undo: %w", err)
		}
	}
	pos, err := r.readPosition(ctx)
	if err != nil {
		return fmt.Errorf("read where the servers are: %w", err)
	}
	_, err = r.runSteps(ctx, r.undoSteps(pos))
	if err == nil {
		r.endAt(r.d.from, r.e.fromVersion)
	}
	return err
}

// runSteps runs steps in order, each timed and reported, and says whether
// the switch was reached.
func (r *run) runSteps(ctx context.Context, steps []subStep) (switched bool, err error) {
	r.signals = ctx
	runCtx := ctx
	for _, s := range steps {
		if switched {
			// Once writes go to the target, what is left runs to its end:
			// a signal never leaves the fence half built.
			runCtx = context.WithoutCancel(ctx)
		}
		if err := r.step(runCtx, s); err != nil {
			return switched, err
		}
		switched = switched || s.switches
	}
	return switched, nil
}

// step runs one sub-step and records it.
func (r *run) step(ctx context.Context, s subStep) error {
	if r.signals != nil {
		r.p.Hooks.BeforeSubStep(r.signals, s.name)
	}
	start := time.Now()
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if !s.own {
		sctx, cancel = context.WithTimeout(ctx, r.p.StatementTimeout)
	}
	detail, err := s.run(sctx)
	cancel()
	ss := SubStep{Name: s.name, Target: s.target, StartedAt: start, Duration: time.Since(start), Detail: detail}
	if err != nil {
		ss.Error = err.Error()
	}
	r.rep.mu.Lock()
	r.rep.SubSteps = append(r.rep.SubSteps, ss)
	r.rep.mu.Unlock()
	r.j.ch <- ss
	return err
}

// subJournal feeds Hooks.SubStepDone from its own goroutine, so a slow journal
// never lengthens the pause.
type subJournal struct {
	ch   chan SubStep
	done chan struct{}
}

func newSubJournal(f func(SubStep)) *subJournal {
	j := &subJournal{ch: make(chan SubStep, 256), done: make(chan struct{})}
	go func() {
		defer close(j.done)
		for s := range j.ch {
			if f != nil {
				f(s)
			}
		}
	}()
	return j
}

func (j *subJournal) close() { close(j.ch); <-j.done }

func (p *Params) validate() error {
	switch p.Method {
	case MethodPgBouncer, MethodNologin, MethodReadonly:
	default:
		return fmt.Errorf("unknown cutover method %q: use pgbouncer, nologin or readonly", p.Method)
	}
	if len(p.Databases) == 0 {
		return fmt.Errorf("no database to move: the cutover moves the databases it is given")
	}
	seen := map[string]bool{}
	for _, db := range p.Databases {
		switch {
		case db.Name == "":
			return fmt.Errorf("a database to move has no name")
		case seen[db.Name]:
			return fmt.Errorf("database %s is given twice", db.Name)
		case len(db.Subscriptions) == 0:
			return fmt.Errorf("database %s: no forward subscription named: the cutover drains and stops them", db.Name)
		case seen["reverse "+db.Reverse]:
			return fmt.Errorf("database %s: its reverse feed %s is another database's too: slots are the server's, each needs its own name", db.Name, db.Reverse)
		}
		seen[db.Name], seen["reverse "+db.Reverse] = true, true
	}
	if p.Method == MethodPgBouncer && len(p.Bouncers) == 0 {
		return fmt.Errorf("cutover method pgbouncer with no PgBouncer configured: add cutover.pgbouncer entries")
	}
	for _, b := range []struct {
		name string
		d    time.Duration
	}{{"statement timeout", p.StatementTimeout}, {"drain timeout", p.DrainTimeout}, {"pause timeout", p.PauseTimeout}, {"way out's lag wait", p.WayOutLagWait}} {
		if b.d <= 0 {
			return fmt.Errorf("no %s given: the configuration sets every bound of the cutover", b.name)
		}
	}
	if p.ReplicationRole == "" {
		return fmt.Errorf("no replication role given")
	}
	return nil
}

// together runs sub-steps at once, each timed and reported; their plans
// are listed one after the other, each under its name.
func (r *run) together(name string, steps ...subStep) subStep {
	if len(steps) == 1 {
		return steps[0]
	}
	return subStep{name: name, target: "", own: true,
		plan: func() []pg.PlanLine {
			var out []pg.PlanLine
			for _, s := range steps {
				out = append(out, pg.Note(s.target, "-- %s (at the same time as the others of %q)", s.name, name))
				out = append(out, s.plan()...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			errs := make([]error, len(steps))
			var wg sync.WaitGroup
			for k, s := range steps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[k] = r.step(ctx, s)
				}()
			}
			wg.Wait()
			return fmt.Sprintf("%d at once", len(steps)), errors.Join(errs...)
		}}
}

// inOrder runs sub-steps one after the other as one, each timed and
// reported.
func (r *run) inOrder(name, target string, steps ...subStep) subStep {
	if len(steps) == 1 {
		return steps[0]
	}
	return subStep{name: name, target: target, own: true,
		plan: func() []pg.PlanLine {
			var out []pg.PlanLine
			for _, s := range steps {
				out = append(out, pg.Note(s.target, "-- %s", s.name))
				out = append(out, s.plan()...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			for _, s := range steps {
				if err := r.step(ctx, s); err != nil {
					return "", err
				}
			}
			return fmt.Sprintf("%d in order", len(steps)), nil
		}}
}

// Plan lists the sub-steps of a cutover (rollback false) or a rollback with
// the statements each runs, values known only mid-run shown as <where
// they come from>. It needs no connection.
func Plan(p Params, rollback bool) []PlannedSubStep {
	r := newRun(&p, rollback, "")
	r.j.close()
	steps := append(r.prepareSteps(), r.stopSteps()...)
	return planned(append(steps, r.forwardSteps(r.stoppedPosition())...))
}

func planned(steps []subStep) []PlannedSubStep {
	out := make([]PlannedSubStep, len(steps))
	for i, s := range steps {
		out[i] = PlannedSubStep{Name: s.name, Target: s.target, Lines: s.plan()}
	}
	return out
}
