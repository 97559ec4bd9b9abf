package pg

import (
	"strings"
	"testing"
	"time"
)

func TestPlanSyncWorkers(t *testing.T) {
	lab := SyncSettings{MaxSyncWorkersPerSubscription: 2, MaxLogicalReplicationWorkers: 8, MaxWorkerProcesses: 16, Superuser: true}
	p := PlanSyncWorkers(SyncWorkerInputs{GreenCores: 2, Green: lab, Subscriptions: 1, BlueFreeSlots: 18, BlueFreeWALSenders: 20})
	if p.PerSubscription != 6 || !p.Raise || len(p.Limits) != 0 {
		t.Fatalf("2 cores, one subscription: %+v", p)
	}
	// Two subscriptions share green's 8 worker slots: 2 apply workers, 3 syncs each.
	p = PlanSyncWorkers(SyncWorkerInputs{GreenCores: 8, Green: lab, Subscriptions: 2, BlueFreeSlots: -1, BlueFreeWALSenders: -1})
	if p.PerSubscription != 3 || !strings.Contains(p.Why, "max_logical_replication_workers = 8") {
		t.Fatalf("8 cores, two subscriptions: %+v", p)
	}
	// One of them copies a single table: the other takes the rest, 2 + 1 + 5 = 8.
	p = PlanSyncWorkers(SyncWorkerInputs{GreenCores: 8, Green: lab, Subscriptions: 2, Tables: []int{1, 475}, BlueFreeSlots: -1, BlueFreeWALSenders: -1})
	if p.PerSubscription != 5 {
		t.Fatalf("a one-table subscription and a 475-table one: %+v", p)
	}
	// Blue's spare slots bound it too; never below one.
	p = PlanSyncWorkers(SyncWorkerInputs{GreenCores: 4, Green: lab, Subscriptions: 1, BlueFreeSlots: 0, BlueFreeWALSenders: 10})
	if p.PerSubscription != 1 || p.Raise {
		t.Fatalf("no spare slot on blue: %+v", p)
	}
}

func TestTableSyncSlotOf(t *testing.T) {
	if oid, ok := TableSyncSlotOf("pg_16399_sync_16385_7441234567890123456"); !ok || oid != 16399 {
		t.Fatalf("got %d, %t", oid, ok)
	}
	if _, ok := TableSyncSlotOf("pgbg_all"); ok {
		t.Fatal("a subscription's slot taken for a table sync's")
	}
}

func TestSyncTrackerPhasesRateAndETA(t *testing.T) {
	var tr SyncTracker
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sample := func(at time.Duration, done int64, ready int, enabled bool) SyncSample {
		return SyncSample{At: t0.Add(at), Subscriptions: []SubscriptionSync{{Name: "s", Enabled: enabled, WorkerRunning: enabled,
			TablesDone: ready, TablesTotal: 2, BytesDone: done, BytesTotal: 1000, LagSeconds: -1,
			InFlight: []TableCopy{{Table: "public.big", BytesDone: done, BytesTotal: 1000}}}}}
	}
	if p := tr.Add(sample(0, 0, 0, false)); p.Phase != "not started" {
		t.Fatalf("disabled: %+v", p)
	}
	tr = SyncTracker{}
	tr.Add(sample(0, 0, 1, true))
	p := tr.Add(sample(10*time.Second, 400, 1, true))
	if p.Phase != "copying" || p.BytesPerSec != 40 || p.ETASeconds != 15 {
		t.Fatalf("copying: %+v", p)
	}
	if l := p.Line(); !strings.Contains(l, "copying: 1/2 tables, 400 B of 1000 B (40%), 40 B/s, ETA 15s; in flight: public.big 400 B of 1000 B") {
		t.Fatalf("line %q", l)
	}
	p = tr.Add(sample(20*time.Second, 1000, 2, true))
	if p.Phase != "streaming" || p.ETASeconds != -1 || !strings.HasPrefix(p.Line(), "streaming: all 2 tables copied; lag 0 B") {
		t.Fatalf("streaming: %+v %q", p, p.Line())
	}
}

func TestDedicatedPublicationAdvice(t *testing.T) {
	big := []TableSize{{Table: Rel{"public", "pgbench_accounts"}, Bytes: 1_340_000_000}}
	if a := DedicatedPublicationAdvice(big, 1_380_000_000, 476); !strings.Contains(a, `"public"."pgbench_accounts" holds 97% of the 1.3 GB`) || !strings.Contains(a, "475 other tables") {
		t.Fatalf("advice %q", a)
	}
	for _, c := range []struct {
		total  int64
		tables int
	}{{500_000_000, 476}, {1_380_000_000, 3}, {10_000_000_000, 476}} {
		if a := DedicatedPublicationAdvice(big, c.total, c.tables); a != "" {
			t.Errorf("total %d, %d tables: advice %q", c.total, c.tables, a)
		}
	}
}

// One size convention everywhere, pg_size_pretty's: what the screen says
// matches what psql says of the same table.
func TestBytesAsPgSizePretty(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 kB", 98_304: "96.0 kB", 145_752_064: "139 MB",
		2_690_000_000: "2.5 GB", -2048: "-2.0 kB",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
