package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// Preflight's checks of the cluster's databases: every database of blue
// moves, stays with its reason, or is the server's or the provider's own;
// one with rows or sessions that does none of these is a blocker, named
// with its size and sessions. Each database that moves besides
// blue.conninfo's gets that database's checks (schemas, publications,
// tables, sequences, extensions).

// databases lists blue's databases and what becomes of each.
func (r *preflightReport) databases(ctx context.Context) {
	e := r.e
	all, err := monitor.ReadBlueDatabases(ctx, e.Config, e.Blue, pg.PoolOn)
	if err != nil {
		r.fail("reading blue's databases: %v", err)
		return
	}
	moving := map[string]bool{}
	for _, n := range r.dbs {
		moving[n] = true
	}
	var own []string
	for _, d := range all {
		what := fmt.Sprintf("%s, %d tables, %d with rows, %s", pg.Bytes(d.SizeBytes), d.Content.Tables, d.Content.TablesWithRows, plural(d.Sessions, "session"))
		switch {
		case moving[d.Name]:
			r.pass("database %s moves (%s)", d.Name, what)
		case strings.HasPrefix(d.Reason, "stays: "):
			r.pass("database %s stays on blue, as the configuration says: %s (%s); the cutover leaves it and every role's login to it as they are", d.Name, strings.TrimPrefix(d.Reason, "stays: "), what)
		case d.Reason != "":
			own = append(own, d.Name+" ("+d.Reason+")")
		case d.Content.TablesWithRows > 0 || d.Sessions > 0:
			r.fail("database %s (%s) does not move and is not listed to stay: add it to databases, or to stay with the reason it stays on blue", d.Name, what)
		default:
			r.pass("database %s has no table with rows and no session: nothing to move", d.Name)
		}
	}
	if len(own) > 0 {
		r.pass("not the application's: %s", strings.Join(own, ", "))
	}
	r.stayingRoles(ctx, all)
}

// stayingRoles says which of the roles the fence closes still log in to a
// database that stays on blue: the fence closes CONNECT on the databases
// that move only, so they keep working there.
func (r *preflightReport) stayingRoles(ctx context.Context, all []monitor.BlueDatabase) {
	var staying []string
	for _, d := range all {
		if strings.HasPrefix(d.Reason, "stays: ") {
			staying = append(staying, d.Name)
		}
	}
	if len(staying) == 0 {
		return
	}
	roles, err := pg.WriterRoles(ctx, r.e.Blue, r.e.Config.AppRoles, r.e.Config.Replication.Role)
	if err != nil {
		r.fail("%v", err)
		return
	}
	keep, err := pg.ConnectPrivileges(ctx, r.e.Blue, roles, staying)
	if err != nil {
		r.fail("%v", err)
		return
	}
	for _, role := range roles {
		if dbs := keep[role]; len(dbs) > 0 {
			r.pass("role %s keeps logging in to %s on blue after the cutover: the fence closes CONNECT on the databases that move, never the role's LOGIN", role, strings.Join(dbs, ", "))
		}
	}
}

// otherDatabases runs each database's own checks in every database that
// moves besides blue.conninfo's (checked with the cluster).
func (r *preflightReport) otherDatabases(ctx context.Context) {
	dbs, err := r.e.Databases(ctx)
	if err != nil {
		r.fail("%v", err)
		return
	}
	for _, d := range dbs {
		if d.Name == r.e.Config.PrimaryDatabase() {
			continue
		}
		de, err := r.e.forDatabase(d).withSchemas(ctx)
		rd := &preflightReport{e: de, db: d.Name, dbs: r.dbs}
		if err != nil {
			rd.fail("%v", err)
		} else {
			rd.database(ctx)
		}
		r.checks += rd.checks
		r.fails = append(r.fails, rd.fails...)
	}
}

// database is one database's checks.
func (r *preflightReport) database(ctx context.Context) {
	e := r.e
	p := preflightParams(e.Config)
	b, err := pg.ReadBlue(ctx, e.Blue, p)
	if err != nil {
		r.fail("reading blue's %s: %v", r.db, err)
		return
	}
	var g *pg.GreenFacts
	if e.Green != nil {
		blueCollations := collationNames(b.Collations)
		gf, err := pg.ReadGreen(ctx, e.Green, p, blueCollations)
		switch {
		case err == nil:
			g = &gf
		case pg.IsMissingDatabase(err) && e.Config.CopyData():
			r.pass("green has no database %s yet: create-databases makes it", r.db)
		default:
			r.warn("green's database %s cannot be read (%v): its checks are skipped", r.db, err)
		}
	}
	r.schemas(ctx, b)
	r.publications(b)
	r.tables(b, g)
	r.sequences(b)
	r.extensions(b, g)
}
