package pg

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// A snapshot copy under writes: rows committed before the slot's snapshot
// come with the copy, rows committed after it through the subscription
// made on the slot with copy_data = false, and none twice. The
// publication has every shape the copy reads differently: a partitioned
// table published through its root, a generated column (left to green to
// compute), a row filter (PG15+ blue), a mixed-case name, a foreign key.
// The tables an earlier copy left rows in are emptied first, in one
// statement (the foreign key would stop a TRUNCATE of the parent alone).
func TestSnapshotCopyUnderWrites(t *testing.T) {
	labtest.Require(t)
	l := newLab(t)
	ctx := context.Background()
	mustExec(t, l.blue, `CREATE TABLE public.snap_gen (id bigint PRIMARY KEY, a int NOT NULL, b int GENERATED ALWAYS AS (a * 2) STORED)`)
	mustExec(t, l.blue, `INSERT INTO public.snap_gen (id, a) SELECT g, g FROM generate_series(1, 2000) g`)
	mustExec(t, l.blue, `CREATE TABLE public.snap_filtered (id bigint PRIMARY KEY, keep bool NOT NULL)`)
	mustExec(t, l.blue, `INSERT INTO public.snap_filtered SELECT g, g % 2 = 0 FROM generate_series(1, 1000) g`)
	mustExec(t, l.blue, `CREATE TABLE public.snap_parent (id int PRIMARY KEY)`)
	mustExec(t, l.blue, `CREATE TABLE public.snap_child (id int PRIMARY KEY, parent int NOT NULL REFERENCES public.snap_parent)`)
	mustExec(t, l.blue, `INSERT INTO public.snap_parent SELECT generate_series(1, 100)`)
	mustExec(t, l.blue, `INSERT INTO public.snap_child SELECT g, g % 100 + 1 FROM generate_series(1, 500) g`)
	mustExec(t, l.blue, `CREATE PUBLICATION snap FOR TABLE public.ledger, public.snap_gen, public.measurements, public."OrderItems", public.snap_filtered WHERE (keep), public.snap_parent, public.snap_child WITH (publish_via_partition_root = true)`)
	l.schemaToGreen(t)
	mustExec(t, l.green, `INSERT INTO public."OrderItems" ("OrderId", sku, qty) VALUES (-1, 'left by an earlier copy', 1)`)
	mustExec(t, l.green, `INSERT INTO public.snap_parent VALUES (1)`)

	tables, err := SnapshotTables(ctx, l.blue, "snap")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]SnapshotTable{}
	for i, tb := range tables {
		byName[tb.Rel.Name] = tb
		if i > 0 && tb.Bytes > tables[i-1].Bytes {
			t.Errorf("not largest first: %s (%d) after %s (%d)", tb.Rel, tb.Bytes, tables[i-1].Rel, tables[i-1].Bytes)
		}
	}
	if len(tables) != 7 || !byName["measurements"].Partitioned || byName["snap_filtered"].Filter == "" ||
		strings.Join(byName["snap_gen"].Columns, ",") != "id,a" {
		t.Fatalf("tables read on blue: %+v", tables)
	}
	nonEmpty, err := NonEmptyTables(ctx, l.green, tables)
	if err != nil {
		t.Fatal(err)
	}
	if len(nonEmpty) != 2 {
		t.Fatalf("non-empty tables on green: %v", nonEmpty)
	}
	if missing, err := MissingOnGreen(ctx, l.green, tables); err != nil || len(missing) != 0 {
		t.Fatalf("missing on green: %v %v", missing, err)
	}

	// Writes all along, to a table the copy reads and to one it has read.
	stopWrites := writeAlong(t, l.blue, `WITH i AS (INSERT INTO public.ledger (client, n, payload) VALUES (99, $1, 'snap') RETURNING 1)
UPDATE public.snap_gen SET a = a + 1 WHERE id = $1 % 2000 + 1`)

	var slotAt string
	var seen atomic.Int64
	var once sync.Once
	var mid SyncSample
	var midErr error
	src := SyncSources{Subscriptions: []string{"snap"}, Slots: map[string]string{"snap": "snap"}, Snapshot: []string{"snap"}}
	p := SnapshotCopyParams{Publication: "snap", Slot: "snap", Tables: tables, Jobs: 2, Truncate: true,
		OnSlot: func(lsn string) { slotAt = lsn },
		Progress: func(pr SnapshotCopyProgress) {
			if pr.TablesTotal != 7 || pr.BytesDone > pr.BytesTotal {
				t.Errorf("progress %+v", pr)
			}
			seen.Add(1)
		},
		// Writes land between the snapshot and the end of the copy; the
		// progress is read from the servers alone once, mid-copy.
		AfterTable: func(ctx context.Context, _ Rel) {
			once.Do(func() { mid, midErr = ReadSyncSample(ctx, l.green, l.blue, src) })
			time.Sleep(100 * time.Millisecond)
		},
	}
	lsn, err := p.Exec(ctx, l.blue, l.green)
	if err != nil {
		t.Fatal(err)
	}
	if lsn != slotAt || seen.Load() < 7 {
		t.Errorf("consistent point %s, told %s; progress told %d times", lsn, slotAt, seen.Load())
	}
	var tr SyncTracker
	pr := tr.Add(mid)
	if midErr != nil || len(mid.Subscriptions) != 1 || !mid.Subscriptions[0].Snapshot || pr.Phase != "copying" ||
		pr.TablesTotal != 7 || pr.TablesDone < 1 || pr.TablesDone == 7 || pr.BytesDone <= 0 || pr.BytesDone > pr.BytesTotal {
		t.Errorf("the copy read from the servers mid-way: %+v, %v", pr, midErr)
	}
	t.Logf("mid-copy, from the servers: %s", pr.Line())
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		after, err := ReadSyncSample(ctx, l.green, l.blue, src)
		if err != nil {
			t.Fatal(err)
		}
		if len(after.Subscriptions) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a copy still read as running after it ended: %+v", after)
		}
	}
	if err := CreateSubscription(ctx, l.green, SubscriptionParams{Name: "snap", Publication: "snap", Slot: "snap", Conninfo: l.subscriptionConninfo()}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, l.green, "ALTER SUBSCRIPTION snap ENABLE")
	time.Sleep(300 * time.Millisecond)
	writes := stopWrites()
	labtest.WaitSlotDrained(t, l.blue, "snap", nil)
	t.Logf("%d writes on blue during the copy and after it", writes)

	for _, c := range []struct{ table, blue string }{
		{`public.ledger`, ""},
		{`public.snap_gen`, ""},
		{`public.measurements`, ""},
		{`public."OrderItems"`, ""},
		{`public.snap_filtered`, " WHERE keep"},
		{`public.snap_parent`, ""},
		{`public.snap_child`, ""},
	} {
		l.sameRows(t, c.table, c.blue)
	}
}

// A table green lacks is found before any slot is made. A copy that
// fails all the same drops the slot it made (nothing would consume it,
// and it would hold blue's WAL) and empties green's tables, so the next
// run starts clean.
func TestSnapshotCopyFailureDropsItsSlot(t *testing.T) {
	labtest.Require(t)
	l := newLab(t)
	ctx := context.Background()
	mustExec(t, l.blue, `INSERT INTO public.ledger (client, n) SELECT 1, g FROM generate_series(1, 10) g`)
	mustExec(t, l.blue, `CREATE PUBLICATION snap FOR TABLE public.ledger, public.accounts`)
	l.schemaToGreen(t)
	mustExec(t, l.green, `ALTER TABLE public.accounts RENAME TO accounts_elsewhere`)
	tables, err := SnapshotTables(ctx, l.blue, "snap")
	if err != nil {
		t.Fatal(err)
	}
	missing, err := MissingOnGreen(ctx, l.green, tables)
	if err != nil || strings.Join(missing, ",") != `table "public"."accounts"` {
		t.Errorf("missing on green: %q %v", missing, err)
	}
	var slotAt string
	_, err = SnapshotCopyParams{Publication: "snap", Slot: "snap", Tables: tables, Jobs: 1,
		OnSlot: func(lsn string) { slotAt = lsn }}.Exec(ctx, l.blue, l.green)
	if err == nil || !strings.Contains(err.Error(), `copy "public"."accounts"`) || !strings.Contains(err.Error(), "could not be emptied") {
		t.Fatalf("copy into a missing table: %v", err)
	}
	var slots int
	if err := l.blue.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'snap'").Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slotAt == "" || slots != 0 {
		t.Errorf("slot made at %q; %d left on blue after the failure", slotAt, slots)
	}
	// With the table back, a copy that fails half way (the largest table,
	// accounts, copied first; then ledger refused by a constraint green
	// has and blue does not) leaves green empty.
	mustExec(t, l.green, `ALTER TABLE public.accounts_elsewhere RENAME TO accounts`)
	mustExec(t, l.green, `ALTER TABLE public.ledger ADD CONSTRAINT pgbg_no CHECK (client < -1) NOT VALID`)
	done := 0
	_, err = SnapshotCopyParams{Publication: "snap", Slot: "snap", Tables: tables, Jobs: 1,
		Progress: func(pr SnapshotCopyProgress) { done = pr.TablesDone }}.Exec(ctx, l.blue, l.green)
	if err == nil || strings.Contains(err.Error(), "could not") || done != 1 {
		t.Fatalf("copy refused by green after %d tables: %v", done, err)
	}
	var rows int
	if err := l.green.QueryRow(ctx, "SELECT (SELECT count(*) FROM public.ledger) + (SELECT count(*) FROM public.accounts)").Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d rows left on green after the failure (%v)", rows, err)
	}

	// A role without REPLICATION gets a line that says so.
	mustExec(t, l.blue, "CREATE ROLE snap_norepl LOGIN PASSWORD 'x'")
	weak := mustPool(t, strings.Replace(l.info.Blue.Conninfo, "user=postgres", "user=snap_norepl password=x", 1))
	_, err = SnapshotCopyParams{Publication: "snap", Slot: "snap", Tables: tables, Jobs: 1}.Exec(ctx, weak, l.green)
	if err == nil || !strings.Contains(err.Error(), "its role needs REPLICATION") {
		t.Errorf("a copy by a role without REPLICATION: %v", err)
	}
}
