package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps/cutover"

	"github.com/pgbluegreen/pgbluegreen/state"
)

// Each run of the cutover or the rollback is an attempt, numbered and kept
// in the state file with its outcome, its report and what a way out needs
// (the roles fenced, the settings before it).

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
func (e *Env) beginAttempt(step string, p cutover.Params) (int, error) {
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

// recordPrior keeps what the attempt found before it changed anything (it
// may be told again: the fences in force change as the run fences).
func (e *Env) recordPrior(n int, prior cutover.Prior) error {
	b, err := json.Marshal(prior)
	if err != nil {
		return fmt.Errorf("record what the attempt found: %w", err)
	}
	return e.editAttempt(n, func(a *state.Attempt) {
		a.LoginRetry, a.TargetReadOnly, a.Prior = prior.LoginRetry, prior.TargetReadOnly, b
	})
}

// priorOf is what attempt a found before it changed anything, for its way
// out: all of it where it was kept whole, else (a state file written
// before) its PgBouncers' server_login_retry and the target's read-only.
func priorOf(a state.Attempt) *cutover.Prior {
	var p cutover.Prior
	if len(a.Prior) > 0 && json.Unmarshal(a.Prior, &p) == nil {
		return &p
	}
	return &cutover.Prior{LoginRetry: a.LoginRetry, TargetReadOnly: a.TargetReadOnly}
}

// fencesInForce are the fences the newest attempt left, for the next one
// to give back exactly what they took (cutover.Params.Fences).
func (e *Env) fencesInForce() cutover.Fences {
	if e.store == nil {
		return nil
	}
	atts := e.store.Snapshot().Attempts
	for k := len(atts) - 1; k >= 0; k-- {
		var f cutover.Fences
		if len(atts[k].Fences) > 0 && json.Unmarshal(atts[k].Fences, &f) == nil {
			return f
		}
	}
	return nil
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
func (e *Env) endAttempt(ctx context.Context, n int, names switchNames, rep *cutover.Report, runErr error) error {
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
	if rep != nil && rep.Outcome == cutover.OutcomeDone {
		if err := e.recordLargeObjectsAfter(rep, names.to); err != nil {
			return err
		}
	}
	outcome := state.AttemptFailed
	if rep != nil {
		switch rep.Outcome {
		case cutover.OutcomeDone:
			outcome = state.AttemptDone
		case cutover.OutcomeAborted:
			outcome = state.AttemptAborted
		case cutover.OutcomeRefused:
			outcome = state.AttemptRefused
		}
	}
	var pe *cutover.PrecheckError
	if errors.As(runErr, &pe) {
		outcome = state.AttemptRefused
	}
	now := time.Now().UTC()
	if err := e.editAttempt(n, func(a *state.Attempt) {
		a.Outcome, a.FinishedAt, a.Report = outcome, &now, report
		if rep != nil {
			a.FenceRoles = rep.FenceRoles
			if b, err := json.Marshal(rep.Fences); err == nil && len(rep.Fences) > 0 {
				a.Fences = b
			}
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
	undone := e.way == cutover.WayUndo && rep != nil && runErr == nil &&
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
	budget := ""
	if rep.PauseBudgetMs > 0 {
		budget = fmt.Sprintf(" of a %s budget", time.Duration(rep.PauseBudgetMs*float64(time.Millisecond)))
	}
	e.Logf("writes go to %s; paused %.1f ms%s, longest probe stall %.1f ms, %d sequences synced in %.1f ms; fenced on %s: %s",
		rep.FinalTarget, rep.PausedMs, budget, rep.Probe.MaxStallMs, rep.Sequences, rep.SeqSyncMs, names.from, strings.Join(rep.FenceRoles, ", "))
	return runErr
}

// onSubStep streams each sub-step to the log pane and the journal.
func (e *Env) onSubStep(s cutover.SubStep) {
	ms := float64(s.Duration.Microseconds()) / 1000
	if s.Error != "" {
		e.Warnf("%-34s %8.1f ms  [%s] FAILED: %s", s.Name, ms, s.Target, s.Error)
		return
	}
	e.Logf("%-34s %8.1f ms  [%s] %s", s.Name, ms, s.Target, s.Detail)
}

// attemptHooks follow a cutover or rollback for the runbook: its sub-steps
// and prechecks in the log, what it found before changing anything in its
// attempt's record, the guard started right before writes stop, and the
// kill tests' hold (package testhook).
type attemptHooks struct {
	e *Env
	// n is the attempt's number in the state; 0 for a run that keeps no
	// attempt (a rehearsal, the guard's undo).
	n int
	// hold names the sub-step the test hook holds the driver at ("": none).
	hold string
}

// Prior records what the attempt found, so a way out after a crash has it.
func (h attemptHooks) Prior(prior cutover.Prior) error { return h.e.recordPrior(h.n, prior) }

// BeforePause starts the guard.
func (h attemptHooks) BeforePause(ctx context.Context) error {
	h.e.holdStops()
	return h.e.startGuard(ctx, h.n)
}

// BeforeSubStep is the kill tests' hook (package testhook): before the
// named sub-step it holds, beside the state file, until ctx ends. It does
// nothing unless the binary is built with -tags pgbgtest.
func (h attemptHooks) BeforeSubStep(ctx context.Context, step string) {
	if h.hold == "" || step != h.hold && !h.ofOneDatabase(step) {
		return
	}
	hold(ctx.Done(), h.e.reportDir(), step)
}

// ofOneDatabase reports whether step is the held point's sub-step in one
// moved database ("sync sequences (app)"): with several databases each
// names its own (and no other sub-step's name ends in parentheses), and
// the point holds at the first.
func (h attemptHooks) ofOneDatabase(step string) bool {
	db, ok := strings.CutPrefix(step, h.hold+" (")
	return ok && strings.HasSuffix(db, ")") && !strings.Contains(db, "(")
}

// SubStepDone logs a sub-step with its time.
func (h attemptHooks) SubStepDone(s cutover.SubStep) { h.e.onSubStep(s) }

// PrecheckDone logs a precheck.
func (h attemptHooks) PrecheckDone(c cutover.Check) { h.e.logPrecheck(c) }

// Waiting logs what the prechecks wait for.
func (h attemptHooks) Waiting(s string) { h.e.Logf("%s", s) }

// Paused writes the pause marker the guard holds to the pause budget.
func (h attemptHooks) Paused(at time.Time) {
	if path := h.e.pausedPath(); path != "" {
		_ = os.WriteFile(path, []byte(at.UTC().Format(time.RFC3339Nano)), 0o600)
	}
}

// Resumed removes the pause marker.
func (h attemptHooks) Resumed() {
	if path := h.e.pausedPath(); path != "" {
		_ = os.Remove(path)
	}
}
