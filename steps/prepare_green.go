package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Prepare green, every strategy: upgrade-extensions, block-green-logins,
// compare-schema.

func upgradeExtensions() *Step {
	return &Step{ID: "upgrade-extensions", PerDatabase: true, Phase: PhasePrepareGreen, Target: Green, Title: "Upgrade extensions on green",
		Why:    "Extensions keep their old versions through an upgrade; bring each to the newest green offers.",
		Source: "000", Records: []string{"extensions_upgraded"},
		Plan:  planUpgradeExtensions,
		Check: checkExtensions,
		Run:   runUpgradeExtensions,
	}
}

func blockGreenLogins() *Step {
	return &Step{ID: "block-green-logins", Phase: PhasePrepareGreen, Target: Green, Title: "Block application logins on green",
		Why:    "Nothing may write to green before the cutover: a write there is split brain.",
		Source: "001 §5",
		Plan:   planBlockGreenLogins,
		Check:  checkGreenLogins,
		Run:    runBlockGreenLogins,
	}
}

func compareSchema() *Step {
	return &Step{ID: "compare-schema", PerDatabase: true, Phase: PhasePrepareGreen, Target: BlueGreen, Title: "Compare schemas",
		Why:    "Logical replication does not carry DDL: any difference in tables, columns, indexes or constraints breaks apply or the cutover.",
		Source: "001 §7",
		Plan: func(_ context.Context, e *Env) ([]Action, error) {
			out := stmts(pg.SchemaObjectQueries("blue", e.Config.Schemas)...)
			out = append(out, stmts(pg.SchemaObjectQueries("green", e.Config.Schemas)...)...)
			return append(out, note(BlueGreen, "reads only: the lines of both sides compared, any difference fails the step with the list")), nil
		},
		// Never found done: the comparison is the step, and DDL on blue can
		// change the answer at any time.
		Check: alwaysRuns("compared; the comparison runs every time"),
		Run:   runCompareSchema,
	}
}

func checkExtensions(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needGreen(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	old, err := pg.OutdatedExtensions(ctx, e.Green)
	if err != nil {
		return CheckResult{}, err
	}
	if len(old) > 0 {
		return CheckResult{Detail: "below green's default version: " + describeUpdates(old)}, nil
	}
	if _, ok := e.Value("extensions_upgraded"); !ok {
		if err := e.Record("extensions_upgraded", "none"); err != nil {
			return CheckResult{}, err
		}
	}
	return CheckResult{Done: true, Detail: "every extension on green is at its default version; upgraded: " + e.V("extensions_upgraded")}, nil
}

func describeUpdates(us []pg.ExtensionUpdate) string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.Name + " " + u.From + " -> " + u.To
	}
	return strings.Join(out, ", ")
}

// extensionUpdatesOp is what upgrade-extensions does now: each extension
// on green below its default version, read live (offline, a placeholder).
func extensionUpdatesOp(ctx context.Context, e *Env) (pg.ExtensionUpdatesParams, error) {
	op := pg.ExtensionUpdatesParams{On: "green"}
	if e.Green == nil {
		op.Updates = []pg.ExtensionUpdate{{Name: "<each extension below its default version on green>", From: "<its version>", To: "<default_version>"}}
		return op, nil
	}
	var err error
	op.Updates, err = pg.OutdatedExtensions(ctx, e.Green)
	return op, err
}

func planUpgradeExtensions(ctx context.Context, e *Env) ([]Action, error) {
	op, err := extensionUpdatesOp(ctx, e)
	if err != nil {
		return nil, err
	}
	out := stmts(op.Statements()...)
	if len(op.Updates) == 0 {
		out = append(out, note(Green, "every extension on green is at its default version: nothing to change"))
	}
	return append(out, note(Green, "recorded: extensions_upgraded = %s", e.V("extensions_upgraded"))), nil
}

func runUpgradeExtensions(ctx context.Context, e *Env) error {
	if err := e.needGreen(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	op, err := extensionUpdatesOp(ctx, e)
	if err != nil {
		return err
	}
	if err := op.Exec(ctx, e.Green); err != nil {
		return fmt.Errorf("upgrade extensions on green: %w", err)
	}
	value := describeUpdates(op.Updates)
	if prev, ok := e.Value("extensions_upgraded"); ok && prev != "none" {
		value = strings.Trim(prev+", "+value, ", ")
	}
	if value == "" {
		value = "none"
	}
	return e.Record("extensions_upgraded", value)
}

func checkGreenLogins(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needGreen(); err != nil {
		return CheckResult{}, err
	}
	if len(e.Config.AppRoles) == 0 {
		return CheckResult{Done: true, Detail: "no app_roles configured: nothing to block"}, nil
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	l, err := pg.ReadRoleLogins(ctx, e.Green, e.Config.AppRoles)
	if err != nil {
		return CheckResult{}, err
	}
	if len(l.CanLogin)+len(l.Missing) > 0 {
		return CheckResult{Detail: strings.TrimSpace(listIf("can log in on green: ", l.CanLogin) + " " + listIf("missing on green: ", l.Missing))}, nil
	}
	return CheckResult{Done: true, Detail: "application roles cannot log in on green: " + strings.Join(e.Config.AppRoles, ", ")}, nil
}

// noLoginOp is what block-green-logins does now: NOLOGIN for the
// application roles that can log in on green (offline: all of them).
func noLoginOp(ctx context.Context, e *Env) (pg.NoLoginParams, []string, error) {
	op := pg.NoLoginParams{On: "green", Roles: e.Config.AppRoles}
	if e.Green == nil {
		return op, nil, nil
	}
	l, err := pg.ReadRoleLogins(ctx, e.Green, e.Config.AppRoles)
	op.Roles = l.CanLogin
	return op, l.Missing, err
}

func planBlockGreenLogins(ctx context.Context, e *Env) ([]Action, error) {
	if len(e.Config.AppRoles) == 0 {
		return []Action{note(Green, "no app_roles configured: nothing to block")}, nil
	}
	op, missing, err := noLoginOp(ctx, e)
	if err != nil {
		return nil, err
	}
	out := stmts(op.Statements()...)
	if len(missing) > 0 {
		out = append(out, note(Green, "refused: %s do not exist on green", strings.Join(missing, ", ")))
	} else if len(op.Roles) == 0 {
		out = append(out, note(Green, "no application role can log in on green: nothing to change"))
	}
	return out, nil
}

func runBlockGreenLogins(ctx context.Context, e *Env) error {
	if err := e.needGreen(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	op, missing, err := noLoginOp(ctx, e)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("application role(s) %s do not exist on green: create them there (CREATE ROLE ... NOLOGIN) or remove them from app_roles", strings.Join(missing, ", "))
	}
	return op.Exec(ctx, e.Green)
}

func runCompareSchema(ctx context.Context, e *Env) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	blue, err := pg.SchemaObjects(ctx, e.Blue, e.Config.Schemas)
	if err != nil {
		return fmt.Errorf("blue: %w", err)
	}
	green, err := pg.SchemaObjects(ctx, e.Green, e.Config.Schemas)
	if err != nil {
		return fmt.Errorf("green: %w", err)
	}
	onlyBlue, onlyGreen := pg.DiffLines(blue, green)
	if len(onlyBlue)+len(onlyGreen) == 0 {
		e.Logf("schemas %s identical on blue and green: %d objects compared", strings.Join(e.Config.Schemas, ", "), len(blue))
		return nil
	}
	for _, l := range onlyBlue {
		e.Warnf("only on blue:  %s", l)
	}
	for _, l := range onlyGreen {
		e.Warnf("only on green: %s", l)
	}
	first := append(append([]string{}, prefixAll("blue: ", onlyBlue)...), prefixAll("green: ", onlyGreen)...)
	if len(first) > 5 {
		first = append(first[:5], "...")
	}
	return fmt.Errorf("%d difference(s) between blue and green (%s); DDL on blue during the run is the usual cause: apply it to green, then run compare-schema again",
		len(onlyBlue)+len(onlyGreen), strings.Join(first, "; "))
}

func prefixAll(p string, ls []string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = p + l
	}
	return out
}
