package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// RefusedError is a step the runner will not run, and why. Nothing was changed.
type RefusedError struct {
	Step   string
	Reason string
}

// Error names the step and why it was refused.
func (e *RefusedError) Error() string { return fmt.Sprintf("%s refused: %s", e.Step, e.Reason) }

// IsRefused reports whether err is a refusal (nothing ran).
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// GuardFunc starts a guard for cutover attempt n: a process that outlives
// this one and undoes the attempt if this process dies or stops answering
// while writes are stopped. stop ends it once the attempt is over.
type GuardFunc func(ctx context.Context, n int) (stop func(), err error)

// Runner executes the steps of one strategy, one at a time.
type Runner struct {
	Config  *config.Config
	Steps   []*Step
	Store   *state.Store
	Journal *state.Journal // may be nil
	Blue    *pgxpool.Pool  // may be nil offline
	Green   *pgxpool.Pool
	AWS     *aws.Client // nil unless the run talks to AWS
	// Guard starts the guard process of a cutover attempt (main.go's);
	// nil: no guard (tests that run the cutover in process).
	Guard GuardFunc
	// Holder starts the holder of a snapshot copy's snapshot (main.go's);
	// nil: the copy holds its snapshot itself (tests that copy in process).
	Holder SnapshotHolderFunc
	// Out receives every line of step output as it is produced; may be nil.
	// The runner never blocks on it longer than the step's context lives.
	Out chan<- Line

	// The databases the run moves, resolved once (Databases), and the
	// pools opened for those other than the primary.
	dbMu   sync.Mutex
	dbs    []Database
	opened []*pgxpool.Pool

	// The driver lock on blue while steps run (holdBlue, driver.go).
	lockMu    sync.Mutex
	lock      *pg.DriverLock
	lockDepth int
}

// NewRunner builds a runner for the configured strategy.
func NewRunner(c *config.Config, store *state.Store, j *state.Journal) *Runner {
	return &Runner{Config: c, Steps: Strategy(c.Strategy), Store: store, Journal: j}
}

// RunParams are the operator's choices for one run.
type RunParams struct {
	// DryRun prints the plan and runs nothing.
	DryRun bool
	// Confirmed is --yes, or the database's name typed in the UI.
	Confirmed bool
	// Override, when not empty, is the operator's reason to run a step whose
	// earlier steps are not done or whose values are missing. It is journaled.
	Override string
	// Again, when not empty, is the operator's reason to run a done step
	// once more on purpose (a wrong value to replace). It is journaled, and
	// refused unless the step says it can run again now (Step.Again).
	Again string
	// Way is the way out of an interrupted cutover or rollback the operator
	// chose: "finish" (forward) or "undo" (back).
	Way string
	// Check rehearses the step (its live prechecks) without running it;
	// MeasurePause adds one bare PAUSE/RESUME of each PgBouncer, timed.
	Check, MeasurePause bool
}

// Outcome says what a run did.
type Outcome string

// The outcomes of Run.
const (
	OutcomeRan         Outcome = "ran"
	OutcomeAlreadyDone Outcome = "already done"
	OutcomeFoundDone   Outcome = "found done"
	OutcomeDryRun      Outcome = "dry run"
	// OutcomeUndone: the step took back what an interrupted run of it did
	// (a cutover's way out back): it is pending again.
	OutcomeUndone Outcome = "undone"
	// OutcomeChecked: a rehearsal (--check) passed; nothing changed.
	OutcomeChecked Outcome = "checked"
)

// UndoneError is what a step returns after taking back an interrupted run
// of itself: nothing failed, and the step is not done.
type UndoneError struct{ Detail string }

// Error says what was taken back.
func (e *UndoneError) Error() string { return "undone: " + e.Detail }

// Find returns the strategy's step with that ID.
func (r *Runner) Find(id string) (*Step, int) {
	for i, s := range r.Steps {
		if s.ID == id {
			return s, i
		}
	}
	return nil, -1
}

// Env returns the environment steps see, with the values recorded so far.
func (r *Runner) Env(step string) *Env {
	st := r.Store.Snapshot()
	values := make(map[string]string, len(st.Values))
	for k, v := range st.Values {
		values[k] = v.Value
	}
	e := &Env{
		Config: r.Config, Values: values, Blue: r.Blue, Green: r.Green, AWS: r.AWS,
		StateDir: filepath.Dir(r.Store.Path()),
		step:     step, emit: r.emit, store: r.Store, guard: r.Guard, holder: r.Holder, databases: r.Databases,
		record: func(key, value string) error {
			return r.Store.Update(func(s *state.State) error {
				if s.Values == nil {
					s.Values = map[string]state.Value{}
				}
				s.Values[key] = state.Value{Key: key, Value: value, RecordedBy: step, RecordedAt: time.Now().UTC()}
				return nil
			})
		},
	}
	e.withCopyModes()
	return e
}

func (r *Runner) emit(l Line) {
	r.journal(state.Entry{Time: l.Time, Step: l.Step, Kind: "log", Text: l.Text, Outcome: l.Level})
	if r.Out != nil {
		r.Out <- l
	}
}

// QueryJournal is the hook main.go gives each pool (pg.PoolParams.OnQuery):
// a statement run outside an operation (a check's or a poll's read) is
// journaled as kind "read" under the step its context names. Statements
// an operation executes are journaled by the runner instead, as "sql",
// with their values (journalStmt); one that changes something and was not
// run as an operation's statement is journaled as "sql" too, as it was
// sent: no plan showed it, and the dry-run tests catch it.
//
// A read repeated by a poll is journaled the first time, then at most once
// a minute with how many times it ran meanwhile: a wait of an hour reading
// three statements every 250 ms would otherwise write 33 MB.
func QueryJournal(j *state.Journal, target string) func(context.Context, string, time.Duration, error) {
	var mu sync.Mutex
	type seen struct {
		at    time.Time
		count int
	}
	last := map[string]*seen{}
	return func(ctx context.Context, sql string, d time.Duration, err error) {
		if j == nil || pg.Journaled(ctx) || pg.IsQuiet(ctx) {
			return
		}
		kind := "read"
		if !pg.IsRead(sql) {
			kind = "sql"
		}
		e := state.Entry{Step: StepFromContext(ctx), Target: target, Kind: kind, Text: sql, Duration: d, Outcome: "ok"}
		if err != nil {
			e.Outcome, e.Error = "error", err.Error()
		}
		if kind == "read" && err == nil {
			key := e.Step + "\x00" + sql
			now := time.Now()
			mu.Lock()
			s := last[key]
			if s != nil && now.Sub(s.at) < readJournalEvery {
				s.count++
				mu.Unlock()
				return
			}
			if s != nil {
				e.Text += fmt.Sprintf("  -- read %d more times since %s", s.count, s.at.UTC().Format("15:04:05"))
			}
			if len(last) > 10000 {
				last = map[string]*seen{} // distinct reads are few; bound it anyway
			}
			last[key] = &seen{at: now}
			mu.Unlock()
		}
		_ = j.Append(e)
	}
}

// readJournalEvery is how often a repeated read is journaled again.
const readJournalEvery = time.Minute

// journalStmt journals one statement or command an operation executed, under the step
// its context names.
func (r *Runner) journalStmt(ctx context.Context, x pg.Executed) {
	e := state.Entry{Step: StepFromContext(ctx), Target: x.On, Kind: x.Kind, Text: x.Text, Duration: x.Duration, Outcome: "ok"}
	if x.Err != nil {
		e.Outcome, e.Error = "error", x.Err.Error()
	}
	r.journal(e)
}

// attach keeps a large text an operation executed (the schema dump) in a
// folder beside the journal, named by its hash, and returns the path the
// journal line names.
func (r *Runner) attach(name string, data []byte) (string, error) {
	if r.Journal == nil {
		return "", nil
	}
	dir := strings.TrimSuffix(r.Journal.Path(), filepath.Ext(r.Journal.Path())) + ".files"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	return path, state.WriteFileAtomic(path, data, 0o600)
}

func (r *Runner) journal(e state.Entry) {
	if r.Journal != nil {
		_ = r.Journal.Append(e) // the journal is a record, not a gate: a full disk shows in the state write
	}
}

// Preconditions returns why the step cannot run now, or "" when it can.
func (r *Runner) Preconditions(id string, p RunParams) string {
	s, i := r.Find(id)
	if s == nil {
		return fmt.Sprintf("no step %q in strategy %s; `pgbluegreen plan` lists them", id, r.Config.Strategy)
	}
	st := r.Store.Snapshot()
	if st.Step(id).Status == state.Interrupted && s.Check == nil && p.Override == "" {
		return "it was interrupted and has no check to tell whether it completed; inspect, then override with a reason"
	}
	if p.Override == "" {
		for _, prev := range r.Steps[:i] {
			if prev.Optional {
				continue
			}
			if rec := st.Step(prev.ID); rec.Status != state.Done && rec.Status != state.Skipped {
				return fmt.Sprintf("earlier step %s is %s; run it first (or override with a reason)", prev.ID, rec.Status)
			}
		}
		var missing []string
		for _, k := range s.Needs {
			if v, ok := st.Get(k); !ok || v == "" {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			return "needs value " + strings.Join(missing, ", ") + ", not recorded yet"
		}
	}
	if s.Destructive && !p.Confirmed && !p.DryRun && !(p.Check && !p.MeasurePause) {
		return "destructive: confirm with --yes (in the UI: type the database's name)"
	}
	return ""
}

// Run executes one step: refusals first, then its check (work already done
// is recorded, not redone), then the step itself, with its status saved
// before and after.
func (r *Runner) Run(ctx context.Context, id string, p RunParams) (Outcome, error) {
	s, _ := r.Find(id)
	ctx = pg.WithAttachments(pg.WithJournal(WithStep(ctx, id), r.journalStmt), r.attach)
	env := r.Env(id)
	env.way = p.Way
	done := s != nil && !p.DryRun && r.Store.Snapshot().Step(id).Status == state.Done
	if done && p.Again == "" {
		if !s.Recheck {
			return OutcomeAlreadyDone, nil
		}
		// Recorded done, but the servers have the last word: undone (a
		// rollback by hand, say), it runs again.
		if res, err := s.CheckAll(ctx, env); err != nil || res.Done {
			if err != nil {
				return "", state.RedactError(fmt.Errorf("%s check: %w", id, err))
			}
			return OutcomeAlreadyDone, nil
		}
		done = false
	}
	if why := r.Preconditions(id, p); why != "" {
		r.journal(state.Entry{Step: id, Kind: "step", Text: "refused: " + why, Outcome: "refused"})
		return "", &RefusedError{Step: id, Reason: why}
	}
	env, err := env.withSchemas(ctx)
	if err != nil {
		return "", state.RedactError(fmt.Errorf("%s: %w", id, err))
	}
	env.way = p.Way
	if done && p.Again != "" {
		if s.Again == nil {
			return "", r.refuseNow(id, "it is done and cannot be run again: its work is recorded and later steps build on it")
		}
		if why := s.Again(ctx, env); why != "" {
			return "", r.refuseNow(id, "it is done and cannot be run again now: "+why)
		}
		r.journal(state.Entry{Step: id, Target: "operator", Kind: "operator", Text: "run again on purpose: " + p.Again, Outcome: "again"})
	}
	if p.DryRun {
		acts, err := s.RenderPlan(ctx, env)
		for _, a := range acts {
			env.log("plan", "[%s %s] %s", a.Target, a.Kind, a.Text)
		}
		if err != nil {
			return "", state.RedactError(fmt.Errorf("%s dry run: %w", id, err))
		}
		return OutcomeDryRun, nil
	}
	// One driver per blue: held from the check to the recorded end.
	release, err := r.holdBlue(ctx, id)
	if err != nil {
		r.journal(state.Entry{Step: id, Kind: "step", Text: "refused: " + err.Error(), Outcome: "refused"})
		return "", err
	}
	defer release()
	if p.Check {
		if s.Rehearse == nil {
			return "", r.refuseNow(id, "it has no rehearsal: --check goes with cutover or rollback")
		}
		r.journal(state.Entry{Step: id, Target: "operator", Kind: "operator", Text: fmt.Sprintf("rehearsal (--check, measure pause %t)", p.MeasurePause), Outcome: "check"})
		if err := s.Rehearse(ctx, env, p.MeasurePause); err != nil {
			return "", state.RedactError(err)
		}
		return OutcomeChecked, nil
	}
	if p.Override != "" {
		r.journal(state.Entry{Step: id, Target: "operator", Kind: "operator", Text: "override of ordering and value checks: " + p.Override, Outcome: "override"})
	}
	if s.Check != nil && p.Again == "" {
		res, err := s.CheckAll(ctx, env)
		if err != nil {
			err = fmt.Errorf("%s check: %w", id, err)
			r.journal(state.Entry{Step: id, Kind: "step", Text: "check failed", Outcome: "error", Error: err.Error()})
			return "", state.RedactError(err)
		}
		if res.Done {
			if done {
				return OutcomeAlreadyDone, nil
			}
			env.Logf("already done: %s", res.Detail)
			return OutcomeFoundDone, r.finishDone(s, res.Detail)
		}
	}

	before := r.Store.Snapshot().Step(id)
	start := time.Now().UTC()
	if err := r.Store.Update(func(st *state.State) error {
		rec := stepRecord(st, id)
		rec.Status, rec.Attempts, rec.StartedAt, rec.FinishedAt, rec.LastError = state.Running, rec.Attempts+1, &start, nil, ""
		return nil
	}); err != nil {
		return "", fmt.Errorf("record start of %s: %w", id, err)
	}
	r.journal(state.Entry{Step: id, Target: string(s.Target), Kind: "step", Text: "start " + s.Title, Outcome: "running"})

	err = s.runAll(ctx, env)
	switch {
	case err == nil:
		result := ""
		if s.Check != nil {
			if res, cerr := s.CheckAll(ctx, env); cerr == nil {
				result = res.Detail
			}
		}
		return OutcomeRan, r.finishDone(s, result)
	case IsRefused(err):
		// A step refuses before it changes anything: its status goes back to
		// what it was, with the reason, so a refusal never reads as a failure.
		return "", r.refused(id, before, err)
	case errors.As(err, new(*UndoneError)):
		return OutcomeUndone, r.finish(id, state.Pending, err.Error(), nil)
	case ctx.Err() != nil:
		return "", r.finish(id, state.Interrupted, "", fmt.Errorf("cancelled: %w", err))
	default:
		return "", r.finish(id, state.Failed, "", err)
	}
}

func (r *Runner) finish(id string, status state.Status, result string, runErr error) error {
	now := time.Now().UTC()
	if runErr != nil {
		runErr = state.RedactError(fmt.Errorf("%s: %w", id, runErr))
	}
	err := r.Store.Update(func(st *state.State) error {
		rec := stepRecord(st, id)
		rec.Status, rec.FinishedAt, rec.Result = status, &now, result
		if runErr != nil {
			rec.LastError = runErr.Error()
		} else {
			rec.LastError = ""
		}
		return nil
	})
	e := state.Entry{Step: id, Kind: "step", Text: string(status) + ": " + result, Outcome: string(status)}
	if rec := r.Store.Snapshot().Step(id); rec.StartedAt != nil {
		e.Duration = now.Sub(*rec.StartedAt)
	}
	if runErr != nil {
		e.Error = runErr.Error()
	}
	r.journal(e)
	if err != nil {
		return fmt.Errorf("record end of %s: %w", id, err)
	}
	return runErr
}

// finishDone records a step done, and makes the steps it reopens pending
// again (a rollback reopens the cutover: cut over, roll back, cut over
// again).
func (r *Runner) finishDone(s *Step, result string) error {
	if len(s.Reopens) > 0 {
		err := r.Store.Update(func(st *state.State) error {
			for _, id := range s.Reopens {
				if rec := stepRecord(st, id); rec.Status == state.Done {
					rec.Status, rec.Result = state.Pending, "reopened by "+s.ID
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("record end of %s: %w", s.ID, err)
		}
	}
	return r.finish(s.ID, state.Done, result, nil)
}

// refuseNow journals a refusal made before anything ran.
func (r *Runner) refuseNow(id, why string) error {
	r.journal(state.Entry{Step: id, Kind: "step", Text: "refused: " + why, Outcome: "refused"})
	return &RefusedError{Step: id, Reason: why}
}

// refused restores the record a step had before a run it refused, keeping the reason.
func (r *Runner) refused(id string, before state.StepRecord, err error) error {
	err = state.RedactError(err)
	uerr := r.Store.Update(func(st *state.State) error {
		rec := stepRecord(st, id)
		*rec = before
		rec.ID, rec.LastError = id, err.Error()
		if rec.Status == "" {
			rec.Status = state.Pending
		}
		return nil
	})
	r.journal(state.Entry{Step: id, Kind: "step", Text: "refused by the step: nothing changed", Outcome: "refused", Error: err.Error()})
	if uerr != nil {
		return fmt.Errorf("record refusal of %s: %w", id, uerr)
	}
	return err
}

// Skip marks a step skipped on the operator's word, with the reason journaled.
func (r *Runner) Skip(id, reason string) error {
	s, _ := r.Find(id)
	if s == nil {
		return &RefusedError{Step: id, Reason: "not a step of strategy " + r.Config.Strategy}
	}
	if strings.TrimSpace(reason) == "" {
		return &RefusedError{Step: id, Reason: "skipping needs a reason"}
	}
	r.journal(state.Entry{Step: id, Target: "operator", Kind: "operator", Text: "skip: " + reason, Outcome: "skipped"})
	return r.finish(id, state.Skipped, "skipped: "+reason, nil)
}

// Through runs every pending step in order up to and including id. Optional
// steps are passed over unless id names one.
func (r *Runner) Through(ctx context.Context, id string, p RunParams) error {
	_, last := r.Find(id)
	if last < 0 {
		return &RefusedError{Step: id, Reason: fmt.Sprintf("no step %q in strategy %s", id, r.Config.Strategy)}
	}
	// Held across the steps, so no other driver slips in between two.
	release, err := r.holdBlue(ctx, id)
	if err != nil {
		return err
	}
	defer release()
	for i, s := range r.Steps[:last+1] {
		if s.Optional && i != last {
			continue
		}
		if st := r.Store.Snapshot().Step(s.ID).Status; st == state.Done || st == state.Skipped {
			continue
		}
		if _, err := r.Run(ctx, s.ID, p); err != nil {
			return err
		}
	}
	return nil
}

func stepRecord(st *state.State, id string) *state.StepRecord {
	if st.Steps == nil {
		st.Steps = map[string]*state.StepRecord{}
	}
	rec := st.Steps[id]
	if rec == nil {
		rec = &state.StepRecord{ID: id, Status: state.Pending}
		st.Steps[id] = rec
	}
	return rec
}
