package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// A cutover (or a rollback) is a list of sub-steps, each of which shows
// the statements it runs (the plan) and runs them: the dry run and the run
// come from the same list. Before writes stop, what can be prepared is;
// then writes stop, the feed is drained and stopped, the opposite feed
// starts, sequences and logins follow, and the traffic moves. A failure
// before the switch is undone from where the servers are (Undo), the same
// way the guard and the operator undo an attempt that was interrupted.

// subStep is one timed part of a cutover, a rollback or a way out.
type subStep struct {
	name, target string
	// plan lists what run executes; values known only mid-run are Later.
	plan func() []PlanLine
	run  func(ctx context.Context) (string, error)
	// switches: once it succeeds, writes go to the target; a failure after
	// it is reported, never undone.
	switches bool
	// own: the sub-step bounds itself (the pause, the drain); others run
	// under the statement timeout.
	own bool
}

// PlanLine is one line of a plan: a statement, a command, a file change or
// a note, with where it runs.
type PlanLine struct {
	On   string `json:"on"`
	Kind string `json:"kind"` // sql, command, file, note
	Text string `json:"text"`
}

func stmtLines(ss ...Stmt) []PlanLine {
	out := make([]PlanLine, len(ss))
	for i, s := range ss {
		out[i] = PlanLine{On: s.On, Kind: "sql", Text: s.Display()}
	}
	return out
}

func noteLine(on, format string, args ...any) PlanLine {
	return PlanLine{On: on, Kind: "note", Text: fmt.Sprintf(format, args...)}
}

// PlannedSubStep is a sub-step as a plan shows it.
type PlannedSubStep struct {
	Name   string     `json:"name"`
	Target string     `json:"target"`
	Lines  []PlanLine `json:"lines"`
}

// run is one cutover, rollback or way out in progress.
type run struct {
	p   *CutoverParams
	d   direction
	f   feeds
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
	held     bool
	preSeqs  []Sequence // the first pass's values
	seqs     []Sequence // read while writes are stopped
	drainLSN string
	// seqReadMs is how long reading seqs took (during the drain).
	seqReadMs float64
}

func newRun(p *CutoverParams, rollback bool, way string) *run {
	p.defaults()
	d := p.direction(rollback)
	r := &run{p: p, d: d, f: p.feeds(rollback),
		rep: &Report{Direction: d.name, Way: way, Method: p.Method, StartedAt: time.Now().UTC(), FenceRoles: p.FenceRoles},
		j:   newSubJournal(p.OnSubStep)}
	if p.Method == MethodPgBouncer {
		for _, b := range p.Bouncers {
			r.rep.Bouncers = append(r.rep.Bouncers, BouncerTimes{Name: b.Name, Method: b.IniMethod(), Ini: b.NewIniStore().Where()})
		}
	}
	return r
}

// Cutover moves writes from blue to green with p.Method, after prechecks
// that change nothing. Any failure before the switch is undone and returns
// an *AbortError; a failed precheck returns a *PrecheckError. The report
// is returned in every case, its Outcome saying how it ended.
func Cutover(ctx context.Context, p CutoverParams) (*Report, error) {
	return execute(ctx, &p, false)
}

// Rollback is the cutover in reverse: writes move from green back to blue,
// through the reverse replication the cutover set up, sequences included.
// Blue's original slots are moved past what the reverse feed brought, and
// green's subscriptions are enabled again.
func Rollback(ctx context.Context, p CutoverParams) (*Report, error) {
	return execute(ctx, &p, true)
}

func (r *run) finish(err *error) {
	r.j.close()
	r.rep.FinishedAt = time.Now().UTC()
	r.rep.TotalMs = ms(r.rep.FinishedAt.Sub(r.rep.StartedAt))
	if *err != nil {
		r.rep.Error = (*err).Error()
	}
	if r.e != nil {
		r.e.close()
	}
}

func execute(ctx context.Context, p *CutoverParams, rollback bool) (rep *Report, err error) {
	r := newRun(p, rollback, "")
	defer r.finish(&err)
	r.rep.Outcome = OutcomeRefused
	if err := p.validate(); err != nil {
		return r.rep, err
	}
	if r.e, err = r.open(ctx); err != nil {
		return r.rep, err
	}
	if p.OnPrior != nil {
		if err := p.OnPrior(*p.Prior); err != nil {
			return r.rep, err
		}
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
	probes := make([]*prober, len(r.p.Bouncers))
	for k, b := range r.p.Bouncers {
		probes[k] = startProbe(ctx, b.ClientConninfo, r.p.ProbeInterval)
	}
	defer func() {
		var all ProbeStats
		for k, pr := range probes {
			st := pr.stop()
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
		// servers, not in these sessions).
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
		r.rep.FinalTarget, r.rep.FinalVersion = r.d.from.endpoint.String(), r.e.fromVersion
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
	if r.p.BeforeSubStep != nil && r.signals != nil {
		r.p.BeforeSubStep(r.signals, s.name)
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

// subJournal feeds OnSubStep from its own goroutine, so a slow journal
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

func (p *CutoverParams) validate() error {
	switch p.Method {
	case MethodPgBouncer, MethodNologin, MethodReadonly:
	default:
		return fmt.Errorf("unknown cutover method %q: use pgbouncer, nologin or readonly", p.Method)
	}
	if len(p.Subscriptions) == 0 {
		return fmt.Errorf("no forward subscription named: the cutover drains and stops them")
	}
	if p.Method == MethodPgBouncer && len(p.Bouncers) == 0 {
		return fmt.Errorf("cutover method pgbouncer with no PgBouncer configured: add cutover.pgbouncer entries")
	}
	return nil
}

// prepareSteps run before writes stop: what can be prepared is, so the
// pause stays short.
func (r *run) prepareSteps() []subStep {
	p, d, f := r.p, r.d, r.f
	var out []subStep
	if !d.rollback {
		out = append(out, r.prepareReverseStep())
	} else {
		// Most of the WAL the reverse feed wrote on blue is skipped now;
		// the rest inside the pause.
		out = append(out, r.advanceStep("advance blue's slots (first pass)"))
	}
	// Sequences are set once before writes stop, so the sync inside the
	// pause finds warm caches and pages already logged, and sets only what
	// moved since.
	out = append(out, subStep{name: "sync sequences (first pass)", target: d.to.name,
		plan: func() []PlanLine {
			return append([]PlanLine{noteLine(d.from.name, "read every sequence of %s (two sessions)", d.from.name)},
				stmtLines(ApplySequencesStmts(d.to.name, nil, p.SequenceMargin)...)...)
		},
		run: func(ctx context.Context) (string, error) {
			var err error
			if r.preSeqs, err = ReadSequencesParallel(ctx, d.from.pool, SequenceSessions); err != nil {
				return "", err
			}
			res, err := ApplySequencesParallel(ctx, d.to.pool, d.to.name, r.preSeqs, p.SequenceMargin, SequenceSessions)
			return fmt.Sprintf("%d sequences", res.Synced), err
		}})
	_ = f
	return out
}

// prepareReverseStep creates, before writes stop, green's publication and
// the disabled subscription on blue (its connection to green is proven
// now); the slot comes inside the pause, after the drain. What an earlier
// attempt left is dropped first.
func (r *run) prepareReverseStep() subStep {
	p := r.p
	rev := p.Reverse
	return subStep{name: "prepare reverse replication", target: "blue, green",
		plan: func() []PlanLine {
			out := []PlanLine{noteLine("blue", "what an earlier attempt left is dropped first, when there:")}
			out = append(out, stmtLines(dropSubscriptionStmts("blue", rev)...)...)
			out = append(out, stmtLines(dropSlotStmt("green", rev), createPublicationAllStmt("green", rev))...)
			return append(out, stmtLines(r.reverseSubscription()...)...)
		},
		run: func(ctx context.Context) (string, error) {
			blue, green := r.e.conn("blue"), r.e.conn("green")
			if exists, err := subscriptionExists(ctx, blue, rev); err != nil {
				return "", err
			} else if exists {
				if err := dropSubscription(ctx, blue, "blue", rev); err != nil {
					return "", err
				}
			}
			if err := dropSlot(ctx, green, "green", rev); err != nil {
				return "", err
			}
			var has bool
			if err := green.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", rev).Scan(&has); err != nil {
				return "", fmt.Errorf("look for publication %s: %w", rev, err)
			}
			if !has {
				if err := createPublicationAllStmt("green", rev).Exec(ctx, green); err != nil {
					return "", fmt.Errorf("create publication %s on green: %w", rev, err)
				}
			}
			if err := ExecTx(ctx, blue, r.reverseSubscription()); err != nil {
				return "", fmt.Errorf("create subscription %s on blue: %w", rev, scrubPassword(err, p.ReplicationPassword))
			}
			return fmt.Sprintf("publication %s on green, subscription %s on blue (disabled, connected to %s)", rev, rev, r.greenForBlue()), nil
		}}
}

func (r *run) greenForBlue() Endpoint {
	if r.p.GreenForBlue != nil {
		return *r.p.GreenForBlue
	}
	return r.p.GreenEndpoint
}

// reverseSubscription is blue's subscription to green, as statements:
// created disabled, with no copy and no slot (the slot comes after the
// drain); connect = true proves blue reaches green now. The connection
// string is a Secret bind parameter, sent with statement logging off.
func (r *run) reverseSubscription() []Stmt {
	to := r.greenForBlue()
	rev := r.p.Reverse
	conninfo := fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=", QuoteConninfoValue(to.Host), to.Port,
		QuoteConninfoValue(to.DBName), QuoteConninfoValue(r.p.ReplicationRole))
	return SubscriptionParams{On: "blue", Name: rev, Publication: rev, Slot: rev,
		Conninfo: conninfo + QuoteConninfoValue(r.p.ReplicationPassword), ShownConninfo: conninfo + "********"}.Statements()
}

// advanceStep moves blue's forward slots past what the reverse feed wrote
// (a rollback's; blue is its target).
func (r *run) advanceStep(name string) subStep {
	d, f := r.d, r.f
	return subStep{name: name, target: d.to.name,
		plan: func() []PlanLine {
			out := stmtLines(flushStmts(d.to.name)...)
			for _, s := range f.startSlots {
				out = append(out, stmtLines(advanceSlotStmt(d.to.name, s, Later("the LSN of the message just flushed")))...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			lsn, err := advanceSlots(ctx, r.e.to, d.to.name, f.startSlots)
			return "to " + lsn, err
		}}
}

// stopSteps stop the application's writes on the source: the lag gate is
// checked once more right before, and the caller's guard starts.
func (r *run) stopSteps() []subStep {
	p, d, f := r.p, r.d, r.f
	var out []subStep
	if p.BeforePause != nil {
		out = append(out, subStep{name: "start the guard", target: "local",
			plan: func() []PlanLine {
				return []PlanLine{noteLine("local", "a guard process starts: if this process dies or stops answering from here on, it undoes the %s (commits released, RESUME on %s, the ini put back)", d.name, d.from.name)}
			},
			run: func(ctx context.Context) (string, error) { return "running", p.BeforePause(ctx) }})
	}
	if p.HoldCommits > 0 {
		out = append(out, r.holdStep())
	}
	out = append(out, subStep{name: "lag gate", target: d.from.name,
		plan: func() []PlanLine {
			return []PlanLine{noteLine(d.from.name, "the lag of %s is read again right before writes stop: above %d bytes, nothing is paused", strings.Join(f.drainSlots, ", "), p.MaxLagBytes)}
		},
		run: func(ctx context.Context) (string, error) {
			return checkLag(ctx, r.e.from, f.drainSlots, p.MaxLagBytes)
		}})
	return append(out, r.stopWritesSteps()...)
}

// forwardSteps take a cutover from pos to done: the drained feed stopped,
// the opposite one started, sequences, logins, the traffic, the fence.
// Each is there only when pos says it is still to do, so the same list
// finishes an attempt that was interrupted.
func (r *run) forwardSteps(pos position) []subStep {
	p, d := r.p, r.d
	var out []subStep
	switch {
	case pos.drainedOn:
		out = append(out, r.drainSteps(pos.held)...)
	case pos.held:
		out = append(out, r.releaseStep(true))
	}
	// What the switch needs and does not depend on each other runs at
	// once: the feeds swapped (in order), the sequences set, the target
	// opened to the application, PgBouncer's ini rewritten (RELOAD comes
	// after all of them).
	seqs := subStep{name: "sync sequences", target: d.to.name,
		plan: func() []PlanLine {
			return append([]PlanLine{noteLine(d.from.name, "every sequence of %s, as read while writes are stopped (during the drain); only those that moved since the first pass are set", d.from.name)},
				stmtLines(ApplySequencesStmts(d.to.name, nil, p.SequenceMargin)...)...)
		},
		run: func(ctx context.Context) (string, error) {
			start := time.Now()
			seqs := r.seqs
			if seqs == nil {
				var err error
				if seqs, err = ReadSequencesParallel(ctx, d.from.pool, SequenceSessions); err != nil {
					return "", err
				}
			}
			changed := changedSequences(r.preSeqs, seqs)
			res, err := ApplySequencesParallel(ctx, d.to.pool, d.to.name, changed, p.SequenceMargin, SequenceSessions)
			r.rep.Sequences, r.rep.SeqMissing = len(seqs)-len(changed)+res.Synced, res.Missing
			r.rep.SeqSyncMs = ms(time.Since(start)) + r.seqReadMs
			if err == nil && len(res.Missing) > 0 {
				err = fmt.Errorf("sequences missing on %s: %s", d.to.name, strings.Join(res.Missing, ", "))
			}
			return fmt.Sprintf("%d sequences, %d set since the first pass (margin %d)", r.rep.Sequences, res.Synced, p.SequenceMargin), err
		}}
	var feeds []subStep
	if pos.drainedOn {
		feeds = append(feeds, r.stopDrainedStep())
	}
	feeds = append(feeds, r.oppositeSteps(pos)...)
	at := []subStep{seqs}
	if len(feeds) > 0 {
		at = append(at, r.inOrder("swap the feeds", d.to.name+", "+d.from.name, feeds...))
	}
	if p.Method == MethodPgBouncer {
		// Behind PgBouncer's pause nobody reaches the target yet: opening it
		// now costs the pause nothing.
		if !pos.toOpen {
			at = append(at, r.openWritesStep())
		}
		if !pos.iniAtTarget() {
			at = append(at, r.rewriteIniStep(d.to))
		}
	}
	out = append(out, r.together("prepare the switch", at...))
	if p.Method != MethodPgBouncer && !pos.toOpen {
		// The switch itself, once the sequences and feeds are set.
		out = append(out, r.openWritesStep())
	}
	if p.Method == MethodPgBouncer {
		out = append(out, r.switchBouncerSteps(pos)...)
	} else {
		out = append(out, subStep{name: "probe write on " + d.to.name, target: d.to.name,
			plan: func() []PlanLine {
				return stmtLines(probeStmt(d.to.name).with("on a new session: must succeed"))
			},
			run: func(ctx context.Context) (string, error) {
				r.rep.FinalTarget, r.rep.FinalVersion = d.to.endpoint.String(), r.e.toVersion
				return "a write on a new session succeeded", probeWrite(ctx, d.to.pool, d.to.name)
			}})
	}
	out = append(out, r.fenceStep())
	if d.rollback {
		// The reverse feed is spent; its slot on green would hold WAL forever.
		out = append(out, r.dropReverseStep())
	}
	return out
}

// with returns the statement with a note for plans.
func (s Stmt) with(note string) Stmt { s.Note = note; return s }

// drainSteps wait until the feed from -> to has applied everything written
// before writes stopped, then stop it.
func (r *run) drainSteps(held bool) []subStep {
	p, d, f := r.p, r.d, r.f
	drainLSN := Later("the drain LSN: " + d.from.name + "'s pg_current_wal_lsn() once its WAL is flushed")
	return []subStep{
		{name: "drain target", target: d.from.name,
			plan: func() []PlanLine {
				return stmtLines(append(flushStmts(d.from.name), drainTargetStmt(d.from.name, f.drainSlots))...)
			},
			run: func(ctx context.Context) (string, error) {
				if _, err := flushWAL(ctx, r.e.from, d.from.name); err != nil {
					return "", err
				}
				var lag int64
				var n int
				if err := drainTargetStmt(d.from.name, f.drainSlots).QueryRow(ctx, r.e.from, &r.drainLSN, &lag, &n); err != nil {
					return "", fmt.Errorf("read the drain target: %w", err)
				}
				if n != len(f.drainSlots) {
					return "", fmt.Errorf("found %d of the slots %s", n, strings.Join(f.drainSlots, ", "))
				}
				r.rep.LagAtPause, r.rep.DrainLSN = lag, r.drainLSN
				return fmt.Sprintf("%s, lag %d bytes", r.drainLSN, lag), nil
			}},
		r.together("drain, reading the sequences meanwhile", append([]subStep{
			subStep{name: "drain", target: d.from.name + " -> " + d.to.name, own: true,
				plan: func() []PlanLine {
					out := stmtLines(drainedStmt(d.from.name, f.drainSlots, drainLSN))
					out = append(out, stmtLines(flushStmts(d.to.name)...)...)
					return append(out, noteLine(d.from.name, "past %s: abort, everything put back", p.DrainTimeout))
				},
				run: func(ctx context.Context) (string, error) {
					ctx, cancel := context.WithTimeout(ctx, p.DrainTimeout)
					defer cancel()
					polls, err := waitDrained(ctx, r.e.from, r.e.to, d.from.name, d.to.name, f.drainSlots, r.drainLSN)
					if err != nil {
						return "", fmt.Errorf("drain (timeout %s): %w", p.DrainTimeout, err)
					}
					return fmt.Sprintf("every slot at %s after %d polls", r.drainLSN, polls), nil
				}},
			subStep{name: "read sequences", target: d.from.name,
				plan: func() []PlanLine {
					return []PlanLine{noteLine(d.from.name, "every sequence of %s read (two sessions): writes are stopped", d.from.name)}
				},
				run: func(ctx context.Context) (string, error) {
					start := time.Now()
					var err error
					r.seqs, err = ReadSequencesParallel(ctx, d.from.pool, SequenceSessions)
					r.seqReadMs = ms(time.Since(start))
					return fmt.Sprintf("%d sequences", len(r.seqs)), err
				}}}, r.releaseIf(held)...)...),
	}
}

// releaseIf is the release of held commits, when they may be held.
func (r *run) releaseIf(held bool) []subStep {
	if !held {
		return nil
	}
	return []subStep{r.releaseStep(false)}
}

// stopDrainedStep stops the drained feed: nothing more is applied once it
// returns.
func (r *run) stopDrainedStep() subStep {
	d, f := r.d, r.f
	return subStep{name: "stop " + d.from.name + " -> " + d.to.name + " replication", target: d.to.name,
		plan: func() []PlanLine { return stmtLines(disableSubscriptionStmts(d.to.name, f.drainSubs)...) },
		run: func(ctx context.Context) (string, error) {
			return "disabled " + strings.Join(f.drainSubs, ", "), disableSubscriptions(ctx, r.e.to, d.to.name, f.drainSubs)
		}}
}

// together runs sub-steps at once, each timed and reported; their plans
// are listed one after the other, each under its name.
func (r *run) together(name string, steps ...subStep) subStep {
	if len(steps) == 1 {
		return steps[0]
	}
	return subStep{name: name, target: "", own: true,
		plan: func() []PlanLine {
			var out []PlanLine
			for _, s := range steps {
				out = append(out, noteLine(s.target, "-- %s (at the same time as the others of %q)", s.name, name))
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
		plan: func() []PlanLine {
			var out []PlanLine
			for _, s := range steps {
				out = append(out, noteLine(s.target, "-- %s", s.name))
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

// oppositeSteps start the feed from the target back to the source: the
// reverse feed for a cutover, blue's original feed for a rollback.
func (r *run) oppositeSteps(pos position) []subStep {
	d, f := r.d, r.f
	var out []subStep
	if !d.rollback {
		if !pos.oppositeSlot {
			out = append(out, subStep{name: "create reverse slot", target: "green",
				plan: func() []PlanLine {
					return stmtLines(createSlotStmt("green", r.p.Reverse).with("after the drain: it holds green's writes only"))
				},
				run: func(ctx context.Context) (string, error) {
					var lsn string
					if err := createSlotStmt("green", r.p.Reverse).QueryRow(ctx, r.e.to, &lsn); err != nil {
						return "", fmt.Errorf("create slot %s on green: %w", r.p.Reverse, err)
					}
					return "slot " + r.p.Reverse + " at " + lsn, nil
				}})
		}
		if !pos.oppositeSub {
			out = append(out, r.prepareReverseStep())
		}
	} else if !pos.oppositeOn {
		out = append(out, r.advanceStep("advance blue's slots"))
	}
	if !pos.oppositeOn {
		out = append(out, subStep{name: "enable " + d.to.name + " -> " + d.from.name + " replication", target: d.from.name,
			plan: func() []PlanLine { return stmtLines(enableSubscriptionStmts(d.from.name, f.startSubs)...) },
			run: func(ctx context.Context) (string, error) {
				return "enabled " + strings.Join(f.startSubs, ", "), ExecAll(ctx, r.e.from, enableSubscriptionStmts(d.from.name, f.startSubs))
			}})
	}
	return out
}

// openWritesStep lets the application write on the target: LOGIN for the
// fenced roles, and the read-only setting a readonly cutover left there
// removed.
func (r *run) openWritesStep() subStep {
	d := r.d
	roles := r.p.FenceRoles
	return subStep{name: "allow writes on " + d.to.name, target: d.to.name,
		plan: func() []PlanLine {
			out := stmtLines(loginStmts(d.to.name, roles, true)...)
			out = append(out, stmtLines(readOnlyStmt(d.to.name, d.to.endpoint.DBName, false).with("only where a readonly cutover set it"))...)
			return append([]PlanLine{noteLine(d.to.name, "only the roles that cannot log in on %s now", d.to.name)}, out...)
		},
		run: func(ctx context.Context) (string, error) {
			// A connection of its own: the feeds' swap holds the cutover's
			// at the same time.
			c := r.e.toSide
			var done []string
			changed, err := setLogin(ctx, c, d.to.name, roles, true)
			if err != nil {
				return "", err
			}
			if len(changed) > 0 {
				done = append(done, "LOGIN: "+strings.Join(changed, ", "))
			}
			ro, err := isReadOnly(ctx, c)
			if err != nil {
				return "", err
			}
			if ro {
				if err := readOnlyStmt(d.to.name, r.e.toDB, false).Exec(ctx, c); err != nil {
					return "", err
				}
				done = append(done, "default_transaction_read_only reset")
			}
			if r.p.Method != MethodPgBouncer {
				r.rep.FinalTarget, r.rep.FinalVersion = d.to.endpoint.String(), r.e.toVersion
			}
			if len(done) == 0 {
				return "nothing to change", nil
			}
			return strings.Join(done, "; "), nil
		},
		// Without PgBouncer, writes reach the target once its roles log in.
		switches: r.p.Method != MethodPgBouncer}
}

// fenceStep makes the side left behind refuse the application's writes:
// the fence roles lose LOGIN there and their sessions end. The reverse
// subscription applies as pgbluegreen's own role, which is never fenced.
func (r *run) fenceStep() subStep {
	d := r.d
	roles := r.p.FenceRoles
	return subStep{name: "fence " + d.from.name, target: d.from.name,
		plan: func() []PlanLine {
			out := stmtLines(loginStmts(d.from.name, roles, false)...)
			return append(out, stmtLines(terminateSessionsStmt(d.from.name, roles, Later("the pid of pgbluegreen's session")).with("the fenced roles' sessions, except pgbluegreen's own"))...)
		},
		run: func(ctx context.Context) (string, error) {
			if len(roles) == 0 {
				return "no role to fence", nil
			}
			changed, err := setLogin(ctx, r.e.from, d.from.name, roles, false)
			if err != nil {
				return "", err
			}
			n, err := terminateAndWait(ctx, r.e.from, terminateSessionsStmt(d.from.name, roles, r.e.pids()))
			return fmt.Sprintf("NOLOGIN: %s; %d sessions ended", orNone(changed), n), err
		}}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none needed"
	}
	return strings.Join(s, ", ")
}

// dropReverseStep removes the reverse subscription (on blue), then its slot
// and publication (on green).
func (r *run) dropReverseStep() subStep {
	rev := r.p.Reverse
	return subStep{name: "drop reverse replication", target: "blue, green",
		plan: func() []PlanLine {
			out := stmtLines(dropSubscriptionStmts("blue", rev)...)
			return append(out, stmtLines(dropSlotStmt("green", rev), dropPublicationStmt("green", rev))...)
		},
		run: func(ctx context.Context) (string, error) {
			blue, green := r.e.conn("blue"), r.e.conn("green")
			if exists, err := subscriptionExists(ctx, blue, rev); err != nil {
				return "", err
			} else if exists {
				if err := dropSubscription(ctx, blue, "blue", rev); err != nil {
					return "", err
				}
			}
			if err := dropSlot(ctx, green, "green", rev); err != nil {
				return "", err
			}
			return "", dropPublicationStmt("green", rev).Exec(ctx, green)
		}}
}

func subscriptionExists(ctx context.Context, c *pgxpool.Conn, name string) (bool, error) {
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look for subscription %s: %w", name, err)
	}
	return exists, nil
}

// changedSequences are the sequences of now that differ from before (or
// were not in it).
func changedSequences(before, now []Sequence) []Sequence {
	seen := make(map[[2]string]Sequence, len(before))
	for _, s := range before {
		seen[[2]string{s.Schema, s.Name}] = s
	}
	var out []Sequence
	for _, s := range now {
		if b, ok := seen[[2]string{s.Schema, s.Name}]; !ok || b != s {
			out = append(out, s)
		}
	}
	return out
}

// eachBouncer runs fn on every PgBouncer in parallel.
func (r *run) eachBouncer(ctx context.Context, fn func(ctx context.Context, c *Console, b BouncerParams) error) error {
	errs := make([]error, len(r.e.consoles))
	var wg sync.WaitGroup
	for k, c := range r.e.consoles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = fn(ctx, c, r.p.Bouncers[k])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Plan lists the sub-steps of a cutover (rollback false) or a rollback with
// the statements each runs, values known only mid-run shown as <where
// they come from>. It needs no connection.
func Plan(p CutoverParams, rollback bool) []PlannedSubStep {
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
