package steps

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Provision green for the copy strategy, before its schema: roles are the
// cluster's and green starts without blue's (copy-roles), and every
// database that moves is made there as blue has it (create-databases).

func copyRoles() *Step {
	return &Step{ID: "copy-roles", Phase: PhaseProvision, Target: BlueGreen, Title: "Copy roles to green",
		Why: "Roles are the cluster's, not a database's: the schema's owners and grants need them, and after the cutover the application logs in to green " +
			"with the password it has today. Blue's roles, their attributes, settings and memberships are made on green, with their stored passwords where blue lets them be read.",
		Source: "issue 23",
		// Roles change after it ran (a password set again on green): the
		// servers say whether its work still holds, and it runs again if not.
		Recheck: true,
		Plan:    planCopyRoles,
		Check:   checkCopyRoles,
		Run:     runCopyRoles,
	}
}

func createDatabases() *Step {
	return &Step{ID: "create-databases", Phase: PhaseProvision, Target: Green, Title: "Create the databases on green", Recheck: true,
		Why:    "Each database that moves is made on green with blue's owner, encoding, locale, settings and privileges; its schema follows (copy-schema).",
		Source: "issue 23",
		Plan:   planCreateDatabases,
		Check:  checkCreateDatabases,
		Run:    runCreateDatabases,
	}
}

// rolesOp is copy-roles' operation as it would run now: blue's roles
// read, green's listed, and the role pgbluegreen connects to green as left
// alone (it never changes itself).
func rolesOp(ctx context.Context, e *Env) (pg.CopyRolesParams, pg.BlueRoles, error) {
	op := pg.CopyRolesParams{On: "green"}
	if e.Blue == nil || e.Green == nil {
		return op, pg.BlueRoles{}, nil
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	blue, err := pg.ReadRoles(ctx, e.Blue)
	if err != nil {
		return op, blue, err
	}
	if op.Existing, err = pg.RoleNames(ctx, e.Green); err != nil {
		return op, blue, err
	}
	me, err := pg.CurrentUser(ctx, e.Green)
	if err != nil {
		return op, blue, err
	}
	op.Roles, op.Skip, op.Closed = blue.Roles, []string{me}, e.Config.AppRoles
	return op, blue, nil
}

func planCopyRoles(ctx context.Context, e *Env) ([]Action, error) {
	if e.IsOffline() {
		return []Action{
			note(Blue, "every role of blue but the server's and the provider's: its attributes, its settings, its memberships, and its stored password where blue lets it be read (pg_authid: a superuser); never the role pgbluegreen connects to green as"),
			note(Green, "CREATE ROLE each missing (the application roles NOLOGIN: green takes no writes before the cutover), ALTER ROLE each there, its LOGIN left as it is; in one transaction with statement logging off: a stored password passes only as a parameter, shown as ********"),
		}, nil
	}
	op, blue, err := rolesOp(ctx, e)
	if err != nil {
		return nil, err
	}
	out := stmts(op.Statements()...)
	if !blue.VerifiersRead {
		out = append([]Action{note(Blue, "blue's stored passwords cannot be read here (not a superuser: RDS, Cloud SQL): the roles are made without them, and the lines to give each login role its password are listed")}, out...)
	}
	return out, nil
}

// checkCopyRoles is done when every role of blue exists on green and,
// where both servers let them be read, has the same stored password.
func checkCopyRoles(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBoth(); err != nil {
		return CheckResult{}, err
	}
	op, blue, err := rolesOp(ctx, e)
	if err != nil {
		return CheckResult{}, err
	}
	var missing []string
	for _, r := range op.Roles {
		if !slices.Contains(op.Existing, r.Name) {
			missing = append(missing, r.Name)
		}
	}
	if len(missing) > 0 {
		return CheckResult{Detail: fmt.Sprintf("%d of blue's %d roles missing on green: %s", len(missing), len(op.Roles), strings.Join(missing, ", "))}, nil
	}
	if !blue.VerifiersRead {
		return CheckResult{Done: true, Detail: fmt.Sprintf("blue's %d roles exist on green (their passwords cannot be read here: the cutover's precheck logs in as the application)", len(op.Roles))}, nil
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	names := make([]string, len(op.Roles))
	for i, r := range op.Roles {
		names[i] = r.Name
	}
	green, err := pg.RoleVerifiers(ctx, e.Green, names)
	if err != nil {
		return CheckResult{}, err
	}
	var differ []string
	for _, r := range op.Roles {
		if !slices.Contains(op.Skip, r.Name) && green[r.Name] != r.Verifier {
			differ = append(differ, r.Name)
		}
	}
	if len(differ) > 0 {
		return CheckResult{Detail: fmt.Sprintf("blue's roles exist on green, but %d have another password there: %s", len(differ), strings.Join(differ, ", "))}, nil
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("blue's %d roles exist on green with the same stored passwords", len(op.Roles))}, nil
}

func runCopyRoles(ctx context.Context, e *Env) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	op, blue, err := rolesOp(ctx, e)
	if err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	if err := op.Exec(ctx, e.Green); err != nil {
		return err
	}
	e.Logf("%d roles of blue made on green (%d created, the others altered to match)", len(op.Roles), countMissing(op))
	if !blue.VerifiersRead {
		var lines []string
		for _, r := range op.Roles {
			if r.Login && !slices.Contains(op.Skip, r.Name) {
				lines = append(lines, "ALTER ROLE "+pg.Ident(r.Name)+" PASSWORD '...'")
			}
		}
		e.Warnf("blue's stored passwords cannot be read here (RDS, Cloud SQL): on green, give each login role the password it has on blue, as the application and PgBouncer use it: %s; the cutover refuses until each logs in to green", strings.Join(lines, "; "))
	}
	return nil
}

func countMissing(op pg.CopyRolesParams) int {
	n := 0
	for _, r := range op.Roles {
		if !slices.Contains(op.Existing, r.Name) && !slices.Contains(op.Skip, r.Name) {
			n++
		}
	}
	return n
}

// databasesOp is create-databases' operation: each moving database's
// definition on blue, whether green has it, and, where it has, whether
// its settings are blue's.
type databasesOp struct {
	defs    []pg.DatabaseDef
	missing map[string]bool
	differ  map[string]bool
}

func createDatabasesOp(ctx context.Context, e *Env) (databasesOp, error) {
	op := databasesOp{missing: map[string]bool{}, differ: map[string]bool{}}
	dbs, err := e.Databases(ctx)
	if err != nil || e.Blue == nil || e.Green == nil {
		return op, err
	}
	names := make([]string, len(dbs))
	for i, d := range dbs {
		names[i] = d.Name
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	if op.defs, err = pg.ReadDatabaseDefs(ctx, e.Blue, names); err != nil {
		return op, err
	}
	green, err := pg.ReadDatabaseDefs(ctx, e.Green, names)
	if err != nil {
		return op, err
	}
	for _, d := range op.defs {
		k := slices.IndexFunc(green, func(g pg.DatabaseDef) bool { return g.Name == d.Name })
		op.missing[d.Name] = k < 0
		op.differ[d.Name] = k >= 0 && !d.SameSettings(green[k])
	}
	return op, nil
}

// statements are what runCreateDatabases runs: each missing database
// created, then given blue's settings and privileges; one that is there
// given blue's settings where they differ.
func (op databasesOp) statements() []pg.Stmt {
	var out []pg.Stmt
	for _, d := range op.defs {
		switch {
		case op.missing[d.Name]:
			out = append(out, pg.CreateDatabaseStmt("green", d))
			out = append(out, pg.DatabaseSettingsStmts("green", d, true)...)
		case op.differ[d.Name]:
			out = append(out, pg.DatabaseSettingsStmts("green", d, false)...)
		}
	}
	return out
}

func planCreateDatabases(ctx context.Context, e *Env) ([]Action, error) {
	if e.IsOffline() {
		return []Action{note(Green, "each database that moves and is not on green yet: CREATE DATABASE with blue's owner, encoding and locale, from template0; then its settings, its roles' settings in it, and its privileges as blue has them")}, nil
	}
	op, err := createDatabasesOp(ctx, e)
	if err != nil {
		return nil, err
	}
	return stmts(op.statements()...), nil
}

func checkCreateDatabases(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBoth(); err != nil {
		return CheckResult{}, err
	}
	op, err := createDatabasesOp(ctx, e)
	if err != nil {
		return CheckResult{}, err
	}
	var missing, differ, there []string
	for _, d := range op.defs {
		switch {
		case op.missing[d.Name]:
			missing = append(missing, d.Name)
		case op.differ[d.Name]:
			differ = append(differ, d.Name)
		default:
			there = append(there, d.Name)
		}
	}
	if len(missing)+len(differ) > 0 {
		return CheckResult{Detail: fmt.Sprintf("missing on green: %s; settings not blue's: %s", orNoneList(missing), orNoneList(differ))}, nil
	}
	return CheckResult{Done: true, Detail: "on green with blue's settings: " + strings.Join(there, ", ")}, nil
}

func runCreateDatabases(ctx context.Context, e *Env) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	op, err := createDatabasesOp(ctx, e)
	if err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	for _, s := range op.statements() {
		if err := s.Exec(ctx, e.Green); err != nil {
			return fmt.Errorf("%s: %w", s.String(), err)
		}
	}
	for _, d := range op.defs {
		switch {
		case op.missing[d.Name]:
			e.Logf("database %s made on green (owner %s, %s, %s; %d settings, privileges as blue's)", d.Name, d.Owner, d.Encoding, d.Collate, len(d.Settings))
		case op.differ[d.Name]:
			e.Logf("database %s on green given blue's settings (%d)", d.Name, len(d.Settings))
		}
	}
	return nil
}

func orNoneList(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
