package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Provision and prepare green: copy-schema (copy strategy),
// upgrade-extensions, block-green-logins, compare-schema.

func init() {
	implementations["copy-schema"] = func(s *Step) {
		s.Check = checkCopySchema
		s.Run = runCopySchema
	}
	implementations["upgrade-extensions"] = func(s *Step) {
		s.Check = checkExtensions
		s.Run = runUpgradeExtensions
	}
	implementations["block-green-logins"] = func(s *Step) {
		s.Check = checkGreenLogins
		s.Run = runBlockGreenLogins
	}
	implementations["compare-schema"] = func(s *Step) {
		// Never found done: the comparison is the step, and DDL on blue can
		// change the answer at any time.
		s.Check = alwaysRuns("compared; the comparison runs every time")
		s.Run = runCompareSchema
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
	if n, missing, err := schemaOnGreen(ctx, e); err != nil {
		return err
	} else if len(missing) == 0 && n > 0 {
		e.Logf("all %d tables of %s exist on green already: nothing to copy", n, strings.Join(e.Config.Schemas, ", "))
		return nil
	} else if len(missing) > 0 && len(missing) < n {
		return e.refuse("green already has %d of blue's %d tables (missing: %s); green must start without them: drop them on green (or copy the rest by hand), then run again",
			n-len(missing), n, relList(missing))
	}
	pgDump, err := pg.FindPgDump(e.Config.Clone.GreenBindir)
	if err != nil {
		return err
	}
	exts, err := pg.ListExtensions(ctx, e.Blue)
	if err != nil {
		return err
	}
	var extNames []string
	for n := range exts {
		extNames = append(extNames, n)
	}
	sort.Strings(extNames)
	e.Logf("%s --schema-only --no-publications --no-subscriptions %s %s (password in PGPASSWORD)", pgDump,
		strings.Join(schemaFlags(e.Config.Schemas), " "), extensionFlags(extNames))
	script, err := pg.DumpSchema(ctx, pg.DumpParams{PgDump: pgDump, Conninfo: e.Config.Blue.Conninfo, Schemas: e.Config.Schemas, Extensions: extNames})
	if err != nil {
		return fmt.Errorf("dump blue's schema: %w", err)
	}
	roles := pg.DumpRoles(script)
	missing, err := pg.MissingRoles(ctx, e.Green, roles)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		var create []string
		for _, r := range missing {
			create = append(create, "CREATE ROLE "+ident(r)+" NOLOGIN")
		}
		return e.refuse("roles owning or granted objects on blue are missing on green (roles are cluster-wide; the dump cannot make them): %s; on green run: %s; then run again",
			strings.Join(missing, ", "), strings.Join(create, "; "))
	}
	e.Logf("applying %d bytes of schema to green in one transaction (roles referenced: %s)", len(script), strings.Join(roles, ", "))
	if err := pg.ApplyScript(ctx, e.Green, script); err != nil {
		return fmt.Errorf("apply blue's schema to green (rolled back, green unchanged): %w", err)
	}
	return nil
}

func extensionFlags(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "--extension=" + ident(n)
	}
	return strings.Join(out, " ")
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
