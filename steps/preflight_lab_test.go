package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// Issue 12's table, row by row on a real lab: the mistake is made, `run
// --through create-subscriptions` stops at preflight with one line naming
// it, and blue and green are unchanged (no publication, slot, replica
// identity, role or table change).

// serverState is what a run could change on one server, as text: its
// publications, slots, subscriptions, replica identities other than the
// default, its roles' login, replication and password, and its tables.
func serverState(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	return queryOne[string](t, pool, `
SELECT concat_ws(E'\n',
  'publications: ' || (SELECT string_agg(pubname::text, ',' ORDER BY pubname) FROM pg_publication),
  'slots: ' || (SELECT string_agg(slot_name::text, ',' ORDER BY slot_name) FROM pg_replication_slots),
  'subscriptions: ' || (SELECT string_agg(subname::text, ',' ORDER BY subname) FROM pg_subscription),
  'identities: ' || (SELECT string_agg(oid::regclass::text || '=' || relreplident::text, ',' ORDER BY oid::regclass::text)
                     FROM pg_class WHERE relkind IN ('r', 'p') AND relreplident <> 'd' AND relnamespace >= 16384),
  'roles: ' || (SELECT string_agg(rolname::text || ' login=' || rolcanlogin::text || ' repl=' || rolreplication::text || ' pw=' || coalesce(md5(rolpassword), '-'), ',' ORDER BY rolname)
                FROM pg_authid WHERE rolname !~ '^pg_'),
  'tables: ' || (SELECT count(*)::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'))`)
}

// throughFresh runs `run --through id` as a new operator would: a runner
// of its own built from cfg (pools on cfg's connection strings, a new
// state file), and returns its error and the lines it printed.
func throughFresh(t *testing.T, cfg *config.Config, id string) (error, []string) {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "state.json"), state.OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r := NewRunner(cfg, store, nil)
	defer r.Close()
	for _, p := range []struct {
		conninfo string
		pool     **pgxpool.Pool
	}{{cfg.Blue.Conninfo, &r.Blue}, {cfg.Green.Conninfo, &r.Green}} {
		pool, err := pg.NewPool(pg.PoolParams{Conninfo: p.conninfo, ConnectTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		*p.pool = pool
	}
	out := make(chan Line, 64)
	r.Out = out
	var lines []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for l := range out {
			lines = append(lines, l.Level+" "+l.Step+": "+l.Text)
		}
	}()
	err = r.Through(context.Background(), id, RunParams{Confirmed: true})
	close(out)
	wg.Wait()
	return err, lines
}

func TestPreflightStopsTheRun(t *testing.T) {
	le, _ := startLab(t, "copy")
	ctx := context.Background()
	exec := func(t *testing.T, pool *pgxpool.Pool, stmts ...string) {
		t.Helper()
		for _, s := range stmts {
			if _, err := pool.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	// stopsAtPreflight makes the run and checks what it must show and leave.
	stopsAtPreflight := func(t *testing.T, cfg *config.Config, want string) {
		t.Helper()
		blue0, green0 := serverState(t, le.Blue), serverState(t, le.Green)
		start := time.Now()
		err, lines := throughFresh(t, cfg, "create-subscriptions")
		if err == nil || !strings.HasPrefix(err.Error(), "preflight: ") || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("run --through create-subscriptions: %v\nwant one line, from preflight, saying %q", err, want)
		}
		var fail string
		for _, l := range lines {
			if strings.HasPrefix(l, "error preflight: FAIL ") && strings.Contains(l, want) {
				fail = l
			}
			if !strings.Contains(l, " preflight: ") {
				t.Errorf("a step after preflight ran: %s", l)
			}
		}
		if fail == "" {
			t.Errorf("no FAIL line saying %q in:\n%s", want, strings.Join(lines, "\n"))
		}
		t.Logf("the operator sees (%s): %s\nand run --through ends with: %v", time.Since(start).Round(time.Millisecond), fail, err)
		if b, g := serverState(t, le.Blue), serverState(t, le.Green); b != blue0 || g != green0 {
			t.Errorf("the run changed the servers:\nblue  %q\n   -> %q\ngreen %q\n   -> %q", blue0, b, green0, g)
		}
	}

	t.Run("a database with rows that neither moves nor stays", func(t *testing.T) {
		cfg := *le.Config
		cfg.Databases = []string{"app"}
		stopsAtPreflight(t, &cfg, "database billing (")
	})
	t.Run("a database listed to stay, with the roles that keep logging in to it", func(t *testing.T) {
		cfg := *le.Config
		cfg.Databases = []string{"app"}
		cfg.Stay = []config.StayingDatabase{{Name: "billing", Reason: "billed from blue until the quarter ends"}}
		err, lines := throughFresh(t, &cfg, "preflight")
		if err != nil {
			t.Fatalf("preflight with billing listed to stay: %v\n%s", err, strings.Join(lines, "\n"))
		}
		var stays, keeps string
		for _, l := range lines {
			if strings.Contains(l, "PASS database billing stays on blue, as the configuration says: billed from blue until the quarter ends") {
				stays = l
			}
			if strings.Contains(l, "PASS role app keeps logging in to billing on blue after the cutover") {
				keeps = l
			}
		}
		if stays == "" || keeps == "" {
			t.Fatalf("preflight does not say billing stays and app keeps logging in to it:\n%s", strings.Join(lines, "\n"))
		}
		t.Logf("the operator sees:\n%s\n%s", stays, keeps)
	})

	t.Run("the lab itself passes preflight", func(t *testing.T) {
		err, lines := throughFresh(t, le.Config, "preflight")
		if err != nil {
			t.Fatalf("preflight on the lab: %v\n%s", err, strings.Join(lines, "\n"))
		}
		checks, syncPlan, flow := 0, "", ""
		for _, l := range lines {
			if strings.Contains(l, "preflight: PASS ") || strings.Contains(l, "preflight: WARN ") {
				checks++
			}
			if strings.Contains(l, " initial sync: ") {
				syncPlan = l
			}
			if strings.Contains(l, " initial copy of ") {
				flow = l
			}
		}
		if !strings.Contains(flow, "PASS initial copy of pgbg_all (") || !strings.Contains(flow, "copy: auto) by snapshot: every byte passes through this machine (blue -> here -> green)") {
			t.Errorf("preflight's line on where the copy's bytes flow: %q", flow)
		}
		// The publication is not made yet: the plan counts what it will publish.
		if !strings.Contains(syncPlan, "PASS initial sync: ") {
			t.Errorf("preflight's initial sync line: %q, want a PASS with the planned workers", syncPlan)
		}
		t.Logf("%d PASS/WARN lines:\n%s", checks, strings.Join(lines, "\n"))
	})

	t.Run("a schema of blue not listed in schemas, FOR ALL TABLES", func(t *testing.T) {
		exec(t, le.Blue, `CREATE SCHEMA "Sales Dept"`, `CREATE TABLE "Sales Dept".orders (id int PRIMARY KEY)`, `CREATE TABLE "Sales Dept"."Q1" (id int PRIMARY KEY)`)
		defer exec(t, le.Blue, `DROP SCHEMA "Sales Dept" CASCADE`)
		stopsAtPreflight(t, le.Config, `publication pgbg_all is FOR ALL TABLES and would publish 2 tables in schemas not listed in schemas: "Sales Dept" (2 tables)`)
	})

	t.Run("a wrong password for the replication role, which exists", func(t *testing.T) {
		exec(t, le.Blue, "ALTER ROLE pgbg_repl PASSWORD 'not-the-configured-one'")
		defer exec(t, le.Blue, "ALTER ROLE pgbg_repl PASSWORD "+pg.QuoteLiteral(labPassword(t, le)))
		stopsAtPreflight(t, le.Config, "replication role pgbg_repl exists on blue but its login with the password from passfile")
	})

	t.Run("an admin user without superuser", func(t *testing.T) {
		exec(t, le.Blue, "CREATE ROLE ops LOGIN PASSWORD 'ops'", "GRANT CONNECT ON DATABASE app TO ops")
		defer exec(t, le.Blue, "REVOKE CONNECT ON DATABASE app FROM ops", "DROP ROLE ops")
		cfg := *le.Config
		cfg.Blue.Conninfo = strings.Replace(cfg.Blue.Conninfo, "user=postgres", "user=ops password=ops", 1) // the lab asks every TCP login for a password
		stopsAtPreflight(t, &cfg, `blue: user ops is not a superuser and does not own "public"."events_log": replica-identity-full must ALTER TABLE them`)
	})

	t.Run("a dedicated publication naming a table that does not exist", func(t *testing.T) {
		cfg := *le.Config
		cfg.Publications = []config.Publication{{Name: "pgbg_all"}, {Name: "pgbg_hot", Tables: []string{"public.ledger", "public.nosuch"}}}
		stopsAtPreflight(t, &cfg, `publications[1] (pgbg_hot) lists "public"."nosuch", which is not a table on blue`)
	})

	t.Run("an extension of blue green cannot install", func(t *testing.T) {
		// Made by hand on blue's catalog as an extension row green's
		// packages lack (no control file on green for it).
		exec(t, le.Blue, "CREATE SCHEMA fake", "INSERT INTO pg_extension (oid, extname, extowner, extnamespace, extrelocatable, extversion) SELECT (max(oid::int8) + 1)::oid, 'pgbg_fake_ext', 10, 'fake'::regnamespace, true, '1.0' FROM pg_extension")
		defer exec(t, le.Blue, "DELETE FROM pg_extension WHERE extname = 'pgbg_fake_ext'", "DROP SCHEMA fake")
		stopsAtPreflight(t, le.Config, "extension pgbg_fake_ext 1.0 on blue is not available on green")
	})

	t.Run("a remote PgBouncer's ini that cannot be read over SSH", func(t *testing.T) {
		// A known_hosts without the lab's host key: the cutover would refuse
		// at its precheck hours later; preflight says it now.
		cfg := *le.Config
		cfg.Cutover.PgBouncer = append([]config.PgBouncerConfig(nil), cfg.Cutover.PgBouncer...)
		remote := *cfg.Cutover.PgBouncer[1].SSH
		remote.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(remote.KnownHosts, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Cutover.PgBouncer[1].SSH = &remote
		stopsAtPreflight(t, &cfg, "PgBouncer lab-ssh: its ini (ssh://")
	})

	t.Run("a PgBouncer's ini that disagrees with what it serves", func(t *testing.T) {
		local := le.Config.Cutover.PgBouncer[0].Ini
		before, err := os.ReadFile(local)
		if err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(local, before, 0o644)
		if _, err := pg.RepointIni(local, le.Config.Cutover.PgBouncer[0].Database, pg.Endpoint{Host: "127.0.0.1", Port: 1, DBName: "app"}); err != nil {
			t.Fatal(err)
		}
		stopsAtPreflight(t, le.Config, "a RELOAD would move the traffic")
	})

	t.Run("no table needed REPLICA IDENTITY FULL: the value is recorded as none", func(t *testing.T) {
		exec(t, le.Blue, "ALTER TABLE public.events_log REPLICA IDENTITY FULL")
		defer exec(t, le.Blue, "ALTER TABLE public.events_log REPLICA IDENTITY DEFAULT")
		store, err := state.Open(filepath.Join(t.TempDir(), "state.json"), state.OpenParams{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		r := NewRunner(le.Config, store, nil)
		r.Blue, r.Green = le.Blue, le.Green
		if err := r.Through(ctx, "replica-identity-full", RunParams{Confirmed: true}); err != nil {
			t.Fatal(err)
		}
		if v, _ := store.Snapshot().Get("replica_identity_full_tables"); v != "none" {
			t.Fatalf("replica_identity_full_tables = %q, want none", v)
		}
		s, _ := r.Find("revert-replica-identity")
		for _, n := range s.Needs {
			if _, ok := store.Snapshot().Get(n); !ok {
				t.Errorf("revert-replica-identity would refuse: %s not recorded", n)
			}
		}
	})
}
