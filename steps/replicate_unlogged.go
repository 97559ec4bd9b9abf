package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// copy-unlogged: an unlogged table's changes never reach the WAL, so
// replication never carries them and a clone starts the table empty. What
// green can get is a copy taken at one moment, as unlogged_tables says.
// It is the Replicate phase's last step, right before the cutover, and not
// inside the cutover's pause: a copy takes as long as the tables' size,
// and the application's writes would wait for it.

// copyUnloggedID and the value it records.
const (
	copyUnloggedID = "copy-unlogged"
	// UnloggedCopiedKey is when copy-unlogged began copying a database's
	// unlogged tables (RFC 3339, this program's clock).
	UnloggedCopiedKey = "unlogged_tables_copied_at"
)

func copyUnlogged() *Step {
	return &Step{ID: copyUnloggedID, PerDatabase: true, Phase: PhaseReplicate, Target: BlueGreen, Title: "Copy unlogged tables",
		Why: "Unlogged tables are never replicated (a clone starts them empty). With unlogged_tables: copy their rows are copied now, right before the cutover, " +
			"in one snapshot of blue and one transaction on green: rows written to them on blue after this are lost, unless the application tolerates it (a cache, sessions). " +
			"With skip, green's stay as they are. Not inside the cutover's pause: a copy takes as long as the tables' size.",
		Source: "issue 23", Records: []string{UnloggedCopiedKey},
		Plan:  planCopyUnlogged,
		Check: checkUnlogged,
		Run:   runCopyUnlogged,
		Again: againAlways,
	}
}

// unloggedOp is what copy-unlogged copies now: blue's unlogged tables of
// the schemas (offline: a placeholder).
func unloggedOp(ctx context.Context, e *Env) (pg.CopyUnloggedParams, error) {
	if e.Blue == nil {
		return pg.CopyUnloggedParams{TablesUnknown: true, What: "each unlogged table of " + strings.Join(e.Config.Schemas, ", ")}, nil
	}
	qctx, cancel := e.bounded(ctx)
	defer cancel()
	tables, err := pg.UnloggedTables(qctx, e.Blue, e.Config.Schemas)
	return pg.CopyUnloggedParams{Tables: tables}, err
}

func unloggedRels(ts []pg.SnapshotTable) []pg.Rel {
	out := make([]pg.Rel, len(ts))
	for i, t := range ts {
		out[i] = t.Rel
	}
	return out
}

// unloggedUnset is the refusal while unlogged tables exist and
// unlogged_tables is unset.
func unloggedUnset(tables []pg.Rel) string {
	return fmt.Sprintf("blue has unlogged tables, which replication never carries: %s; set unlogged_tables in the configuration: copy (copy-unlogged copies their rows right before the cutover; rows written to them on blue after that are lost) or skip (green's stay as they are, empty after the schema copy or a clone)",
		relNames(tables, 10))
}

func planCopyUnlogged(ctx context.Context, e *Env) ([]Action, error) {
	op, err := unloggedOp(ctx, e)
	if err != nil {
		return nil, err
	}
	schemas := strings.Join(e.Config.Schemas, ", ")
	out := stmts(pg.UnloggedTablesQuery("blue", e.Config.Schemas))
	switch {
	case !op.TablesUnknown && len(op.Tables) == 0:
		return append(out, note(BlueGreen, "no unlogged table in %s: nothing to copy", schemas)), nil
	case e.Config.UnloggedTables == config.UnloggedSkip:
		return append(out, note(BlueGreen, "unlogged_tables: skip: nothing is copied; green's unlogged tables stay as they are")), nil
	case e.Config.UnloggedTables == config.DefaultUnloggedTables:
		out = append(out, note(BlueGreen, "refused while blue has unlogged tables and unlogged_tables is unset (copy or skip)"))
	}
	out = append(out, note(BlueGreen, "refused while green lacks one of the tables or columns; green's copies are emptied and filled in one transaction, writing as the apply worker does (no triggers, no foreign-key checks)"))
	return append(out, stmts(op.Statements()...)...), nil
}

// checkUnlogged is done when there is nothing to copy, when
// unlogged_tables says skip, or when this step copied them (with copy):
// they are a snapshot, copied once, and again only when asked (--again).
func checkUnlogged(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBlue(); err != nil {
		return CheckResult{}, err
	}
	op, err := unloggedOp(ctx, e)
	if err != nil {
		return CheckResult{}, err
	}
	if len(op.Tables) == 0 {
		return CheckResult{Done: true, Detail: "no unlogged table in " + strings.Join(e.Config.Schemas, ", ")}, nil
	}
	tables := unloggedRels(op.Tables)
	switch e.Config.UnloggedTables {
	case config.UnloggedSkip:
		return CheckResult{Done: true, Detail: fmt.Sprintf("unlogged_tables: skip: %s not copied; green's stay as they are", relNames(tables, 10))}, nil
	case config.DefaultUnloggedTables:
		return CheckResult{Detail: "unlogged_tables is unset: " + relNames(tables, 10) + " neither copied nor skipped"}, nil
	}
	v, ok := e.ownValue(UnloggedCopiedKey)
	if !ok {
		return CheckResult{Detail: "not copied yet: " + relNames(tables, 10)}, nil
	}
	if run := e.runningSince(); !run.IsZero() {
		if at, err := time.Parse(time.RFC3339Nano, v); err != nil || at.Before(run) {
			return CheckResult{Detail: fmt.Sprintf("copied at %s; asked again since", v)}, nil
		}
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("%s copied at %s; rows written on blue since are not on green", relNames(tables, 10), v)}, nil
}

// runCopyUnlogged copies blue's unlogged tables to green when
// unlogged_tables says copy.
func runCopyUnlogged(ctx context.Context, e *Env) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	op, err := unloggedOp(ctx, e)
	if err != nil {
		return err
	}
	tables := unloggedRels(op.Tables)
	switch {
	case len(op.Tables) == 0:
		e.Logf("no unlogged table in %s: nothing to copy", strings.Join(e.Config.Schemas, ", "))
		return nil
	case e.Config.UnloggedTables == config.UnloggedSkip:
		e.Logf("unlogged_tables: skip: %s not copied; green's stay as they are", relNames(tables, 10))
		return nil
	case e.Config.UnloggedTables == config.DefaultUnloggedTables:
		return e.refuse("%s", unloggedUnset(tables))
	}
	qctx, cancel := e.bounded(ctx)
	missing, err := pg.MissingOnGreen(qctx, e.Green, op.Tables)
	cancel()
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return e.refuse("green lacks %s: the copy would fail part way; make green's schema match blue's (compare-schema names the differences)", strings.Join(missing, ", "))
	}
	start := time.Now().UTC()
	var rows int64
	e.Logf("copying %s from blue to green in one snapshot: %s", plural(len(op.Tables), "unlogged table"), relNames(tables, 10))
	err = op.Exec(ctx, e.Blue, e.Green, func(c pg.UnloggedCopied) {
		rows += c.Rows
		e.Logf("copied %d/%d %s: %s (%s) in %s", c.Done, c.Of, c.Rel, plural(int(c.Rows), "row"), pg.Bytes(c.Streamed), c.Took.Round(time.Millisecond))
	})
	if err != nil {
		return err
	}
	e.Logf("copied %s (%s) in %s; rows written to them on blue from now on are not on green", plural(len(op.Tables), "unlogged table"), plural(int(rows), "row"), time.Since(start).Round(time.Millisecond))
	return e.Record(UnloggedCopiedKey, start.Format(time.RFC3339Nano))
}

// unloggedAdvice is preflight's word on blue's unlogged tables of the
// schemas (the tables it read with persistence "u"): fail while there are
// some and unlogged_tables is unset, naming them and the choice; else what
// copy-unlogged will do with them ("" when there are none).
func unloggedAdvice(c *config.Config, unlogged []pg.Rel) (fail bool, line string) {
	if len(unlogged) == 0 {
		return false, ""
	}
	switch c.UnloggedTables {
	case config.UnloggedCopy:
		return false, fmt.Sprintf("unlogged tables are not replicated: %s; copy-unlogged copies their rows right before the cutover (unlogged_tables: copy): rows written to them on blue after that are lost", relNames(unlogged, 10))
	case config.UnloggedSkip:
		return false, fmt.Sprintf("unlogged tables are not replicated: %s; unlogged_tables: skip: green's stay as they are (empty after the schema copy or a clone)", relNames(unlogged, 10))
	}
	return true, unloggedUnset(unlogged)
}
