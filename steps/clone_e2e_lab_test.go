package steps

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// TestCloneEndToEnd upgrades the lab's blue (15) to green (17) with the
// clone strategy (pg_basebackup + pg_upgrade --link) under a live write
// load through PgBouncer, from preflight through wait-catch-up; then the
// load stops, green drains, and the ledger, a table-by-table comparison
// and zero apply errors on green prove the seed exact: no acknowledged
// write lost, none applied twice.
func TestCloneEndToEnd(t *testing.T) {
	testStart := time.Now()
	le, _ := startLab(t, "clone")
	ctx := context.Background()
	stopLoad := startLoad(t, le, 150)

	start := time.Now()
	clonePreflight(t, le)
	if err := le.Runner.Through(ctx, "advance-origins", RunParams{Confirmed: true}); err != nil {
		t.Fatalf("through advance-origins: %v", err)
	}
	t.Run("a wrong green_start_lsn typed in is read again on purpose", func(t *testing.T) {
		right, _ := le.Store.Snapshot().Get("green_start_lsn")
		if err := le.Store.Update(func(st *state.State) error { st.Set("green_start_lsn", "0/1000000", "operator"); return nil }); err != nil {
			t.Fatal(err)
		}
		if out, err := le.Runner.Run(ctx, "green-start-lsn", RunParams{Confirmed: true}); err != nil || out != OutcomeAlreadyDone {
			t.Fatalf("green-start-lsn without --again: %s %v, want already done", out, err)
		}
		if out, err := le.Runner.Run(ctx, "green-start-lsn", RunParams{Confirmed: true, Again: "the value typed in was wrong"}); err != nil || out != OutcomeRan {
			t.Fatalf("green-start-lsn --again: %s %v", out, err)
		}
		st := le.Store.Snapshot()
		if got, _ := st.Get("green_start_lsn"); got != right {
			t.Errorf("green_start_lsn after --again: %s, want %s (read again from the clone's log)", got, right)
		}
		if rec := st.Step("advance-origins"); rec.Status != state.Pending {
			t.Errorf("advance-origins after green-start-lsn --again: %s, want pending (its origins move to the new value)", rec.Status)
		}
		if !strings.Contains(journalLine(t, le, "run again on purpose"), "the value typed in was wrong") {
			t.Errorf("the reason is not journaled")
		}
	})
	if err := le.Runner.Through(ctx, "wait-catch-up", RunParams{Confirmed: true}); err != nil {
		t.Fatalf("through wait-catch-up: %v", err)
	}
	t.Logf("preflight .. wait-catch-up under load: %s", time.Since(start).Round(time.Millisecond))
	st := le.Store.Snapshot()
	seedText, _ := st.Get("green_start_lsn")
	slotText, _ := st.Get("slot_lsn.pgbg_all")
	redoText, _ := st.Get("clone_redo_done")
	seed, err1 := pg.ParseLSN(seedText)
	slot, err2 := pg.ParseLSN(slotText)
	redo, err3 := pg.ParseLSN(redoText)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatalf("recorded values: %v", err)
	}
	if seed != redo+1 || seed <= slot {
		t.Fatalf("seed %s, redo done at %s, slot created at %s", seed, redo, slot)
	}
	t.Logf("slot created at %s; clone's redo done at %s; seed %s (%d bytes after the slot)", slot, redo, seed, uint64(seed-slot))
	if rec := st.Step("clone-local"); rec.StartedAt != nil && rec.FinishedAt != nil {
		t.Logf("clone-local took %s; %s", rec.FinishedAt.Sub(*rec.StartedAt).Round(time.Millisecond), journalLine(t, le, "clone-local from phase"))
	}

	res := stopLoad()
	if res.Committed == 0 || res.Errors != 0 {
		t.Fatalf("load during the run: %+v", res)
	}
	t.Logf("load: %d commits at %.0f/s, %d errors", res.Committed, res.Rate, res.Errors)
	drainSlots(t, le)
	v, err := lab.Verify(ctx, le.Info.Dir)
	if err != nil {
		t.Fatalf("lab verify: %v", err)
	}
	if !v.OK() || v.LedgerEntries == 0 || v.TablesCompared == 0 {
		t.Fatalf("lab verify: %+v", v)
	}
	t.Logf("verify: %d ledger entries, 0 lost, 0 duplicated, %d tables identical", v.LedgerEntries, v.TablesCompared)

	// The seed is exact: with it one byte short, the last transaction the
	// clone replayed would come again (a duplicate key or a double update);
	// with it too far, rows would be missing above.
	var names []string
	for _, p := range le.Config.Publications {
		names = append(names, p.Name)
	}
	subs := queryOne[int64](t, le.Green, "SELECT count(*) FROM pg_stat_subscription_stats WHERE subname = ANY($1)", names)
	errs := queryOne[int64](t, le.Green, "SELECT coalesce(sum(apply_error_count + sync_error_count), 0) FROM pg_stat_subscription_stats")
	if subs != int64(len(le.Config.Publications)) || errs != 0 {
		t.Fatalf("green: %d subscriptions with stats, %d apply/sync errors", subs, errs)
	}
	if log, err := os.ReadFile(e2eCloneParams(le).Paths().GreenLog); err != nil || strings.Contains(string(log), "duplicate key") {
		t.Fatalf("green's log: duplicate key errors or unreadable (%v)", err)
	}

	t.Run("each clone step's check finds it done", func(t *testing.T) {
		for _, id := range []string{"clone-local", "green-start-lsn", "drop-cloned-replication", "advance-origins"} {
			s, _ := le.Runner.Find(id)
			if r, err := s.Check(ctx, le.Runner.Env(id)); err != nil || !r.Done {
				t.Errorf("%s check: %+v %v", id, r, err)
			}
			le.Store.Update(func(st *state.State) error { st.EditStep(id).Status = state.Pending; return nil })
			if out, err := le.Runner.Run(ctx, id, RunParams{Confirmed: true, Override: "e2e: again"}); err != nil || out != OutcomeFoundDone {
				t.Errorf("%s again: %s %v", id, out, err)
			}
		}
		// The origins have moved past the seed by streaming: advance-origins'
		// run itself (past its check) refuses to move them back.
		s, _ := le.Runner.Find("advance-origins")
		err := s.Run(ctx, le.Runner.Env("advance-origins"))
		if !IsRefused(err) || !strings.Contains(err.Error(), "enabled") {
			t.Errorf("advance-origins after enable: %v", err)
		}
	})
	t.Run("green-start-lsn cannot run again once replication started", func(t *testing.T) {
		_, err := le.Runner.Run(ctx, "green-start-lsn", RunParams{Confirmed: true, Again: "too late"})
		if !IsRefused(err) || !strings.Contains(err.Error(), "enable-subscriptions is done") {
			t.Errorf("green-start-lsn --again after enable-subscriptions: %v, want a refusal", err)
		}
	})
	t.Logf("TestCloneEndToEnd took %s", time.Since(testStart).Round(time.Millisecond))
}

func e2eCloneParams(le *labEnv) pg.CloneParams {
	return le.Runner.Env("clone-local").cloneParams()
}

// journalLine returns the first journal line containing s, for the test log.
func journalLine(t *testing.T, le *labEnv, s string) string {
	t.Helper()
	b, _ := os.ReadFile(le.JournalPath)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// drainSlots waits until every slot on blue has confirmed blue's current LSN.
func drainSlots(t *testing.T, le *labEnv) {
	t.Helper()
	target := queryOne[string](t, le.Blue, "SELECT pg_current_wal_lsn()::text")
	start := time.Now()
	for {
		behind := queryOne[int64](t, le.Blue, "SELECT count(*) FROM pg_replication_slots WHERE slot_type = 'logical' AND (confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < $1::pg_lsn)", target)
		if behind == 0 {
			t.Logf("drained to %s in %s", target, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("slots still behind %s after 2 minutes", target)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clonePreflight runs preflight; with the clone strategy green does not
// exist before clone-local, so a preflight that requires green is skipped
// (and said so) rather than blocking the clone steps' tests.
func clonePreflight(t *testing.T, le *labEnv) {
	t.Helper()
	_, err := le.Runner.Run(context.Background(), "preflight", RunParams{Confirmed: true})
	if err == nil {
		return
	}
	if !strings.Contains(err.Error(), "green is not reachable") {
		t.Fatalf("preflight: %v", err)
	}
	t.Logf("NOTE: preflight requires green, which the clone strategy makes later (clone-local): skipped: %v", err)
	if err := le.Runner.Skip("preflight", "clone strategy: green does not exist before clone-local"); err != nil {
		t.Fatal(err)
	}
}

// TestCloneRefusedBeforeSlot is trap 3: clone-local refuses while the slot
// does not exist on blue, and creates nothing.
func TestCloneRefusedBeforeSlot(t *testing.T) {
	le, _ := startLab(t, "clone")
	_, err := le.Runner.Run(context.Background(), "clone-local", RunParams{Confirmed: true, Override: "test: clone before the slot"})
	if !IsRefused(err) || !strings.Contains(err.Error(), "slot pgbg_all does not exist on blue") {
		t.Fatalf("clone-local before the slot: %v", err)
	}
	ps := e2eCloneParams(le).Paths()
	for _, p := range []string{ps.DataDir, ps.Basebackup, ps.Partial, ps.Upgrading, ps.Work} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was created by a refused clone-local", p)
		}
	}
	if s := le.Store.Snapshot().Step("clone-local").Status; s == state.Done {
		t.Fatalf("clone-local is %s", s)
	}
}

// TestCloneSeedTraps is trap 5 (and 4) on a real clone: green-start-lsn and
// advance-origins refuse a seed not after the slot's creation LSN, an
// active slot, a relic publication on green blocks subscribing, a slot
// confirmed beyond the seed, and a lost slot.
func TestCloneSeedTraps(t *testing.T) {
	le, _ := startLab(t, "clone")
	ctx := context.Background()
	clonePreflight(t, le)
	if err := le.Runner.Through(ctx, "clone-local", RunParams{Confirmed: true}); err != nil {
		t.Fatalf("through clone-local: %v", err)
	}
	set := func(k, v string) {
		le.Store.Update(func(s *state.State) error { s.Set(k, v, "test"); return nil })
	}
	pending := func(id string) {
		le.Store.Update(func(s *state.State) error { s.EditStep(id).Status = state.Pending; return nil })
	}
	run := func(id string) error {
		_, err := le.Runner.Run(ctx, id, RunParams{Confirmed: true, Override: "test: trap"})
		return err
	}
	refused := func(t *testing.T, id, want string) {
		t.Helper()
		err := run(id)
		if !IsRefused(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v; want a refusal saying %q", id, err, want)
		}
	}
	st := le.Store.Snapshot()
	slotLSN, _ := st.Get("slot_lsn.pgbg_all")
	maxLSN, _ := st.Get("slot_lsn")

	t.Run("seed not after the slot", func(t *testing.T) {
		set("slot_lsn.pgbg_all", "FFFFFFFF/0")
		set("slot_lsn", "FFFFFFFF/0")
		refused(t, "green-start-lsn", "the clone predates the slot")
		if v, ok := le.Store.Snapshot().Get("green_start_lsn"); ok && v != "" {
			t.Fatalf("green_start_lsn recorded anyway: %s", v)
		}
		set("slot_lsn.pgbg_all", slotLSN)
		set("slot_lsn", maxLSN)
	})

	t.Run("slot active", func(t *testing.T) {
		stop := consumeSlot(t, le, "pgbg_all")
		refused(t, "green-start-lsn", "is active")
		stop()
	})

	if err := run("green-start-lsn"); err != nil {
		t.Fatalf("green-start-lsn on a sound seed: %v", err)
	}
	seed, _ := le.Store.Snapshot().Get("green_start_lsn")
	t.Logf("slot at %s, seed %s", slotLSN, seed)

	t.Run("relic publication on green", func(t *testing.T) {
		if err := le.Runner.Through(ctx, "compare-schema", RunParams{Confirmed: true}); err != nil {
			t.Fatalf("through compare-schema: %v", err)
		}
		if _, err := le.Green.Exec(ctx, "CREATE PUBLICATION relic_from_blue FOR ALL TABLES"); err != nil {
			t.Fatal(err)
		}
		s, _ := le.Runner.Find("drop-cloned-replication")
		if r, err := s.Check(ctx, le.Runner.Env(s.ID)); err != nil || r.Done || !strings.Contains(r.Detail, "publication relic_from_blue") {
			t.Fatalf("drop-cloned-replication check with a relic: %+v %v", r, err)
		}
		if relics, err := pg.RelicReplication(ctx, le.Green); err != nil || len(relics) != 1 {
			t.Fatalf("RelicReplication: %v %v", relics, err)
		}
		err := run("create-subscriptions")
		if !IsRefused(err) {
			t.Errorf("create-subscriptions with a relic publication on green: %v (trap 4: it must refuse through pg.RelicReplication)", err)
		}
		pending("drop-cloned-replication")
		if err := run("drop-cloned-replication"); err != nil {
			t.Fatal(err)
		}
		if n := queryOne[int64](t, le.Green, "SELECT count(*) FROM pg_publication"); n != 0 {
			t.Fatalf("%d publications left on green", n)
		}
	})

	t.Run("slot confirmed beyond the seed", func(t *testing.T) {
		if err := run("create-subscriptions"); err != nil && !IsRefused(err) {
			t.Fatal(err)
		}
		queryOne[string](t, le.Blue, "SELECT pg_switch_wal()::text")
		queryOne[string](t, le.Blue, "SELECT end_lsn::text FROM pg_replication_slot_advance('pgbg_all', pg_current_wal_lsn())")
		refused(t, "advance-origins", "beyond the seed")
		pending("green-start-lsn")
		refused(t, "green-start-lsn", "beyond the seed")
	})

	t.Run("slot lost", func(t *testing.T) {
		for _, s := range []string{"ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'", "SELECT pg_reload_conf()"} {
			if _, err := le.Blue.Exec(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 20; i++ {
			if queryOne[string](t, le.Blue, "SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = 'pgbg_all'") == "lost" {
				break
			}
			for _, s := range []string{"CREATE TEMP TABLE IF NOT EXISTS pad AS SELECT 1 AS x", "INSERT INTO pad SELECT generate_series(1, 1000)", "SELECT pg_switch_wal()", "CHECKPOINT"} {
				if _, err := le.Blue.Exec(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
		}
		refused(t, "green-start-lsn", "is lost")
	})
}

// consumeSlot holds a logical slot active with a walsender that never sends
// feedback (the slot does not move), until stop.
func consumeSlot(t *testing.T, le *labEnv, slot string) (stop func()) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgconn.ParseConfig(le.Config.Blue.Conninfo + " replication=database")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn.Frontend().Send(&pgproto3.Query{String: "START_REPLICATION SLOT " + slot + " LOGICAL 0/0 (proto_version '1', publication_names 'pgbg_all')"})
	if err := conn.Frontend().Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("START_REPLICATION: %v", err)
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			t.Fatalf("START_REPLICATION: %s", e.Message)
		}
		if _, ok := msg.(*pgproto3.CopyBothResponse); ok {
			break
		}
	}
	return func() {
		conn.Close(context.Background())
		for i := 0; i < 200; i++ {
			if !queryOne[bool](t, le.Blue, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("the slot stayed active after the walsender's client left")
	}
}

// TestCloneLocalInterrupted cancels clone-local while it makes green's new
// cluster (initdb / pg_upgrade killed), then runs it again: it resumes from
// the files it left, keeps the first start's seed, and replication from
// that seed applies without an error.
func TestCloneLocalInterrupted(t *testing.T) {
	le, _ := startLab(t, "clone")
	ctx := context.Background()
	clonePreflight(t, le)
	if err := le.Runner.Through(ctx, "create-slots", RunParams{Confirmed: true}); err != nil {
		t.Fatalf("through create-slots: %v", err)
	}
	stopLoad := startLoad(t, le, 100)
	ps := e2eCloneParams(le).Paths()
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		for i := 0; i < 6000; i++ {
			if _, err := os.Stat(ps.Upgrading); err == nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, runErr := le.Runner.Run(cctx, "clone-local", RunParams{Confirmed: true})
	if runErr == nil {
		t.Fatal("clone-local finished although cancelled when the upgrade began")
	}
	if s := le.Store.Snapshot().Step("clone-local").Status; s != state.Interrupted {
		t.Fatalf("clone-local after cancel: %s (%v)", s, runErr)
	}
	firstRedo, err := e2eCloneParams(le).RedoDone()
	if err != nil {
		t.Fatalf("the first start's recovery log: %v", err)
	}
	t.Logf("interrupted: %v; redo done at %s", runErr, firstRedo)

	if out, err := le.Runner.Run(ctx, "clone-local", RunParams{Confirmed: true}); err != nil || out != OutcomeRan {
		t.Fatalf("clone-local again: %s %v", out, err)
	}
	if again, _ := e2eCloneParams(le).RedoDone(); again != firstRedo {
		t.Fatalf("the seed's evidence changed on resume: %s then %s", firstRedo, again)
	}
	t.Logf("resumed: %s", journalLine(t, le, "clone-local from phase"))
	if err := le.Runner.Through(ctx, "wait-catch-up", RunParams{Confirmed: true}); err != nil {
		t.Fatalf("through wait-catch-up: %v", err)
	}
	if res := stopLoad(); res.Errors != 0 {
		t.Fatalf("load: %+v", res)
	}
	drainSlots(t, le)
	v, err := lab.Verify(ctx, le.Info.Dir)
	if err != nil || !v.OK() || v.TablesCompared == 0 {
		t.Fatalf("lab verify: %+v %v", v, err)
	}
	if n := queryOne[int64](t, le.Green, "SELECT coalesce(sum(apply_error_count + sync_error_count), 0) FROM pg_stat_subscription_stats"); n != 0 {
		t.Fatalf("%d apply errors on green", n)
	}
}
