package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// refresh-matviews: logical replication carries no row of a materialized
// view. Green's are unpopulated after copy-schema (pg_dump creates them
// WITH NO DATA: a query on one fails) and stale on a clone (blue's rows at
// the seed), so green refreshes them from its tables once they have caught
// up.

// refreshMatviewsID and the value it records.
const (
	refreshMatviewsID = "refresh-matviews"
	// MatviewsRefreshedKey is when refresh-matviews began refreshing a
	// database's materialized views (RFC 3339, this program's clock).
	MatviewsRefreshedKey = "matviews_refreshed_at"
	waitCatchUpID        = "wait-catch-up"
)

func refreshMatviews() *Step {
	return &Step{ID: refreshMatviewsID, PerDatabase: true, Phase: PhaseReplicate, Target: Green, Title: "Refresh materialized views on green",
		Why: "Replication carries no row of a materialized view: green's are empty after the schema copy (a query on one fails) or stale on a clone. " +
			"Each is refreshed from green's caught-up tables, a view over another after it, CONCURRENTLY where a unique index allows. " +
			"Done once refreshed after the catch-up; data keeps arriving, so run it again (--again) close to the cutover for fresher views.",
		Source: "issue 23", Records: []string{MatviewsRefreshedKey},
		// A view made again unpopulated on green (DDL) is found by the check
		// when the step is run again, done or not.
		Recheck: true,
		Plan:    planRefreshMatviews,
		Check:   checkMatviews,
		Run:     runRefreshMatviews,
		Again:   againAlways,
	}
}

// againAlways lets a step run again whenever asked: its work is a copy
// or a refresh of data that keeps changing.
func againAlways(context.Context, *Env) string { return "" }

// ownValue is a value this database recorded itself, never the primary's:
// the values of refresh-matviews, copy-large-objects and copy-unlogged are
// each database's own.
func (e *Env) ownValue(key string) (string, bool) {
	v, ok := e.Values[e.dbKey(key)]
	return v, ok && v != ""
}

// finishedAt is when step id last ended as recorded (zero when never).
func (e *Env) finishedAt(id string) time.Time {
	if e.store == nil {
		return time.Time{}
	}
	if rec := e.store.Snapshot().Step(id); rec.FinishedAt != nil {
		return *rec.FinishedAt
	}
	return time.Time{}
}

// runningSince is when the step e runs for started, when it is running
// now (zero otherwise): work of this database recorded before it was
// recorded by an earlier run, and the run now (--again) is asked for
// newer.
func (e *Env) runningSince() time.Time {
	if e.store == nil {
		return time.Time{}
	}
	if rec := e.store.Snapshot().Step(e.step); rec.Status == state.Running && rec.StartedAt != nil {
		return *rec.StartedAt
	}
	return time.Time{}
}

// recordedAfter reads a timestamp value of this database and says why it
// does not count as done: not recorded, before the catch-up ended, or
// before the run now began ("" when it counts).
func (e *Env) recordedAfter(key string) (time.Time, string) {
	v, ok := e.ownValue(key)
	if !ok {
		return time.Time{}, "not recorded"
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Sprintf("%s %q is not a timestamp", key, v)
	}
	if caught := e.finishedAt(waitCatchUpID); at.Before(caught) {
		return at, fmt.Sprintf("at %s, before wait-catch-up ended (%s)", v, caught.Format(time.RFC3339))
	}
	if run := e.runningSince(); at.Before(run) {
		return at, fmt.Sprintf("at %s, and asked again since", v)
	}
	return at, ""
}

// matviewsOp is what refresh-matviews does now: every materialized view of
// the schemas on green, in refresh order (offline: a placeholder).
func matviewsOp(ctx context.Context, e *Env) (pg.RefreshMatviewsParams, error) {
	op := pg.RefreshMatviewsParams{On: "green"}
	if e.Green == nil {
		op.ViewsUnknown, op.What = true, "each materialized view of "+strings.Join(e.Config.Schemas, ", ")
		return op, nil
	}
	qctx, cancel := e.bounded(ctx)
	defer cancel()
	var err error
	op.Views, err = pg.Matviews(qctx, e.Green, e.Config.Schemas)
	return op, err
}

func planRefreshMatviews(ctx context.Context, e *Env) ([]Action, error) {
	op, err := matviewsOp(ctx, e)
	if err != nil {
		return nil, err
	}
	out := []Action{note(Green, "green's tables have caught up with blue's: each view is refreshed from them, one at a time, with no statement timeout, then analyzed (a refresh leaves no planner statistics) and its rows counted")}
	out = append(out, stmts(pg.MatviewsQueries("green", e.Config.Schemas)...)...)
	if !op.ViewsUnknown && len(op.Views) == 0 {
		return append(out, note(Green, "no materialized view in %s: nothing to refresh", strings.Join(e.Config.Schemas, ", "))), nil
	}
	return append(out, stmts(op.Statements()...)...), nil
}

// checkMatviews is done when every materialized view of the schemas on
// green is populated and this step refreshed them after the catch-up.
func checkMatviews(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needGreen(); err != nil {
		return CheckResult{}, err
	}
	qctx, cancel := e.bounded(ctx)
	defer cancel()
	views, err := pg.Matviews(qctx, e.Green, e.Config.Schemas)
	if err != nil {
		return CheckResult{}, err
	}
	if len(views) == 0 {
		return CheckResult{Done: true, Detail: "no materialized view in " + strings.Join(e.Config.Schemas, ", ")}, nil
	}
	var unpopulated []pg.Rel
	for _, v := range views {
		if !v.Populated {
			unpopulated = append(unpopulated, v.Rel)
		}
	}
	if len(unpopulated) > 0 {
		return CheckResult{Detail: fmt.Sprintf("never populated on green: %s (a query on one fails until it is refreshed)", relNames(unpopulated, 5))}, nil
	}
	at, why := e.recordedAfter(MatviewsRefreshedKey)
	if why != "" {
		return CheckResult{Detail: fmt.Sprintf("%s populated on green, not refreshed by this step since the catch-up: refreshed %s", plural(len(views), "materialized view"), why)}, nil
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("%s populated on green, refreshed at %s, after the catch-up", plural(len(views), "materialized view"), at.Format(time.RFC3339))}, nil
}

// runRefreshMatviews refreshes every materialized view of the schemas on
// green in refresh order and records when it began.
func runRefreshMatviews(ctx context.Context, e *Env) error {
	if err := e.needGreen(); err != nil {
		return err
	}
	op, err := matviewsOp(ctx, e)
	if err != nil {
		return err
	}
	if len(op.Views) == 0 {
		e.Logf("no materialized view in %s: nothing to refresh", strings.Join(e.Config.Schemas, ", "))
		return nil
	}
	start := time.Now().UTC()
	var rows int64
	e.Logf("refreshing %s on green, a view over another after it: %s", plural(len(op.Views), "materialized view"), matviewNames(op.Views))
	err = op.Exec(ctx, e.Green, func(r pg.MatviewRefreshed) {
		how := "plainly (" + matviewWhyPlain(r.Matview) + ")"
		if r.Concurrently {
			how = "CONCURRENTLY"
		}
		rows += r.Rows
		e.Logf("refreshed %d/%d %s %s: %s in %s", r.Done, r.Of, r.Matview.Rel, how, plural(int(r.Rows), "row"), r.Took.Round(time.Millisecond))
	})
	if err != nil {
		return err
	}
	e.Logf("refreshed %s (%s) in %s", plural(len(op.Views), "materialized view"), plural(int(rows), "row"), time.Since(start).Round(time.Millisecond))
	return e.Record(MatviewsRefreshedKey, start.Format(time.RFC3339Nano))
}

func matviewWhyPlain(v pg.Matview) string {
	if !v.Populated {
		return "never populated"
	}
	return "no unique index to refresh it concurrently"
}

func matviewNames(vs []pg.Matview) string {
	rs := make([]pg.Rel, len(vs))
	for i, v := range vs {
		rs[i] = v.Rel
	}
	return relNames(rs, 10)
}

// matviewsAdvice is preflight's line on blue's materialized views of the
// schemas: what refresh-matviews will do with them.
func matviewsAdvice(matviews []pg.Rel) string {
	if len(matviews) == 0 {
		return ""
	}
	return fmt.Sprintf("materialized views are not replicated: %s; refresh-matviews refreshes them on green after the catch-up, a view over another after it, CONCURRENTLY where a unique index allows", relNames(matviews, 10))
}
