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
)

// RefusedError is a step the runner will not run, and why. Nothing was changed.
type RefusedError struct {
	Step   string
	Reason string
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%s refused: %s", e.Step, e.Reason) }

// IsRefused reports whether err is a refusal (nothing ran).
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// Runner executes the steps of one strategy, one at a time.
type Runner struct {
	Config  *Config
	Steps   []*Step
	Store   *state.Store
	Journal *state.Journal // may be nil
	Blue    *pgxpool.Pool  // may be nil offline
	Green   *pgxpool.Pool
	AWS     *aws.Client // nil unless the run talks to AWS
	// Out receives every line of step output as it is produced; may be nil.
	// The runner never blocks on it longer than the step's context lives.
	Out chan<- Line
}

// NewRunner builds a runner for the configured strategy.
func NewRunner(c *Config, store *state.Store, j *state.Journal) *Runner {
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
}

// Outcome says what a run did.
type Outcome string

// The outcomes of Run.
const (
	OutcomeRan         Outcome = "ran"
	OutcomeAlreadyDone Outcome = "already done"
	OutcomeFoundDone   Outcome = "found done"
	OutcomeDryRun      Outcome = "dry run"
)

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
	return &Env{
		Config: r.Config, Values: values, Blue: r.Blue, Green: r.Green, AWS: r.AWS,
		StateDir: filepath.Dir(r.Store.Path()),
		step:     step, emit: r.emit,
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
		if j == nil || pg.Journaled(ctx) {
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
	if s.Destructive && !p.Confirmed && !p.DryRun {
		return "destructive: confirm with --yes (in the UI: type the database's name)"
	}
	return ""
}

// Run executes one step: refusals first, then its check (work already done
// is recorded, not redone), then the step itself, with its status saved
// before and after.
func (r *Runner) Run(ctx context.Context, id string, p RunParams) (Outcome, error) {
	s, _ := r.Find(id)
	if s != nil && !p.DryRun && r.Store.Snapshot().Step(id).Status == state.Done {
		return OutcomeAlreadyDone, nil
	}
	if why := r.Preconditions(id, p); why != "" {
		r.journal(state.Entry{Step: id, Kind: "step", Text: "refused: " + why, Outcome: "refused"})
		return "", &RefusedError{Step: id, Reason: why}
	}
	env := r.Env(id)
	ctx = pg.WithAttachments(pg.WithJournal(WithStep(ctx, id), r.journalStmt), r.attach)
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
	if p.Override != "" {
		r.journal(state.Entry{Step: id, Target: "operator", Kind: "operator", Text: "override of ordering and value checks: " + p.Override, Outcome: "override"})
	}
	if s.Check != nil {
		res, err := s.Check(ctx, env)
		if err != nil {
			err = fmt.Errorf("%s check: %w", id, err)
			r.journal(state.Entry{Step: id, Kind: "step", Text: "check failed", Outcome: "error", Error: err.Error()})
			return "", state.RedactError(err)
		}
		if res.Done {
			env.Logf("already done: %s", res.Detail)
			return OutcomeFoundDone, r.finish(id, state.Done, res.Detail, nil)
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

	err := s.Run(ctx, env)
	switch {
	case err == nil:
		result := ""
		if s.Check != nil {
			if res, cerr := s.Check(ctx, env); cerr == nil {
				result = res.Detail
			}
		}
		return OutcomeRan, r.finish(id, state.Done, result, nil)
	case IsRefused(err):
		// A step refuses before it changes anything: its status goes back to
		// what it was, with the reason, so a refusal never reads as a failure.
		return "", r.refused(id, before, err)
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
