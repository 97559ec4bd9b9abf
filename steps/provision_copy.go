package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Provision green for the copy strategy: copy-schema.

func copySchema() *Step {
	return &Step{ID: "copy-schema", PerDatabase: true, Phase: PhaseProvision, Target: BlueGreen, Title: "Copy the schema to green",
		Why:    "With the copy strategy green starts empty: the schema is copied, the data comes with the subscription's initial sync.",
		Source: "-",
		Plan:   planCopySchema,
		Check:  checkCopySchema,
		Run:    runCopySchema,
	}
}

// schemaCopyTimeout bounds pg_dump and the restore: a schema of thousands
// of objects takes seconds, not the statement timeout's budget.
const schemaCopyTimeout = 10 * time.Minute

// schemaOnGreen compares blue's tables of the configured schemas with
// green's: all of them, some (a refusal: green must start without them)
// or none.
func schemaOnGreen(ctx context.Context, e *Env) (blueN int, missing []pg.Rel, err error) {
	blue, err := pg.PublishableTables(ctx, e.Blue, e.Config.Schemas)
	if err != nil {
		return 0, nil, err
	}
	green, err := pg.PublishableTables(ctx, e.Green, e.Config.Schemas)
	if err != nil {
		return 0, nil, err
	}
	have := map[pg.Rel]bool{}
	for _, t := range green {
		have[t] = true
	}
	for _, t := range blue {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	return len(blue), missing, nil
}

// checkCopySchema is done when every table of blue's configured schemas
// exists on green.
func checkCopySchema(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBoth(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	n, missing, err := schemaOnGreen(ctx, e)
	switch {
	case pg.IsMissingDatabase(err):
		return CheckResult{Detail: "green has no database " + e.database() + " yet (create-databases makes it)"}, nil
	case err != nil:
		return CheckResult{}, err
	case len(missing) == 0:
		return CheckResult{Done: true, Detail: fmt.Sprintf("all %d tables of %s exist on green", n, strings.Join(e.Config.Schemas, ", "))}, nil
	case len(missing) < n:
		return CheckResult{Detail: fmt.Sprintf("green has %d of blue's %d tables; missing: %s", n-len(missing), n, relList(missing))}, nil
	default:
		return CheckResult{Detail: "green has none of blue's tables"}, nil
	}
}

func runCopySchema(ctx context.Context, e *Env) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, schemaCopyTimeout)
	defer cancel()
	// Half-copied is impossible (one transaction), but green may hold
	// some of the tables from elsewhere: applying the dump would fail on
	// them, so say so instead.
	if n, missing, err := schemaOnGreen(ctx, e); pg.IsMissingDatabase(err) {
		return e.refuse("green has no database %s: run create-databases first", e.database())
	} else if err != nil {
		return err
	} else if len(missing) == 0 && n > 0 {
		e.Logf("all %d tables of %s exist on green already: nothing to copy", n, strings.Join(e.Config.Schemas, ", "))
		return nil
	} else if len(missing) > 0 && len(missing) < n {
		return e.refuse("green already has %d of blue's %d tables (missing: %s); green must start without them: drop them on green (or copy the rest by hand), then run again",
			n-len(missing), n, relList(missing))
	}
	op, err := schemaCopyOp(ctx, e)
	if err != nil {
		return err
	}
	c, err := op.dump.Command()
	if err != nil {
		return err
	}
	e.Logf("%s", c.Display())
	op.apply.Script, err = pg.DumpSchema(ctx, op.dump)
	if err != nil {
		return fmt.Errorf("dump blue's schema: %w", err)
	}
	roles := pg.DumpRoles(op.apply.Script)
	missing, err := pg.MissingRoles(ctx, e.Green, roles)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		create := pg.NoLoginRolesAdvice(missing)
		return e.refuse("roles owning or granted objects on blue are missing on green (roles are cluster-wide; the dump cannot make them): %s; on green run: %s; then run again",
			strings.Join(missing, ", "), strings.Join(create, "; "))
	}
	e.Logf("applying %d bytes of schema to green in one transaction (roles referenced: %s)", len(op.apply.Script), strings.Join(roles, ", "))
	if err := op.apply.Exec(ctx, e.Green); err != nil {
		return fmt.Errorf("apply blue's schema to green (rolled back, green unchanged): %w", err)
	}
	return nil
}

// schemaCopy is copy-schema's operation: pg_dump of blue's schemas and
// extensions, then the dump applied to green in one transaction.
type schemaCopy struct {
	dump  pg.DumpParams
	apply pg.SchemaApplyParams
}

// schemaCopyOp builds it: live, with the pg_dump it would run and blue's
// extensions; offline, placeholders for both.
func schemaCopyOp(ctx context.Context, e *Env) (schemaCopy, error) {
	op := schemaCopy{
		dump: pg.DumpParams{PgDump: pg.Placeholder("pg_dump of clone.green_bindir, else the newest on PATH or in /usr/lib/postgresql/*/bin"),
			Conninfo: e.Config.Blue.Conninfo, Schemas: e.Config.Schemas, Extensions: []string{pg.Placeholder("--extension=NAME for each extension on blue")}},
		apply: pg.SchemaApplyParams{On: "green"},
	}
	if e.Blue == nil {
		return op, nil
	}
	var err error
	if op.dump.PgDump, err = pg.FindPgDump(e.Config.Clone.GreenBindir); err != nil {
		return op, err
	}
	exts, err := pg.ListExtensions(ctx, e.Blue)
	if err != nil {
		return op, err
	}
	op.dump.Extensions = make([]string, 0, len(exts))
	for n := range exts {
		op.dump.Extensions = append(op.dump.Extensions, n)
	}
	sort.Strings(op.dump.Extensions)
	return op, nil
}

func planCopySchema(ctx context.Context, e *Env) ([]Action, error) {
	op, err := schemaCopyOp(ctx, e)
	if err != nil {
		return nil, err
	}
	c, err := op.dump.Command()
	if err != nil {
		return nil, err
	}
	out := []Action{note(BlueGreen, "refused when green holds some of blue's tables already; nothing to do when it holds them all")}
	out = append(out, commands(c)...)
	out = append(out, stmts(pg.MissingRolesQuery("green", pg.Later("the roles the dump names in OWNER TO, GRANT and REVOKE")))...)
	out = append(out, note(Green, "any role missing on green: refused with the CREATE ROLE lines to run"))
	return append(out, stmts(op.apply.Statements()...)...), nil
}
