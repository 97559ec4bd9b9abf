package steps

import (
	"context"
	"fmt"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// RecordIfDone asks the step's check whether its work is there already,
// under the runner's ordering rules (not its confirmation rule). When it
// is, the step is recorded done without running: the screen asks for the
// database's name only for a destructive step that has something to do.
// It returns the outcome (OutcomeFoundDone or OutcomeAlreadyDone when
// done, "" when the step has work to do) and what the check found.
func (r *Runner) RecordIfDone(ctx context.Context, id string) (Outcome, string, error) {
	s, _ := r.Find(id)
	if s == nil {
		return "", "", &RefusedError{Step: id, Reason: fmt.Sprintf("no step %q in strategy %s", id, r.Config.Strategy)}
	}
	rec := r.Store.Snapshot().Step(id)
	if rec.Status == state.Done && !s.Recheck {
		return OutcomeAlreadyDone, rec.Result, nil
	}
	if why := r.Preconditions(id, RunParams{Confirmed: true}); why != "" {
		return "", "", &RefusedError{Step: id, Reason: why}
	}
	if s.Check == nil {
		return "", "", nil
	}
	env := r.Env(id)
	ctx = pg.WithJournal(WithStep(ctx, id), r.journalStmt)
	res, err := s.CheckAll(ctx, env)
	switch {
	case err != nil:
		return "", "", state.RedactError(fmt.Errorf("%s check: %w", id, err))
	case !res.Done:
		return "", res.Detail, nil
	case rec.Status == state.Done:
		return OutcomeAlreadyDone, res.Detail, nil
	}
	env.Logf("already done: %s", res.Detail)
	return OutcomeFoundDone, res.Detail, r.finishDone(s, res.Detail)
}
