package steps

import (
	"bufio"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// TestCopyEndToEnd upgrades the lab's blue (15) to green (17) with the copy
// strategy under a live write load through PgBouncer: every step through
// wait-catch-up, then the load stops, green drains, and the workload's
// ledger and a table-by-table comparison prove that no acknowledged write
// is lost or duplicated. Then analyze-green and verify-data; every done
// step's check finds it done (running again changes nothing); the
// replication password is in no server log and not in the journal; and
// cleanup leaves no slot, publication or subscription on either side.
func TestCopyEndToEnd(t *testing.T) {
	testStart := time.Now()
	le, _ := startLab(t, "copy")
	ctx := context.Background()
	logEverything(t, le)
	stopLoad := startLoad(t, le, 150)

	// Under load the whole way.
	start := time.Now()
	if err := le.Runner.Through(ctx, "wait-catch-up", RunParams{Confirmed: true}); err != nil {
		t.Fatalf("through wait-catch-up: %v", err)
	}
	t.Logf("preflight .. wait-catch-up under load: %s", time.Since(start).Round(time.Millisecond))
	st := le.Store.Snapshot()
	for _, k := range []string{"blue_version", "green_version", "replica_identity_full_tables", "copy_mode.pgbg_all", "snapshot_copy.pgbg_all", "slot_lsn.pgbg_all", "extensions_upgraded"} {
		if v, ok := st.Get(k); !ok || v == "" {
			t.Errorf("value %s not recorded", k)
		}
	}
	if v, _ := st.Get("replica_identity_full_tables"); v != `"public"."events_log"` {
		t.Errorf("replica_identity_full_tables = %q, want \"public\".\"events_log\"", v)
	}

	// Streaming under load (the initial sync is over): drain to a target
	// while writes continue.
	env := le.Runner.Env("wait-catch-up")
	for i := 0; i < 3; i++ {
		target, err := pg.CurrentLSN(ctx, le.Blue)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := env.waitDrained(ctx, target, time.Minute, true)
		if err != nil {
			t.Fatalf("drain under load: %v", err)
		}
		t.Logf("drain under load: %d bytes in %s (%.0f B/s)", ds.StartBehind, ds.Took.Round(time.Millisecond), ds.BytesPerSec)
	}

	// Quiesce, drain to blue's final LSN, verify with the ledger.
	res := stopLoad()
	if res.Committed == 0 || res.Errors != 0 {
		t.Fatalf("load during the run: %+v (an UPDATE/DELETE failing on blue would show here)", res)
	}
	t.Logf("load: %d commits at %.0f/s, %d errors", res.Committed, res.Rate, res.Errors)
	target, err := pg.CurrentLSN(ctx, le.Blue)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := env.waitDrained(ctx, target, time.Minute, true)
	if err != nil {
		t.Fatalf("drain after the load: %v", err)
	}
	t.Logf("drain after quiesce: %d bytes in %s (%.0f B/s)", ds.StartBehind, ds.Took.Round(time.Millisecond), ds.BytesPerSec)
	v, err := lab.Verify(ctx, le.Info.Dir)
	if err != nil {
		t.Fatalf("lab verify: %v", err)
	}
	if !v.OK() || v.LedgerEntries == 0 || v.TablesCompared == 0 {
		t.Fatalf("lab verify: %+v", v)
	}
	t.Logf("verify: %d ledger entries, 0 lost, 0 duplicated, %d tables identical", v.LedgerEntries, v.TablesCompared)

	mustRun(t, le, refreshMatviewsID)
	mustRun(t, le, copyLargeObjectsID)
	mustRun(t, le, "analyze-green")
	le.Store.Update(func(s *state.State) error { s.Set(VerifyChecksumsKey, "on", "test"); return nil })
	mustRun(t, le, "verify-data")
	mustRun(t, le, copyUnloggedID)

	t.Run("each done step's check finds it done", func(t *testing.T) {
		always := map[string]bool{"preflight": true, "compare-schema": true, "analyze-green": true, "verify-data": true}
		for _, s := range le.Runner.Steps {
			if s.ID == "cutover" {
				break
			}
			if always[s.ID] || s.Check == nil {
				continue
			}
			if s.Optional && le.Store.Snapshot().Step(s.ID).Status != state.Done {
				continue // passed over by Through (record-ddl)
			}
			res, err := s.Check(ctx, le.Runner.Env(s.ID))
			if err != nil || !res.Done {
				t.Errorf("%s check: done=%v %q %v", s.ID, res.Done, res.Detail, err)
			}
			// And the runner runs nothing for it.
			if out, err := le.Runner.Run(ctx, s.ID, RunParams{Confirmed: true}); err != nil || out != OutcomeAlreadyDone {
				t.Errorf("%s again: %s %v", s.ID, out, err)
			}
		}
		// Each Run called again, bypassing runner and check, changes nothing.
		snapshot := func() string {
			return queryOne[string](t, le.Blue, "SELECT (SELECT string_agg(slot_name, ',') FROM pg_replication_slots) || ' | ' || (SELECT string_agg(pubname, ',') FROM pg_publication) || ' | ' || (SELECT string_agg(relname || relreplident::text, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r')") +
				" || " + queryOne[string](t, le.Green, "SELECT (SELECT string_agg(subname || subenabled::text, ',') FROM pg_subscription) || ' | ' || (SELECT count(*) FROM pg_class WHERE relnamespace IN ('public'::regnamespace, 'inventory'::regnamespace))::text || ' | ' || (SELECT string_agg(rolname || rolcanlogin::text, ',') FROM pg_roles WHERE rolname = 'app')")
		}
		before0 := snapshot()
		for _, id := range []string{"create-replication-role", "replica-identity-full", "create-publications", "create-slots", "copy-schema", "upgrade-extensions", "block-green-logins", "create-subscriptions", "enable-subscriptions"} {
			s, _ := le.Runner.Find(id)
			if err := s.Run(ctx, le.Runner.Env(id)); err != nil {
				t.Errorf("%s run again: %v", id, err)
			}
		}
		if after := snapshot(); after != before0 {
			t.Errorf("running the done steps again changed something:\n%s\n%s", before0, after)
		}
		// A re-run of a step found done by its check (state says pending)
		// also changes nothing.
		// (Slot positions move with idle WAL; names and recorded LSNs do not.)
		slotLSN, _ := le.Store.Snapshot().Get("slot_lsn")
		before := queryOne[string](t, le.Blue, "SELECT string_agg(slot_name, ',') FROM pg_replication_slots")
		le.Store.Update(func(s *state.State) error { s.EditStep("create-slots").Status = state.Pending; return nil })
		if out, err := le.Runner.Run(ctx, "create-slots", RunParams{}); err != nil || out != OutcomeFoundDone {
			t.Errorf("create-slots with state pending: %s %v", out, err)
		}
		if after := queryOne[string](t, le.Blue, "SELECT string_agg(slot_name, ',') FROM pg_replication_slots"); after != before {
			t.Errorf("slots changed: %s then %s", before, after)
		}
		if now, _ := le.Store.Snapshot().Get("slot_lsn"); now != slotLSN {
			t.Errorf("slot_lsn changed from %s to %s", slotLSN, now)
		}
	})

	t.Run("the replication password is in no log and not in the journal", func(t *testing.T) {
		pw := labPassword(t, le)
		for _, s := range []string{"blue", "green"} {
			log := labLog(t, le, s)
			if strings.Contains(log, pw) {
				t.Errorf("%s's log holds the replication password", s)
			}
			if len(grepLines(log, "statement: ")) == 0 {
				t.Errorf("%s's log has no statement at all: the test proves nothing", s)
			}
		}
		if n := len(grepLines(labLog(t, le, "green"), "CREATE SUBSCRIPTION")); n != 0 {
			t.Errorf("green's log shows CREATE SUBSCRIPTION %d times", n)
		}
		b, err := os.ReadFile(le.JournalPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), pw) {
			t.Error("the journal holds the replication password")
		}
		if !strings.Contains(string(b), "CREATE SUBSCRIPTION") {
			t.Error("the journal does not show the subscription being created")
		}
	})

	t.Run("cleanup leaves nothing behind", func(t *testing.T) {
		p := RunParams{Confirmed: true, Override: "e2e: cleanup without a cutover"}
		for _, id := range []string{"drop-subscriptions", "drop-publications", "revert-replica-identity"} {
			if _, err := le.Runner.Run(ctx, id, p); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
		for _, c := range []struct {
			name string
			q    string
		}{
			{"slots on blue", "SELECT count(*) FROM pg_replication_slots"},
			{"publications on blue", "SELECT count(*) FROM pg_publication"},
			{"subscriptions on blue", "SELECT count(*) FROM pg_subscription"},
		} {
			if n := queryOne[int64](t, le.Blue, c.q); n != 0 {
				t.Errorf("%s: %d", c.name, n)
			}
		}
		for _, c := range []struct {
			name string
			q    string
		}{
			{"slots on green", "SELECT count(*) FROM pg_replication_slots"},
			{"publications on green", "SELECT count(*) FROM pg_publication"},
			{"subscriptions on green", "SELECT count(*) FROM pg_subscription"},
			{"REPLICA IDENTITY FULL on green", "SELECT count(*) FROM pg_class WHERE relreplident = 'f'"},
		} {
			if n := queryOne[int64](t, le.Green, c.q); n != 0 {
				t.Errorf("%s: %d", c.name, n)
			}
		}
		// Found done on a second pass.
		for _, id := range []string{"drop-subscriptions", "drop-publications", "revert-replica-identity"} {
			s, _ := le.Runner.Find(id)
			if res, err := s.Check(ctx, le.Runner.Env(id)); err != nil || !res.Done {
				t.Errorf("%s check after cleanup: %+v %v", id, res, err)
			}
		}
	})
	t.Logf("TestCopyEndToEnd took %s", time.Since(testStart).Round(time.Millisecond))
}

// logEverything turns statement logging on for every statement on blue and
// green, so a test that greps their logs for a secret proves something.
func logEverything(t *testing.T, le *labEnv) {
	t.Helper()
	for _, p := range []*pgxpool.Pool{le.Blue, le.Green} {
		for _, s := range []string{"ALTER SYSTEM SET log_statement = 'all'", "ALTER SYSTEM SET log_min_error_statement = 'error'", "SELECT pg_reload_conf()"} {
			if _, err := p.Exec(context.Background(), s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), sub) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// TestCopyDedicatedPublications runs the copy strategy with a dedicated
// publication for the write-heavy ledger (002's layout): the all-tables
// publication then lists every other table of the schemas, partitioned
// table included; two slots, two subscriptions, and the ledger proves
// nothing is lost or duplicated.
func TestCopyDedicatedPublications(t *testing.T) {
	testStart := time.Now()
	le, _ := startLab(t, "copy")
	ctx := context.Background()
	le.Config.Publications = []config.Publication{{Name: "pgbg_ledger", Tables: []string{"public.ledger"}}, {Name: "pgbg_rest"}}
	stopLoad := startLoad(t, le, 150)
	if err := le.Runner.Through(ctx, "wait-catch-up", RunParams{Confirmed: true}); err != nil {
		t.Fatalf("through wait-catch-up: %v", err)
	}
	rest := queryOne[string](t, le.Blue, `SELECT string_agg(prrelid::regclass::text, ',' ORDER BY prrelid::regclass::text) FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid WHERE pubname = 'pgbg_rest'`)
	if rest != `"OrderItems",accounts,events_log,inventory.items,measurements` {
		t.Errorf("pgbg_rest publishes %s", rest)
	}
	if n := queryOne[int64](t, le.Blue, "SELECT count(*) FROM pg_replication_slots WHERE slot_name IN ('pgbg_ledger', 'pgbg_rest')"); n != 2 {
		t.Errorf("%d of the 2 slots on blue", n)
	}
	res := stopLoad()
	if res.Errors != 0 || res.Committed == 0 {
		t.Fatalf("load: %+v", res)
	}
	target, err := pg.CurrentLSN(ctx, le.Blue)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := le.Runner.Env("wait-catch-up").waitDrained(ctx, target, time.Minute, true); err != nil {
		t.Fatal(err)
	}
	v, err := lab.Verify(ctx, le.Info.Dir)
	if err != nil || !v.OK() || v.TablesCompared == 0 {
		t.Fatalf("lab verify: %+v %v", v, err)
	}
	t.Logf("%d commits, verify %+v; took %s", res.Committed, v, time.Since(testStart).Round(time.Millisecond))
}
