package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Verify green before the cutover: analyze-green, verify-data.

func analyzeGreen() *Step {
	return &Step{ID: "analyze-green", PerDatabase: true, Phase: PhaseReplicate, Target: Green, Title: "Analyze green",
		Why:    "An upgraded or freshly loaded database has no planner statistics: without them the first queries after cutover are slow.",
		Source: "000, 001 §9.2, 002",
		Plan:   planAnalyzeGreen,
		Check:  alwaysRuns("ANALYZE runs every time: statistics go stale as data arrives"),
		Run:    runAnalyzeGreen,
	}
}

func verifyData() *Step {
	return &Step{ID: "verify-data", PerDatabase: true, Phase: PhaseReplicate, Target: BlueGreen, Title: "Verify data",
		Why: "Row counts per table, compared on blue and green at a drained point, before trusting green with traffic. " +
			"Counts only match while writes are quiet, so it is optional: it does not gate the cutover.",
		Source: "beyond the sources", Optional: true,
		Plan:  planVerifyData,
		Check: alwaysRuns("the comparison runs every time"),
		Run:   runVerifyData,
	}
}

// alwaysRuns is the check of a step that is never found done.
func alwaysRuns(detail string) func(context.Context, *Env) (CheckResult, error) {
	return func(context.Context, *Env) (CheckResult, error) { return CheckResult{Detail: detail}, nil }
}

// VerifyChecksumsKey is the value that, set to "on", makes verify-data
// compare an md5 of every table's rows as well as the counts (every row is
// read and sorted: slow on large tables).
const VerifyChecksumsKey = "verify_data_checksums"

// analyzeOp is what analyze-green does now: every table and partitioned
// parent of the schemas on green, largest first, on analyzeJobs connections
// (offline: a placeholder for the tables).
func analyzeOp(ctx context.Context, e *Env) (pg.AnalyzeParams, error) {
	op := pg.AnalyzeParams{On: "green", Jobs: e.analyzeJobs()}
	if e.Green == nil {
		// Offline, green's cores are not known: the plan says where the number comes from.
		op.Jobs = e.Config.Sync.AnalyzeJobs
		op.Tables = []pg.Rel{pg.PlaceholderRel("each table and partitioned table of " + strings.Join(e.Config.Schemas, ", ") + ", largest first")}
		return op, nil
	}
	var err error
	op.Tables, err = pg.AnalyzeTargets(ctx, e.Green, e.Config.Schemas)
	return op, err
}

func planAnalyzeGreen(ctx context.Context, e *Env) ([]Action, error) {
	op, err := analyzeOp(ctx, e)
	if err != nil {
		return nil, err
	}
	start, progress, left := pg.ServerNowQuery("green"), pg.AnalyzeProgressQuery("green"), pg.NotAnalyzedQuery("green", e.Config.Schemas, pg.Later("the start"))
	start.Note, progress.Note, left.Note = "the start, on green's clock", "every 5 s while it runs", "any row fails the step"
	out := stmts(start)
	out = append(out, stmts(op.Statements()...)...)
	return append(out, stmts(progress, left)...), nil
}

// runAnalyzeGreen analyzes every table and partitioned parent of the
// schemas on green, several at a time, logging each and polling
// pg_stat_progress_analyze for the long ones, then checks that every one
// was analyzed after the start.
func runAnalyzeGreen(ctx context.Context, e *Env) error {
	if err := e.needGreen(); err != nil {
		return err
	}
	qctx, cancel := e.bounded(ctx)
	start, err := pg.ServerNow(qctx, e.Green)
	var op pg.AnalyzeParams
	if err == nil {
		op, err = analyzeOp(qctx, e)
	}
	cancel()
	if err != nil {
		return err
	}
	e.Logf("ANALYZE %d tables of %s on green, %d at a time, largest first (no statement timeout), started %s", len(op.Tables), strings.Join(e.Config.Schemas, ", "), op.Jobs, start.Format(time.RFC3339))
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
				lines, err := pg.AnalyzeProgress(pctx, e.Green)
				if err == nil && len(lines) > 0 {
					e.Logf("in progress: %s", strings.Join(lines, "; "))
				}
			}
		}
	}()
	began := time.Now()
	err = op.Exec(ctx, e.Green, func(done int, t pg.Rel, d time.Duration) {
		e.Logf("analyzed %d/%d %s in %s", done, len(op.Tables), t, d.Round(time.Millisecond))
	})
	stop()
	if err != nil {
		return err
	}
	e.Logf("analyzed %d tables in %s", len(op.Tables), time.Since(began).Round(time.Millisecond))
	qctx, cancel = e.bounded(ctx)
	defer cancel()
	left, err := pg.NotAnalyzedSince(qctx, e.Green, e.Config.Schemas, start)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("not analyzed since %s: %s; run analyze-green again (a table created meanwhile?)", start.Format(time.RFC3339), relList(left))
	}
	return nil
}

// verifyAttempts is how many times verify-data compares before it reports
// a table: under live writes a count can differ for a moment.
const verifyAttempts = 3

// runVerifyData compares row counts (and, with verify_data_checksums = on,
// content hashes) per table at a drained point: it takes blue's LSN, waits
// briefly for every slot to reach it, then counts on both sides, each in
// one snapshot. Under live writes blue moves on between the two counts,
// so a table must differ in every attempt to be reported; it is exact when
// writes are paused (the cutover's drain, or a quiet moment).
func runVerifyData(ctx context.Context, e *Env) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	checksum := e.Values[VerifyChecksumsKey] == "on"
	qctx, cancel := e.bounded(ctx)
	tables, err := pg.LeafTables(qctx, e.Blue, e.Config.Schemas)
	cancel()
	if err != nil {
		return err
	}
	count := func(on string, pool *pgxpool.Pool) (map[pg.Rel]string, error) {
		return pg.RowCountParams{On: on, Tables: tables, Checksum: checksum}.Exec(ctx, pool)
	}
	var mismatched map[pg.Rel]string
	var writes int64 // transactions blue started during the comparisons
	for attempt := 1; attempt <= verifyAttempts; attempt++ {
		qctx, cancel := e.bounded(ctx)
		target, err := pg.CurrentLSN(qctx, e.Blue)
		var xidBefore int64
		if err == nil {
			xidBefore, err = pg.NextXID(qctx, e.Blue)
		}
		cancel()
		if err != nil {
			return err
		}
		if _, err := e.waitDrained(ctx, target, e.Config.Timeouts.Statement.Duration, false); err != nil {
			return fmt.Errorf("drain before counting: %w", err)
		}
		blue, err := count("blue", e.Blue)
		if err != nil {
			return fmt.Errorf("blue: %w", err)
		}
		green, err := count("green", e.Green)
		if err != nil {
			return fmt.Errorf("green: %w", err)
		}
		qctx, cancel = e.bounded(ctx)
		xidAfter, err := pg.NextXID(qctx, e.Blue)
		cancel()
		if err != nil {
			return err
		}
		writes += xidAfter - xidBefore
		now := map[pg.Rel]string{}
		for _, t := range tables {
			if blue[t] != green[t] && (mismatched == nil || mismatched[t] != "") {
				now[t] = fmt.Sprintf("%s: blue %s, green %s", t, blue[t], green[t])
			}
		}
		mismatched = now
		if len(mismatched) == 0 {
			what := "row counts"
			if checksum {
				what = "row counts and content hashes"
			}
			e.Logf("%s equal on blue and green for all %d tables of %s (attempt %d)", what, len(tables), strings.Join(e.Config.Schemas, ", "), attempt)
			return nil
		}
		e.Warnf("attempt %d: %d table(s) differ; blue may have moved on between the counts, comparing again", attempt, len(mismatched))
	}
	var lines []string
	for _, l := range mismatched {
		lines = append(lines, l)
	}
	sort.Strings(lines)
	if writes > 0 {
		return fmt.Errorf("%d table(s) differ between blue and green, but blue was being written (%d transactions during the comparisons), so counts taken a moment apart cannot match: %s; run verify-data again while writes are paused or quiet",
			len(lines), writes, strings.Join(lines, "; "))
	}
	return fmt.Errorf("%d table(s) differ between blue and green in %d attempts: %s; look for apply errors on green (wait-catch-up), or compare again when writes are paused",
		len(lines), verifyAttempts, strings.Join(lines, "; "))
}

// verifyTables are the tables verify-data counts: blue's ordinary tables
// of the schemas (offline: a placeholder).
func verifyTables(ctx context.Context, e *Env) ([]pg.Rel, error) {
	if e.Blue == nil {
		return []pg.Rel{pg.PlaceholderRel("each table of " + strings.Join(e.Config.Schemas, ", "))}, nil
	}
	return pg.LeafTables(ctx, e.Blue, e.Config.Schemas)
}

func planVerifyData(ctx context.Context, e *Env) ([]Action, error) {
	tables, err := verifyTables(ctx, e)
	if err != nil {
		return nil, err
	}
	checksum := e.Values[VerifyChecksumsKey] == "on"
	out := []Action{
		note(Blue, "reads blue's current WAL position, then waits until every slot reaches it (as wait-catch-up does)"),
		note(BlueGreen, "the counts below run on blue, then on green, up to %d times while they differ (with value %s = on, an md5 of the rows too)", verifyAttempts, VerifyChecksumsKey),
	}
	out = append(out, stmts(pg.RowCountParams{On: "blue", Tables: tables, Checksum: checksum}.Statements()...)...)
	return append(out, stmts(pg.RowCountParams{On: "green", Tables: tables, Checksum: checksum}.Statements()...)...), nil
}

// analyzeJobs is how many connections analyze-green uses: sync.analyze_jobs,
// else green's cores.
func (e *Env) analyzeJobs() int {
	if n := e.Config.Sync.AnalyzeJobs; n > 0 {
		return n
	}
	return e.Config.GreenCores()
}
