package cutover

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// TestCutoverTwoDatabasesUnderLoad: blue's app and billing, each with its
// own feeds, move in one cutover through both PgBouncers while the lab's
// load writes to both, then back (rollback), then over again. Each time:
// no client error, nothing lost or duplicated in either database, the
// application logs in to both through every PgBouncer. After a cutover
// app cannot connect to blue's app or billing, yet still to archive, a
// database that stays on blue; the rollback gives blue's databases back
// exactly the CONNECT grants the fence took, and the second cutover gives
// green back what the rollback's fence took there.
func TestCutoverTwoDatabasesUnderLoad(t *testing.T) {
	l := newLab(t)
	appSub := l.replicate(t)
	billing := l.replicateDB(t, lab.BillingDB)
	l.stayingDB(t, "archive")
	mustExec(t, l.green, "ALTER ROLE "+pg.Ident(lab.AppRole)+" NOLOGIN") // as block-green-logins leaves it
	p := l.params(MethodPgBouncer, appSub)
	p.Databases[0].Reverse = DefaultReverseName
	p.Databases = append(p.Databases, billing.database())
	// As configured by default on a self-managed server: the source's
	// commits wait for both databases' feeds before the pause.
	p.HoldCommits = config.DefaultHoldCommits
	dbs := []string{lab.AppDB, lab.BillingDB}
	ctx := context.Background()
	blueACL := map[string][]string{}
	for _, db := range dbs {
		blueACL[db] = connectACL(t, l.blue, db)
	}

	run := func(name string, rollback bool) *Report {
		t.Helper()
		var rep *Report
		res := labtest.LoadAround(t, l.info.Dir, labtest.LoadParams{Rate: 200, Clients: 4, Lead: 2 * time.Second, Tail: 2 * time.Second, Databases: dbs}, func() {
			var err error
			if rollback {
				rep, err = Rollback(ctx, p)
			} else {
				rep, err = Cutover(ctx, p)
			}
			if err != nil {
				logSubSteps(t, rep)
				t.Fatalf("%s: %v", name, err)
			}
		})
		logSubSteps(t, rep)
		if res.Errors != 0 || res.Databases[lab.AppDB] == 0 || res.Databases[lab.BillingDB] == 0 {
			t.Errorf("%s: clients saw %d errors (%s); commits %v", name, res.Errors, res.LastError, res.Databases)
		}
		if len(rep.Databases) != 2 || rep.PausedMs <= 0 {
			t.Fatalf("%s: report has %d databases, paused %.1f ms", name, len(rep.Databases), rep.PausedMs)
		}
		// The feeds now in use carry the last writes to the side left
		// behind: wait for both before comparing the sides.
		for _, db := range p.Databases {
			if rollback {
				waitSlotDrained(t, l, l.blue, db.Subscriptions[0])
			} else {
				waitSlotDrained(t, l, l.green, db.Reverse)
			}
		}
		v, err := lab.Verify(ctx, l.info.Dir)
		if err != nil {
			t.Fatalf("%s: lab verify: %v", name, err)
		}
		for _, d := range rep.Databases {
			k := slices.IndexFunc(v.Databases, func(x lab.DatabaseVerify) bool { return x.Database == d.Name })
			if k < 0 {
				t.Fatalf("%s: lab verify has no %s: %+v", name, d.Name, v)
			}
			x := v.Databases[k]
			t.Logf("FIGURES %s %s: paused %.1f ms; drain %.1f ms, lag at pause %d bytes; %d sequences; %d writes, %d lost, %d duplicated, %d tables compared",
				name, d.Name, rep.PausedMs, d.DrainMs, d.LagAtPause, d.Sequences, res.Databases[d.Name], x.Lost, x.Duplicated, x.TablesCompared)
			if x.Lost != 0 || x.Duplicated != 0 || len(x.MismatchedTables) != 0 || x.LedgerEntries == 0 || d.DrainMs <= 0 {
				t.Errorf("%s: %s: %+v (drain %.1f ms)", name, d.Name, x, d.DrainMs)
			}
		}
		if !strings.Contains(rep.Markdown(), "## Databases") {
			t.Errorf("%s: the Markdown report has no part per database", name)
		}
		// The application logs in to every database through every PgBouncer.
		for _, b := range l.info.Bouncers() {
			for _, db := range dbs {
				if err := tryConnect(pg.WithDatabase(b.Conninfo, db), "SELECT count(*) FROM public.ledger"); err != nil {
					t.Errorf("%s: app through PgBouncer %s to %s: %v", name, b.Name, db, err)
				}
			}
		}
		// Where the traffic is, read from every entry and both sides.
		want := map[bool]string{false: "green", true: "blue"}[rollback]
		if tr := ReadTraffic(ctx, p); tr.Target != want || !tr.Settled {
			t.Errorf("%s: traffic %+v, want %s, settled", name, tr, want)
		}
		if st, err := ReadSwitchState(ctx, p, rollback); err != nil || st.State != StateTarget {
			t.Errorf("%s: state %+v %v, want %s", name, st, err, StateTarget)
		}
		p.Fences = rep.Fences
		return rep
	}
	// fenced checks app cannot connect to server's moving databases, and
	// can to the rest.
	fenced := func(name string, server lab.Server, closed bool) {
		t.Helper()
		for _, db := range dbs {
			err := tryConnect(l.appConninfo(server, db), "SELECT 1")
			switch {
			case closed && (err == nil || !strings.Contains(err.Error(), "permission denied for database")):
				t.Errorf("%s: app connects to %s on port %d: %v, want permission denied", name, db, server.Port, err)
			case !closed && err != nil:
				t.Errorf("%s: app cannot connect to %s on port %d: %v", name, db, server.Port, err)
			}
		}
	}

	rep := run("cutover", false)
	if k := slices.IndexFunc(rep.Prechecks, func(c Check) bool { return c.Name == "the fence closes only what moved" }); k < 0 || !strings.Contains(rep.Prechecks[k].Detail, "app keeps logging in to archive") {
		t.Errorf("no precheck says what app keeps on blue: %+v", rep.Prechecks)
	}
	if got := rep.Bouncers[0].Entries; !slices.Equal(got, dbs) {
		t.Errorf("PgBouncer lab's entries moved: %v, want %v", got, dbs)
	}
	if want := fmt.Sprintf(":%d/%s", l.info.Green.Port, strings.Join(dbs, ",")); !strings.HasSuffix(rep.FinalTarget, want) {
		t.Errorf("report's final target %q, want it to end in %q (every database that moved)", rep.FinalTarget, want)
	}
	fenced("after the cutover, blue", l.info.Blue, true)
	if err := tryConnect(l.appConninfo(l.info.Blue, "archive"), "SELECT body FROM public.notes"); err != nil {
		t.Errorf("after the cutover, app cannot use archive on blue, which stays: %v", err)
	}
	if _, ok := rep.Fences.Record("blue", lab.BillingDB); !ok {
		t.Errorf("no record of what the fence took on blue's billing: %+v", rep.Fences)
	}
	greenACL := map[string][]string{}
	for _, db := range dbs {
		greenACL[db] = connectACL(t, l.green, db)
	}

	rep = run("rollback", true)
	fenced("after the rollback, green", l.info.Green, true)
	fenced("after the rollback, blue", l.info.Blue, false)
	for _, db := range dbs {
		if got := connectACL(t, l.blue, db); !slices.Equal(got, blueACL[db]) {
			t.Errorf("after the rollback, blue's %s grants CONNECT to %v, before the cutover %v", db, got, blueACL[db])
		}
	}
	for _, db := range dbs {
		rec, ok := rep.Fences.Record("green", db)
		if !ok {
			t.Fatalf("no record of what the rollback's fence took on green's %s: %+v", db, rep.Fences)
		}
		t.Logf("green's %s fenced: %s", db, rec)
	}

	rep = run("cutover again", false)
	fenced("after the second cutover, blue", l.info.Blue, true)
	for _, w := range rep.Warnings {
		if strings.Contains(w, "no record") {
			t.Errorf("the second cutover opened green without the rollback's record: %s", w)
		}
	}
	for _, db := range dbs {
		if got := connectACL(t, l.green, db); !slices.Equal(got, greenACL[db]) {
			t.Errorf("after the second cutover, green's %s grants CONNECT to %v, after the first %v", db, got, greenACL[db])
		}
	}
	if len(rep.Fences["green"]) != 0 || len(rep.Fences["blue"]) != 2 {
		t.Errorf("fences in force after the second cutover: %+v, want blue's two only", rep.Fences)
	}
}

// TestFenceSparesSuperusersAndItsOwnRole: a fence run by a role that is
// not a superuser (the database's owner) closes CONNECT to app, also
// where app has it through a group role and with the grant option, and
// never takes anything from a superuser, an administrator, the
// replication role or the role it runs as, each of which still logs in;
// opening the side gives the ACL back exactly.
func TestFenceSparesSuperusersAndItsOwnRole(t *testing.T) {
	l := newLab(t)
	const db = "fencetest"
	for _, q := range []string{
		"CREATE ROLE pgbg_admin LOGIN PASSWORD 'pw-admin'",
		"CREATE ROLE dba LOGIN SUPERUSER PASSWORD 'pw-dba'",
		"CREATE ROLE ops LOGIN PASSWORD 'pw-ops'",
		"CREATE ROLE writers NOLOGIN",
		"GRANT writers TO " + lab.AppRole,
		"CREATE DATABASE " + db + " OWNER pgbg_admin",
	} {
		mustExec(t, l.blue, q)
	}
	owner := func(user, pw string) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s password=%s sslmode=disable", l.info.Blue.Port, db, user, pw)
	}
	admin := mustPool(t, owner("pgbg_admin", "pw-admin"))
	for _, q := range []string{
		"GRANT CONNECT ON DATABASE " + db + " TO writers",
		"GRANT CONNECT ON DATABASE " + db + " TO " + lab.AppRole + " WITH GRANT OPTION",
		"GRANT CONNECT ON DATABASE " + db + " TO dba",
	} {
		mustExec(t, admin, q)
	}
	before := connectACL(t, l.blue, db)

	p := Params{Method: MethodNologin, Databases: []Database{{Name: db, Blue: admin, Green: admin, Subscriptions: []string{"none"}}},
		BlueEndpoint:    pg.Endpoint{Host: "127.0.0.1", Port: l.info.Blue.Port, DBName: db},
		GreenEndpoint:   pg.Endpoint{Host: "127.0.0.1", Port: l.info.Blue.Port, DBName: db},
		ReplicationRole: lab.ReplicationRole, ReplicationPassword: l.password,
		AppRoles: []string{lab.AppRole}, FenceRoles: []string{lab.AppRole, "dba", "ops", "pgbg_admin", lab.ReplicationRole},
		Administrators: []string{"ops"}, StatementTimeout: 5 * time.Second}
	r := newRun(&p, false, "")
	defer r.finish(new(error))
	ctx := context.Background()
	var err error
	if r.e, err = r.open(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.fence, []string{lab.AppRole}) || len(r.e.spared) != 4 {
		t.Fatalf("fence roles %v, spared %v: want app alone fenced", r.fence, r.e.spared)
	}
	t.Logf("spared: %s", strings.Join(r.e.spared, ", "))
	detail, err := r.fenceSide(ctx, r.e.from, r.d.from)
	if err != nil {
		t.Fatalf("fence: %v", err)
	}
	t.Logf("fence: %s; ACL before %v, fenced %v", detail, before, connectACL(t, l.blue, db))
	if err := tryConnect(l.appConninfo(l.info.Blue, db), "SELECT 1"); err == nil || !strings.Contains(err.Error(), "permission denied for database") {
		t.Errorf("app after the fence: %v, want permission denied", err)
	}
	for _, who := range []struct{ user, pw string }{{"dba", "pw-dba"}, {"ops", "pw-ops"}, {"pgbg_admin", "pw-admin"}, {lab.ReplicationRole, l.password}} {
		if err := tryConnect(owner(who.user, pg.QuoteConninfoValue(who.pw)), "SELECT 1"); err != nil {
			t.Errorf("%s after the fence: %v", who.user, err)
		}
	}
	fenced := connectACL(t, l.blue, db)
	if !slices.Contains(fenced, "dba") || slices.Contains(fenced, "PUBLIC") || slices.Contains(fenced, "writers") || slices.Contains(fenced, lab.AppRole+"*") {
		t.Errorf("the fenced ACL: %v", fenced)
	}
	if _, err := r.openSide(ctx, r.e.from, r.e.to, r.d.from); err != nil {
		t.Fatalf("open: %v", err)
	}
	if after := connectACL(t, l.blue, db); !slices.Equal(after, before) {
		t.Errorf("after the open the ACL grants CONNECT to %v, before the fence %v", after, before)
	}
	if err := tryConnect(l.appConninfo(l.info.Blue, db), "SELECT 1"); err != nil {
		t.Errorf("app after the open: %v", err)
	}
	if len(r.p.Prior.Fences) != 0 {
		t.Errorf("fences in force after the open: %+v", r.p.Prior.Fences)
	}
}
