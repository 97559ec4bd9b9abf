package steps

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// TestCopyTraps attempts, on a real lab, the orderings RUNBOOK.md forbids
// and asserts each is refused with blue (and green) unchanged:
//   - trap 1: the publication while a table has neither a primary key nor
//     a replica identity (UPDATE/DELETE on it would fail on blue);
//   - trap 2: the slot before its publication;
//   - trap 5: enabling a clone strategy's subscription with no validated
//     seed (green_start_lsn missing, then the origin not advanced).
//
// It also runs create-replication-role for real (the lab's role is first
// stripped of REPLICATION and given another password) and proves the
// password reaches no server log and the role logs in with it.
func TestCopyTraps(t *testing.T) {
	testStart := time.Now()
	le, _ := startLab(t, "copy")
	ctx := context.Background()
	logEverything(t, le)
	// The traps are the table sync's and the clones' orders: no copy-data.
	for i := range le.Config.Publications {
		le.Config.Publications[i].Copy = config.CopyTableSync
	}
	override := RunParams{Confirmed: true, Override: "e2e: attempting a forbidden order on purpose"}
	refused := func(t *testing.T, id string, want string) {
		t.Helper()
		_, err := le.Runner.Run(ctx, id, override)
		if !IsRefused(err) {
			t.Fatalf("%s: want a refusal, got %v", id, err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s refusal %q does not say %q", id, err, want)
		}
		t.Logf("%s refused: %v", id, err)
	}
	count := func(t *testing.T, q string) int64 { t.Helper(); return queryOne[int64](t, le.Blue, q) }

	t.Run("enable-logical-replication refuses with the ALTER SYSTEM lines when blue lacks room", func(t *testing.T) {
		// 7 publications with the copy strategy need 21 slots in one
		// database; the lab has 20.
		cfg := *le.Config
		cfg.Databases = []string{"app"}
		cfg.Publications = nil
		for _, n := range []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7"} {
			cfg.Publications = append(cfg.Publications, config.Publication{Name: n})
		}
		env := le.Runner.Env("enable-logical-replication")
		env.Config = &cfg
		env.databases = nil // the databases cfg lists, not the runner's
		res, err := checkLogicalReplication(ctx, env)
		if err != nil || res.Done || !strings.Contains(res.Detail, "max_replication_slots = 20 (< 21)") {
			t.Fatalf("check: %+v %v", res, err)
		}
		err = runEnableLogicalReplication(ctx, env)
		// Only what blue lacks: its wal_level is logical already.
		if !IsRefused(err) || !strings.Contains(err.Error(), "ALTER SYSTEM SET max_replication_slots = 25; ALTER SYSTEM SET max_wal_senders = 25") ||
			strings.Contains(err.Error(), "wal_level = 'logical'") || !strings.Contains(err.Error(), "restart blue") {
			t.Fatalf("run: %v", err)
		}
		// In each of the lab's two databases, they need twice as many.
		cfg.Databases = []string{"app", "billing"}
		if res, err := checkLogicalReplication(ctx, env); err != nil || res.Done || !strings.Contains(res.Detail, "max_replication_slots = 20 (< 42)") {
			t.Fatalf("check with app and billing: %+v %v", res, err)
		}
		cfg.Databases = []string{"app"}
		// Without the initial sync's slots a clone needs one per publication.
		cfg.Strategy = "aurora-clone"
		for len(cfg.Publications) < 21 {
			cfg.Publications = append(cfg.Publications, config.Publication{Name: fmt.Sprintf("q%d", len(cfg.Publications))})
		}
		if err := runEnableLogicalReplication(ctx, env); !IsRefused(err) || !strings.Contains(err.Error(), "issue #7") {
			t.Fatalf("aurora-clone run: %v", err)
		}
	})

	t.Run("trap 1: publication refused while a table lacks a replica identity", func(t *testing.T) {
		refused(t, "create-publications", "replica-identity-full")
		if n := count(t, "SELECT count(*) FROM pg_publication"); n != 0 {
			t.Errorf("%d publication(s) on blue after the refusal", n)
		}
		if id := queryOne[string](t, le.Blue, "SELECT relreplident::text FROM pg_class WHERE oid = 'public.events_log'::regclass"); id != "d" {
			t.Errorf("events_log's replica identity changed to %s", id)
		}
		// Production is unaffected: an UPDATE on the table still works.
		if _, err := le.Blue.Exec(ctx, "UPDATE public.events_log SET kind = kind WHERE ctid = (SELECT min(ctid) FROM public.events_log)"); err != nil {
			t.Errorf("UPDATE on blue after the refusal: %v", err)
		}
	})

	t.Run("trap 2: slot refused before its publication", func(t *testing.T) {
		refused(t, "create-slots", "create-publications")
		if n := count(t, "SELECT count(*) FROM pg_replication_slots"); n != 0 {
			t.Errorf("%d slot(s) on blue after the refusal", n)
		}
		if _, ok := le.Store.Snapshot().Get("slot_lsn"); ok {
			t.Error("slot_lsn recorded by a refused step")
		}
	})

	t.Run("create-replication-role sets the password without logging it", func(t *testing.T) {
		pw := labPassword(t, le)
		if _, err := le.Blue.Exec(ctx, "ALTER ROLE pgbg_repl NOREPLICATION PASSWORD 'not-the-configured-one'"); err != nil {
			t.Fatal(err)
		}
		if _, err := le.Blue.Exec(ctx, "REVOKE SELECT ON ALL TABLES IN SCHEMA inventory FROM pgbg_repl"); err != nil {
			t.Fatal(err)
		}
		s, _ := le.Runner.Find("create-replication-role")
		if res, err := s.Check(ctx, le.Runner.Env(s.ID)); err != nil || res.Done {
			t.Fatalf("check found a role without REPLICATION done: %+v %v", res, err)
		}
		// What its dry run shows is what runs: the BEGIN, the SET LOCALs, the
		// verifier as '********', the DO block, the grants, COMMIT.
		dry := dryRunOf(t, le.Config, le.Store.Path(), "create-replication-role", override, nil)
		_, offset := journalEntries(t, le.JournalPath, 0)
		if _, err := le.Runner.Run(ctx, "create-replication-role", override); err != nil {
			t.Fatal(err)
		}
		if missing, checked := notShown(t, le.JournalPath, offset, "create-replication-role", dry); len(missing) > 0 || checked < 8 {
			t.Errorf("create-replication-role ran %d statements; not in its dry run: %q\ndry run:\n%s", checked, missing, strings.Join(dry, "\n"))
		}
		if res, err := s.Check(ctx, le.Runner.Env(s.ID)); err != nil || !res.Done {
			t.Fatalf("check after the run: %+v %v", res, err)
		}
		// The configured password works again (pg_hba requires SCRAM for the role).
		conn, err := pgx.Connect(ctx, strings.Replace(le.Info.Blue.Conninfo, "user=postgres", "user=pgbg_repl", 1)+" password="+pw)
		if err != nil {
			t.Fatalf("the role does not log in with the configured password: %v", err)
		}
		conn.Close(ctx)
		log := labLog(t, le, "blue")
		if strings.Contains(log, pw) || strings.Contains(log, "SCRAM-SHA-256$") {
			t.Error("blue's log holds the password or its verifier")
		}
		if len(grepLines(log, "not-the-configured-one")) == 0 {
			t.Error("blue's log does not log statements: the test proves nothing")
		}
	})

	t.Run("copy-schema refuses while a role of blue is missing on green", func(t *testing.T) {
		for _, q := range []string{"CREATE ROLE reporter NOLOGIN", "GRANT SELECT ON public.accounts TO reporter"} {
			if _, err := le.Blue.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		refused(t, "copy-schema", `CREATE ROLE "reporter" NOLOGIN`)
		if n := queryOne[int64](t, le.Green, "SELECT count(*) FROM pg_class WHERE relname = 'accounts'"); n != 0 {
			t.Errorf("green has %d accounts table(s) after the refusal", n)
		}
		if _, err := le.Green.Exec(ctx, "CREATE ROLE reporter NOLOGIN"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("trap 5: enabling a clone's subscription without a validated seed", func(t *testing.T) {
		// The right order up to a disabled subscription.
		for _, id := range []string{"replica-identity-full", "create-publications", "create-slots", "create-databases", "copy-schema", "create-subscriptions"} {
			if _, err := le.Runner.Run(ctx, id, override); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
		if !t.Run("a slot whose LSN was not recorded (crash) is recorded by the check", func(t *testing.T) {
			want, _ := le.Store.Snapshot().Get("slot_lsn")
			le.Store.Update(func(s *state.State) error {
				delete(s.Values, "slot_lsn")
				delete(s.Values, "slot_lsn.pgbg_all")
				return nil
			})
			s, _ := le.Runner.Find("create-slots")
			res, err := s.Check(ctx, le.Runner.Env(s.ID))
			if err != nil || !res.Done {
				t.Fatalf("check: %+v %v", res, err)
			}
			got, _ := le.Store.Snapshot().Get("slot_lsn")
			if got != want {
				t.Errorf("slot_lsn recorded again as %q, was %q", got, want)
			}
		}) {
			t.FailNow()
		}
		cfg := *le.Config
		cfg.Strategy = "clone"
		store, err := state.Open(filepath.Join(le.Info.Dir, "clone-state.json"), state.OpenParams{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		r := NewRunner(&cfg, store, nil)
		r.Blue, r.Green = le.Blue, le.Green
		slotBefore := queryOne[string](t, le.Blue, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'pgbg_all'")
		unchanged := func() {
			t.Helper()
			if on := queryOne[bool](t, le.Green, "SELECT subenabled FROM pg_subscription WHERE subname = 'pgbg_all'"); on {
				t.Error("the subscription was enabled")
			}
			if after := queryOne[string](t, le.Blue, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'pgbg_all'"); after != slotBefore {
				t.Errorf("the slot moved from %s to %s", slotBefore, after)
			}
		}
		_, err = r.Run(ctx, "enable-subscriptions", override)
		if !IsRefused(err) || !strings.Contains(err.Error(), "green_start_lsn") {
			t.Fatalf("without green_start_lsn: want a refusal naming it, got %v", err)
		}
		unchanged()
		// A seed recorded but the origin never advanced: refused too.
		seed := queryOne[string](t, le.Blue, "SELECT pg_current_wal_lsn()::text")
		if err := store.Update(func(s *state.State) error { s.Set("green_start_lsn", seed, "test"); return nil }); err != nil {
			t.Fatal(err)
		}
		_, err = r.Run(ctx, "enable-subscriptions", override)
		if !IsRefused(err) || !strings.Contains(err.Error(), "advance-origins") {
			t.Fatalf("origin not advanced: want a refusal naming advance-origins, got %v", err)
		}
		unchanged()
	})
	t.Run("compare-schema lists DDL made on blue only", func(t *testing.T) {
		if _, err := le.Runner.Run(ctx, "compare-schema", override); err != nil {
			t.Fatalf("compare-schema right after copy-schema: %v", err)
		}
		if _, err := le.Blue.Exec(ctx, "ALTER TABLE inventory.items ADD COLUMN note text"); err != nil {
			t.Fatal(err)
		}
		le.Store.Update(func(s *state.State) error { s.EditStep("compare-schema").Status = state.Pending; return nil })
		_, err := le.Runner.Run(ctx, "compare-schema", override)
		if err == nil || !strings.Contains(err.Error(), `blue: column inventory.items.note text null`) {
			t.Fatalf("compare-schema after ALTER TABLE on blue: %v", err)
		}
		t.Logf("compare-schema: %v", err)
	})

	t.Run("preflight warns of slow apply: FULL identity and no index on a PG16+ green", func(t *testing.T) {
		var lines []string
		env := le.Runner.Env("preflight")
		env.emit = func(l Line) { lines = append(lines, l.Level+" "+l.Text) }
		if err := runPreflight(ctx, env); err != nil {
			t.Fatal(err)
		}
		all := strings.Join(lines, "\n")
		if !strings.Contains(all, `"public"."events_log" have no primary key and no btree index`) {
			t.Errorf("no slow-apply warning in:\n%s", all)
		}
	})
	t.Run("wait-catch-up fails fast when green cannot connect to blue", func(t *testing.T) {
		defer func(g time.Duration) { workerGrace = g }(workerGrace)
		workerGrace = 3 * time.Second
		if _, err := le.Blue.Exec(ctx, "ALTER ROLE pgbg_repl PASSWORD 'not-what-green-sends'"); err != nil {
			t.Fatal(err)
		}
		if _, err := le.Runner.Run(ctx, "enable-subscriptions", override); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := le.Runner.Run(ctx, "wait-catch-up", override)
		if err == nil || !strings.Contains(err.Error(), "apply worker") {
			t.Fatalf("want an apply-worker failure, got %v", err)
		}
		t.Logf("wait-catch-up failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	})

	t.Run("a failing CREATE SUBSCRIPTION leaves no password in green's log", func(t *testing.T) {
		// Blue still refuses the configured password (previous subtest).
		for _, q := range []string{"ALTER SUBSCRIPTION pgbg_all DISABLE", "ALTER SUBSCRIPTION pgbg_all SET (slot_name = NONE)", "DROP SUBSCRIPTION pgbg_all"} {
			if _, err := le.Green.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		le.Store.Update(func(s *state.State) error { s.EditStep("create-subscriptions").Status = state.Pending; return nil })
		_, err := le.Runner.Run(ctx, "create-subscriptions", override)
		if err == nil || !strings.Contains(err.Error(), "password authentication failed") {
			t.Fatalf("create-subscriptions against a changed password: %v", err)
		}
		pw := labPassword(t, le)
		log := labLog(t, le, "green")
		if strings.Contains(log, pw) || strings.Contains(err.Error(), pw) {
			t.Error("the password is in green's log or in the error")
		}
		if lines := grepLines(log, "CONNECTION '"); len(lines) > 0 {
			t.Errorf("green's log shows the subscription's connection string: %q", lines)
		}
		if len(grepLines(log, "password authentication failed")) == 0 {
			t.Error("green's log does not show the failure: the test proves nothing")
		}
		t.Logf("refused as it should: %v", err)
	})
	t.Logf("TestCopyTraps took %s", time.Since(testStart).Round(time.Millisecond))
}
