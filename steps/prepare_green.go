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
	return &Step{ID: "upgrade-extensions", Phase: PhasePrepareGreen, Target: Green, Title: "Upgrade extensions on green",
		Why:    "Extensions keep their old versions through an upgrade; bring each to the newest green offers.",
		Source: "000", Records: []string{"extensions_upgraded"},
		Plan: offline(func(e *Env) []Action {
			return []Action{
				sql(Green, "SELECT e.extname, e.extversion, a.default_version FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname WHERE e.extversion <> a.default_version"),
				sql(Green, "ALTER EXTENSION <name> UPDATE TO '<default_version>'  -- for each"),
				note(Green, "recorded: extensions_upgraded = %s", e.V("extensions_upgraded")),
			}
		}),
		Check: checkExtensions,
		Run:   runUpgradeExtensions,
	}
}

func blockGreenLogins() *Step {
	return &Step{ID: "block-green-logins", Phase: PhasePrepareGreen, Target: Green, Title: "Block application logins on green",
		Why:    "Nothing may write to green before the cutover: a write there is split brain.",
		Source: "001 §5",
		Plan: offline(func(e *Env) []Action {
			var out []Action
			for _, r := range e.Config.AppRoles {
				out = append(out, sql(Green, "ALTER ROLE %s NOLOGIN", ident(r)))
			}
			if len(out) == 0 {
				out = append(out, note(Green, "no app_roles configured: nothing to block"))
			}
			return out
		}),
		Check: checkGreenLogins,
		Run:   runBlockGreenLogins,
	}
}

func compareSchema() *Step {
	return &Step{ID: "compare-schema", Phase: PhasePrepareGreen, Target: BlueGreen, Title: "Compare schemas",
		Why:    "Logical replication does not carry DDL: any difference in tables, columns, indexes or constraints breaks apply or the cutover.",
		Source: "001 §7",
		Plan: offline(func(e *Env) []Action {
			return []Action{sql(BlueGreen, "-- tables, columns (type, nullability), indexes, views, materialized views, constraints, sequences in schemas %s, compared ordered", strings.Join(e.Config.Schemas, ", "))}
		}),
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

func runUpgradeExtensions(ctx context.Context, e *Env) error {
	if err := e.needGreen(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	old, err := pg.OutdatedExtensions(ctx, e.Green)
	if err != nil {
		return err
	}
	for _, u := range old {
		e.Logf("ALTER EXTENSION %s UPDATE TO '%s'  (from %s)", ident(u.Name), u.To, u.From)
		if err := pg.UpdateExtension(ctx, e.Green, u); err != nil {
			return fmt.Errorf("upgrade extension %s on green: %w", u.Name, err)
		}
	}
	value := describeUpdates(old)
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
	can, missing, err := pg.LoginRoles(ctx, e.Green, e.Config.AppRoles)
	if err != nil {
		return CheckResult{}, err
	}
	if len(can)+len(missing) > 0 {
		return CheckResult{Detail: strings.TrimSpace(listIf("can log in on green: ", can) + " " + listIf("missing on green: ", missing))}, nil
	}
	return CheckResult{Done: true, Detail: "application roles cannot log in on green: " + strings.Join(e.Config.AppRoles, ", ")}, nil
}

func runBlockGreenLogins(ctx context.Context, e *Env) error {
	if err := e.needGreen(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	can, missing, err := pg.LoginRoles(ctx, e.Green, e.Config.AppRoles)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("application role(s) %s do not exist on green: create them there (CREATE ROLE ... NOLOGIN) or remove them from app_roles", strings.Join(missing, ", "))
	}
	for _, r := range can {
		e.Logf("ALTER ROLE %s NOLOGIN", ident(r))
		if err := pg.SetNoLogin(ctx, e.Green, r); err != nil {
			return err
		}
	}
	return nil
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
