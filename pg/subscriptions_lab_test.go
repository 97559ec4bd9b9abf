package pg_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// TestReadSubscriptions subscribes green to a publication on blue and reads
// the subscription back while it is disabled, then enabled and streaming;
// the slot appears in ReadLag with its lag, and the versions read right.
func TestReadSubscriptions(t *testing.T) {
	info := labtest.Start(t, labtest.StartParams{})
	ctx := context.Background()
	blue, err := pg.NewPool(pg.PoolParams{Conninfo: info.Blue.Conninfo, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer blue.Close()
	green, err := pg.NewPool(pg.PoolParams{Conninfo: info.Green.Conninfo, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer green.Close()
	for _, sql := range []string{
		"CREATE TABLE subtest (id int PRIMARY KEY, v text)",
		"CREATE PUBLICATION subtest_pub FOR TABLE subtest",
		"SELECT pg_create_logical_replication_slot('subtest_slot', 'pgoutput')",
		"INSERT INTO subtest SELECT g, 'x' FROM generate_series(1, 100) g",
	} {
		if _, err := blue.Exec(ctx, sql); err != nil {
			t.Fatalf("blue: %s: %v", sql, err)
		}
	}
	if _, err := green.Exec(ctx, "CREATE TABLE subtest (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	// The subscription connects to blue as the lab's superuser; the
	// conninfo has no password (trust on loopback).
	create := "CREATE SUBSCRIPTION subtest_sub CONNECTION '" + strings.ReplaceAll(info.Blue.Conninfo, "'", "''") +
		"' PUBLICATION subtest_pub WITH (create_slot = false, slot_name = 'subtest_slot', enabled = false, copy_data = true)"
	if _, err := green.Exec(ctx, create); err != nil {
		t.Fatalf("green: create subscription: %v", err)
	}
	t.Cleanup(func() {
		_, _ = green.Exec(context.Background(), "DROP SUBSCRIPTION IF EXISTS subtest_sub")
	})

	subs, err := pg.ReadSubscriptions(ctx, green, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 {
		t.Fatalf("got %d subscriptions, want 1: %+v", len(subs), subs)
	}
	s := subs[0]
	if s.Name != "subtest_sub" || s.Enabled || s.WorkerRunning || s.Slot != "subtest_slot" {
		t.Errorf("disabled subscription read as %+v", s)
	}
	if s.Tables != 1 || s.TablesNotReady != 1 || s.ApplyErrors != 0 || s.SyncErrors != 0 {
		t.Errorf("before the sync: tables %d, not ready %d, errors %d/%d; want 1, 1, 0/0", s.Tables, s.TablesNotReady, s.ApplyErrors, s.SyncErrors)
	}

	if _, err := green.Exec(ctx, "ALTER SUBSCRIPTION subtest_sub ENABLE"); err != nil {
		t.Fatal(err)
	}
	// Wait (bounded by the test's own deadline, not a timed assertion) for
	// the initial sync and the apply worker.
	deadline := time.Now().Add(60 * time.Second)
	for {
		subs, err = pg.ReadSubscriptions(ctx, green, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		s = subs[0]
		if s.Enabled && s.WorkerRunning && s.TablesNotReady == 0 && s.ReceivedLSN != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription never became streaming: %+v", s)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var n int
	if err := green.QueryRow(ctx, "SELECT count(*) FROM subtest").Scan(&n); err != nil || n != 100 {
		t.Errorf("green has %d rows (%v), want 100", n, err)
	}

	sample, err := pg.ReadLag(ctx, blue, "blue", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, sl := range sample.Slots {
		if sl.Slot == "subtest_slot" {
			found = true
			if !sl.Active || sl.WALStatus == "" || sl.CurrentLSN == "" {
				t.Errorf("slot read as %+v", sl)
			}
		}
	}
	if !found {
		t.Errorf("slot subtest_slot not in the lag sample %+v", sample)
	}

	// PG15's form of the query (no leader_pid) must parse too: blue has no subscription.
	if subs, err := pg.ReadSubscriptions(ctx, blue, 5*time.Second); err != nil || len(subs) != 0 {
		t.Errorf("subscriptions on blue (15): %+v, %v; want none", subs, err)
	}

	bv, err := pg.ServerVersion(ctx, blue, 5*time.Second)
	if err != nil || !strings.HasPrefix(bv, "15.") || strings.Contains(bv, " ") {
		t.Errorf("blue version %q (%v), want 15.x", bv, err)
	}
	gv, err := pg.ServerVersion(ctx, green, 5*time.Second)
	if err != nil || !strings.HasPrefix(gv, "17.") {
		t.Errorf("green version %q (%v), want 17.x", gv, err)
	}
}

// BenchmarkReadLag times one lag poll (pg.ReadLag, the gauge's single query
// per tick) on the lab's blue with one logical slot that nobody consumes
// and some WAL written behind it, so the sample has real figures to
// compute. DESIGN's target: under 5 ms per poll on the lab.
func BenchmarkReadLag(b *testing.B) {
	info := labtest.Start(b, labtest.StartParams{})
	ctx := context.Background()
	blue, err := pg.NewPool(pg.PoolParams{Conninfo: info.Blue.Conninfo, MaxConns: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer blue.Close()
	for _, sql := range []string{
		"SELECT pg_create_logical_replication_slot('bench_lag_slot', 'pgoutput')",
		"CREATE TABLE bench_lag (id int PRIMARY KEY, v text)",
		"INSERT INTO bench_lag SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g",
	} {
		if _, err := blue.Exec(ctx, sql); err != nil {
			b.Fatalf("blue: %s: %v", sql, err)
		}
	}
	var s pg.LagSample
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if s, err = pg.ReadLag(ctx, blue, "blue", 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for _, sl := range s.Slots {
		if sl.Slot == "bench_lag_slot" {
			if sl.BehindBytes <= 0 {
				b.Fatalf("slot %s read %d bytes behind after the inserts", sl.Slot, sl.BehindBytes)
			}
			b.ReportMetric(float64(sl.BehindBytes), "behind_bytes")
			return
		}
	}
	b.Fatalf("bench_lag_slot not in the sample %+v", s)
}
