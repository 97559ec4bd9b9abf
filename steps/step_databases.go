package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/state"
)

// A step marked PerDatabase acts in each database that moves. These wrap
// its Plan, Check and Run: each database gets an Env of its own (its
// pools, its schemas, its values), in the run's order, the primary first.

// Databases are the databases the step sees: the runner's (read from blue
// when omitted from the configuration), or offline, the configured list
// or blue.conninfo's alone.
func (e *Env) Databases(ctx context.Context) ([]Database, error) {
	if e.databases != nil && !e.IsOffline() {
		return e.databases(ctx)
	}
	names := []string{e.Config.PrimaryDatabase()}
	for _, d := range e.Config.Databases {
		if d != names[0] {
			names = append(names, d)
		}
	}
	out := make([]Database, len(names))
	for i, n := range names {
		out[i] = Database{Name: n}
	}
	return out, nil
}

// eachDatabase calls f with e for every database the step acts in: once
// with e itself for a step of the whole cluster, else once per database,
// each Env with its own schemas resolved.
func (s *Step) eachDatabase(ctx context.Context, e *Env, f func(e *Env, db Database, n, of int) error) error {
	if !s.PerDatabase {
		return f(e, Database{}, 1, 1)
	}
	dbs, err := e.Databases(ctx)
	if err != nil {
		return err
	}
	for i, d := range dbs {
		de, err := e.forDatabase(d).withSchemas(ctx)
		if err != nil {
			return fmt.Errorf("database %s: %w", d.Name, err)
		}
		if err := f(de, d, i+1, len(dbs)); err != nil {
			if len(dbs) > 1 {
				return fmt.Errorf("database %s: %w", d.Name, err)
			}
			return err
		}
	}
	return nil
}

// CheckAll is the step's check, in every database it acts in: done when
// done in each, the details joined and named by database.
func (s *Step) CheckAll(ctx context.Context, e *Env) (CheckResult, error) {
	out := CheckResult{Done: true}
	var details []string
	err := s.eachDatabase(ctx, e, func(e *Env, db Database, n, of int) error {
		res, err := s.Check(ctx, e)
		if err != nil {
			return err
		}
		out.Done = out.Done && res.Done
		if of > 1 {
			res.Detail = db.Name + ": " + res.Detail
		}
		details = append(details, res.Detail)
		return nil
	})
	out.Detail = strings.Join(details, "; ")
	return out, err
}

// runAll runs the step in every database it acts in; in a database where
// its check finds the work done already, it is passed over, so a run
// stopped half way goes on where it stopped.
func (s *Step) runAll(ctx context.Context, e *Env) error {
	return s.eachDatabase(ctx, e, func(e *Env, db Database, n, of int) error {
		if !s.PerDatabase {
			return s.Run(ctx, e)
		}
		if n > 1 && holdPoint() == DatabaseHold(s.ID, db.Name) {
			hold(ctx.Done(), e.reportDir(), DatabaseHold(s.ID, db.Name))
		}
		if of > 1 {
			e.Logf("database %s (%d of %d)", db.Name, n, of)
			e.showDatabase(fmt.Sprintf("%s (%d of %d)", db.Name, n, of))
			defer e.showDatabase("")
		}
		if s.Check != nil {
			res, err := s.Check(ctx, e)
			if err != nil {
				return fmt.Errorf("check: %w", err)
			}
			if res.Done {
				if of > 1 {
					e.Logf("already done in %s: %s", db.Name, res.Detail)
				}
				return nil
			}
		}
		return s.Run(ctx, e)
	})
}

// planAll is the step's plan in every database it acts in, each under a
// line naming it when there are several.
func (s *Step) planAll(ctx context.Context, e *Env) ([]Action, error) {
	var out []Action
	err := s.eachDatabase(ctx, e, func(e *Env, db Database, n, of int) error {
		acts, err := s.Plan(WithStep(ctx, s.ID), e)
		if of > 1 {
			out = append(out, note(s.Target, "== in database %s (%d of %d)", db.Name, n, of))
		}
		out = append(out, acts...)
		return err
	})
	if s.PerDatabase && len(e.Config.Databases) == 0 && e.IsOffline() {
		out = append([]Action{note(s.Target, "in each database that moves: %s here; the others (every database of blue with a table) are read from blue when the run starts", e.Config.PrimaryDatabase())}, out...)
	}
	return out, err
}

// showDatabase records in the step's state which database it acts in now,
// for the screen and status; "" when it is done.
func (e *Env) showDatabase(what string) {
	if e.store == nil || e.step == "" {
		return
	}
	_ = e.store.Update(func(st *state.State) error {
		if rec := st.Steps[e.step]; rec != nil {
			rec.Database = what
		}
		return nil
	})
}

// DatabaseHold is the kill tests' point (testhook.HoldEnv) right before a
// step that acts in each database starts in db, the earlier ones done.
func DatabaseHold(step, db string) string { return step + ": database " + db }
