package steps

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// cleanupSteps are the cleanup steps that drop replication objects, in order.
var cleanupSteps = []string{"drop-subscriptions", "drop-publications", "revert-replica-identity"}

// replicationObjects lists every slot, publication and subscription on one
// server, "" when there is none.
func replicationObjects(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	return queryOne[string](t, pool, `
SELECT concat_ws('; ',
  (SELECT 'slots: ' || string_agg(slot_name::text, ',' ORDER BY slot_name) FROM pg_replication_slots),
  (SELECT 'publications: ' || string_agg(pubname::text, ',' ORDER BY pubname) FROM pg_publication),
  (SELECT 'subscriptions: ' || string_agg(subname::text, ',' ORDER BY subname) FROM pg_subscription))`)
}

// lineLog collects the runner's output lines.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

// grep returns the lines containing s.
func (g *lineLog) grep(s string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, l := range g.lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// captureLines makes the runner stream its lines into a lineLog (shown with -v).
func captureLines(t *testing.T, r *Runner) *lineLog {
	g := &lineLog{}
	out := make(chan Line, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l := range out {
			g.mu.Lock()
			g.lines = append(g.lines, l.Level+" "+l.Step+": "+l.Text)
			g.mu.Unlock()
			if testing.Verbose() {
				t.Logf("%-5s %s: %s", l.Level, l.Step, l.Text)
			}
		}
	}()
	r.Out = out
	t.Cleanup(func() { r.Out = nil; close(out); <-done })
	return g
}

// resetSteps puts steps back to pending, as if their records were lost.
func resetSteps(t *testing.T, store *state.Store, ids ...string) {
	t.Helper()
	if err := store.Update(func(s *state.State) error {
		for _, id := range ids {
			s.EditStep(id).Status = state.Pending
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// runShown runs a step after its dry run and fails the test for any
// statement it ran that the dry run did not show.
func (l *cutoverLab) runShown(t *testing.T, id string) Outcome {
	t.Helper()
	journal := filepath.Join(l.info.Dir, "pgbluegreen.state.journal.jsonl")
	dry := dryRunOf(t, l.runner.Config, l.store.Path(), id, RunParams{Confirmed: true}, nil)
	_, offset := journalEntries(t, journal, 0)
	out := l.run(t, id, "")
	missing, checked := notShown(t, journal, offset, id, dry)
	for _, m := range missing {
		t.Errorf("%s ran what its dry run did not show: %s", id, m)
	}
	t.Logf("%s: %d statements, each shown by its dry run", id, checked)
	return out
}

// TestCleanupAfterCutover: the copy strategy, a cutover through PgBouncer
// (which sets up the reverse feed for a rollback: subscription on blue,
// slot and publication on green), then the cleanup steps. They refuse while
// PgBouncer is paused and while a cutover looks interrupted; then they leave
// no slot, publication or subscription on blue or green (a slot left on
// green, now the primary, would keep WAL until its disk fills); writes still
// flow through PgBouncer to green; running them again changes nothing; and
// a reverse subscription blue cannot drop itself (green unreachable from
// it) is detached and its slot dropped on green directly.
func TestCleanupAfterCutover(t *testing.T) {
	testStart := time.Now()
	l := newCutoverLab(t)
	l.catchUp(t)
	ctx := context.Background()
	blue, green := l.runner.Blue, l.runner.Green
	logs := captureLines(t, l.runner)

	res := l.loadWindow(t, 200, time.Second, time.Second, func() {
		if out := l.run(t, "cutover", ""); out != OutcomeRan {
			t.Fatalf("cutover: %s", out)
		}
	})
	if res.Errors != 0 {
		t.Fatalf("clients saw %d errors during the cutover (%s)", res.Errors, res.LastError)
	}
	l.waitDrained(t, true, reverseReplication)
	l.verify(t)
	t.Logf("lab, catch-up and cutover: %s", time.Since(testStart).Round(time.Millisecond))
	// Rollback-ready: the reverse feed is there on both sides.
	if got := replicationObjects(t, green); !strings.Contains(got, "slots: "+reverseReplication) || !strings.Contains(got, "publications: "+reverseReplication) {
		t.Fatalf("green after the cutover: %s, want the reverse slot and publication", got)
	}
	if got := replicationObjects(t, blue); !strings.Contains(got, "subscriptions: "+reverseReplication) {
		t.Fatalf("blue after the cutover: %s, want the reverse subscription", got)
	}
	beforeBlue, beforeGreen := replicationObjects(t, blue), replicationObjects(t, green)

	t.Run("refused while PgBouncer is paused", func(t *testing.T) {
		b := l.runner.Config.Cutover.PgBouncer[0]
		c, err := pg.ConnectConsole(ctx, b.Name, b.AdminConninfo, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Pause(ctx, b.Database); err != nil {
			t.Fatal(err)
		}
		_, subErr := l.runner.Run(ctx, "drop-subscriptions", RunParams{Confirmed: true})
		_, pubErr := l.runner.Run(ctx, "drop-publications", RunParams{Confirmed: true, Override: "test: its guard"})
		if err := c.Resume(ctx, b.Database); err != nil {
			t.Fatal(err)
		}
		if !IsRefused(subErr) || !strings.Contains(subErr.Error(), "paused") {
			t.Errorf("drop-subscriptions with PgBouncer paused: %v, want a refusal naming the pause", subErr)
		}
		if !IsRefused(pubErr) {
			t.Errorf("drop-publications with PgBouncer paused: %v, want a refusal", pubErr)
		}
	})

	t.Run("refused while a cutover looks interrupted", func(t *testing.T) {
		// The cutover's record lost and PgBouncer's ini still on blue: the
		// reverse feed is on but the switch did not happen.
		doneAt, _ := l.store.Snapshot().Get(CutoverDoneAtKey)
		if err := l.store.Update(func(s *state.State) error { delete(s.Values, CutoverDoneAtKey); return nil }); err != nil {
			t.Fatal(err)
		}
		blueEnd, err := pg.EndpointOf(l.runner.Config.Blue.Conninfo)
		if err != nil {
			t.Fatal(err)
		}
		bk, err := pg.RepointIni(l.info.PgBouncer.Ini, lab.AppDB, blueEnd)
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.runner.Run(ctx, "drop-subscriptions", RunParams{Confirmed: true})
		if rerr := bk.Restore(); rerr != nil {
			t.Fatal(rerr)
		}
		if uerr := l.store.Update(func(s *state.State) error { s.Set(CutoverDoneAtKey, doneAt, "test"); return nil }); uerr != nil {
			t.Fatal(uerr)
		}
		if !IsRefused(err) || !strings.Contains(err.Error(), "interrupted") {
			t.Errorf("drop-subscriptions after an interrupted cutover: %v, want a refusal naming it", err)
		}
	})

	if b, g := replicationObjects(t, blue), replicationObjects(t, green); b != beforeBlue || g != beforeGreen {
		t.Fatalf("a refused cleanup changed things: blue %q -> %q, green %q -> %q", beforeBlue, b, beforeGreen, g)
	}

	start := time.Now()
	for _, id := range cleanupSteps {
		if out := l.runShown(t, id); out != OutcomeRan {
			t.Errorf("%s: %s", id, out)
		}
	}
	t.Logf("cleanup after the cutover: %s", time.Since(start).Round(time.Millisecond))
	assertClean := func(t *testing.T, when string) {
		t.Helper()
		if got := replicationObjects(t, blue); got != "" {
			t.Errorf("blue %s: %s", when, got)
		}
		if got := replicationObjects(t, green); got != "" {
			t.Errorf("green %s: %s", when, got)
		}
		for _, id := range cleanupSteps {
			s, _ := l.runner.Find(id)
			if res, err := s.Check(ctx, l.runner.Env(id)); err != nil || !res.Done {
				t.Errorf("%s check %s: %+v %v", id, when, res, err)
			}
		}
	}
	assertClean(t, "after cleanup")
	if got := logs.grep("cannot drop the slot on green"); len(got) != 0 {
		t.Errorf("blue reaches green, yet the fallback ran: %q", got)
	}

	t.Run("writes flow through PgBouncer to green", func(t *testing.T) {
		const ledger = "SELECT count(*) FROM public.ledger"
		b0, g0 := queryOne[int64](t, blue, ledger), queryOne[int64](t, green, ledger)
		res, err := lab.Load(ctx, lab.LoadParams{Dir: l.info.Dir, Rate: 50, Duration: time.Second, Clients: 2})
		if err != nil {
			t.Fatal(err)
		}
		b1, g1 := queryOne[int64](t, blue, ledger), queryOne[int64](t, green, ledger)
		if res.Errors != 0 || res.Committed == 0 {
			t.Errorf("load through PgBouncer after cleanup: %+v", res)
		}
		// The load writes to every database; the ledger counted is app's.
		if app := res.Databases[lab.AppDB]; app == 0 || g1-g0 < app || b1 != b0 {
			t.Errorf("ledger rows of app: green %d -> %d, blue %d -> %d, for %d commits there; want them all on green only", g0, g1, b0, b1, app)
		}
	})

	t.Run("running cleanup again changes nothing", func(t *testing.T) {
		for _, id := range cleanupSteps {
			if out, err := l.runner.Run(ctx, id, RunParams{Confirmed: true}); err != nil || out != OutcomeAlreadyDone {
				t.Errorf("%s again: %s %v", id, out, err)
			}
		}
		// With their records lost, each check finds the work done.
		resetSteps(t, l.store, cleanupSteps...)
		for _, id := range cleanupSteps {
			if out, err := l.runner.Run(ctx, id, RunParams{Confirmed: true}); err != nil || out != OutcomeFoundDone {
				t.Errorf("%s with its record lost: %s %v", id, out, err)
			}
		}
		// And each Run itself, called again, is harmless.
		for _, id := range cleanupSteps {
			s, _ := l.runner.Find(id)
			if err := s.Run(ctx, l.runner.Env(id)); err != nil {
				t.Errorf("%s's Run again: %v", id, err)
			}
		}
		assertClean(t, "after running cleanup again")
	})

	t.Run("a reverse subscription blue cannot drop itself", func(t *testing.T) {
		// As if blue could not reach green: the subscription points at a
		// closed port, so DROP SUBSCRIPTION cannot drop the slot on green.
		for _, s := range []string{
			"CREATE PUBLICATION " + pg.Ident(reverseReplication) + " FOR ALL TABLES",
			"SELECT pg_create_logical_replication_slot('" + reverseReplication + "', 'pgoutput')",
		} {
			if _, err := green.Exec(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := blue.Exec(ctx, "CREATE SUBSCRIPTION "+pg.Ident(reverseReplication)+
			" CONNECTION 'host=127.0.0.1 port=1 dbname=app user=nobody connect_timeout=2' PUBLICATION "+pg.Ident(reverseReplication)+
			" WITH (connect = false)"); err != nil {
			t.Fatal(err)
		}
		if _, err := blue.Exec(ctx, "ALTER SUBSCRIPTION "+pg.Ident(reverseReplication)+" SET (slot_name = "+pg.QuoteLiteral(reverseReplication)+")"); err != nil {
			t.Fatal(err)
		}
		s, _ := l.runner.Find("drop-subscriptions")
		if res, err := s.Check(ctx, l.runner.Env("drop-subscriptions")); err != nil || res.Done || !strings.Contains(res.Detail, "reverse") {
			t.Errorf("drop-subscriptions check with the reverse feed back: %+v %v", res, err)
		}
		resetSteps(t, l.store, "drop-subscriptions", "drop-publications")
		for _, id := range []string{"drop-subscriptions", "drop-publications"} {
			if out := l.runShown(t, id); out != OutcomeRan {
				t.Errorf("%s: %s", id, out)
			}
		}
		assertClean(t, "after dropping an unreachable reverse feed")
		if len(logs.grep("cannot drop the slot on green")) != 1 || len(logs.grep("on green: reverse slot "+reverseReplication+" dropped")) != 1 {
			t.Errorf("the detached path and the drop of the slot on green were not logged once each")
		}
	})
	t.Logf("whole test: %s", time.Since(testStart).Round(time.Millisecond))
}
