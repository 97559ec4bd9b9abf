package pg

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// A table above twice the piece size is copied in ranges of its heap, on
// every session, in the one snapshot, under writes to it; after the
// subscription made on the slot catches up it is equal on both sides
// (count and hash). Its heap is uneven: a third of it emptied by a DELETE
// and a VACUUM (a bloated middle), and rows whose values live in TOAST at
// its end; the ranges are of equal pages, so the pieces still share it.
func TestSnapshotCopySplitsABigTable(t *testing.T) {
	labtest.Require(t)
	l := newLab(t)
	ctx := context.Background()
	mustExec(t, l.blue, `CREATE TABLE public.split_big (id bigint PRIMARY KEY, pad text NOT NULL)`)
	mustExec(t, l.blue, `ALTER TABLE public.split_big ALTER COLUMN pad SET STORAGE EXTERNAL`)
	mustExec(t, l.blue, `INSERT INTO public.split_big SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, 30000) g`)
	mustExec(t, l.blue, `DELETE FROM public.split_big WHERE id BETWEEN 10001 AND 20000`)
	mustExec(t, l.blue, `VACUUM public.split_big`)
	mustExec(t, l.blue, `INSERT INTO public.split_big SELECT g, repeat(md5(g::text), 200) FROM generate_series(30001, 30300) g`)
	mustExec(t, l.blue, `ALTER TABLE public.split_big ADD COLUMN k int, ADD CONSTRAINT split_k UNIQUE (k) DEFERRABLE INITIALLY DEFERRED`)
	mustExec(t, l.blue, `CREATE INDEX split_pad ON public.split_big (left(pad, 8)) WHERE id % 2 = 0`)
	mustExec(t, l.blue, `CREATE PUBLICATION split FOR TABLE public.split_big, public.ledger`)
	l.schemaToGreen(t)

	tables, err := SnapshotTables(ctx, l.blue, "split")
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 || tables[0].Rel.Name != "split_big" || tables[0].Pages == 0 {
		t.Fatalf("tables read on blue: %+v", tables)
	}
	big := tables[0]
	p := SnapshotCopyParams{Publication: "split", Slot: "split", Tables: tables, Jobs: 3, PieceBytes: big.Bytes / 8}
	// The split table's indexes are built after the data: its primary
	// key, a deferrable unique constraint, an expression index with a
	// predicate; ledger's are kept (below the size given).
	if p.Deferred, err = DeferrableIndexes(ctx, l.green, "split", tables, big.Bytes/2); err != nil {
		t.Fatal(err)
	}
	if got := deferredNames(p.Deferred, 5); got != "public.split_big_pkey, public.split_k, public.split_pad" {
		t.Fatalf("indexes built after the data: %s", got)
	}
	pieces := p.Pieces()
	var of []Piece
	for _, c := range pieces {
		if c.Table.Rel == big.Rel {
			of = append(of, c)
		}
	}
	if len(of) != 8 || of[0].From != 0 || of[len(of)-1].To != 0 || p.Sessions() != 3 {
		t.Fatalf("%s (%d pages, %s) split into %+v on %d sessions, want 8 ranges from page 0 to the end on 3", big.Rel, big.Pages, Bytes(big.Bytes), of, p.Sessions())
	}
	for k := 1; k < len(of); k++ {
		if of[k].From != of[k-1].To || of[k].K != k+1 {
			t.Fatalf("pieces %d and %d do not meet: %+v", k, k+1, of)
		}
	}
	var lines []string
	for _, s := range p.Statements() {
		lines = append(lines, s.String()+"  -- "+s.Note)
	}
	plan := strings.Join(lines, "\n")
	for _, want := range []string{`ctid >= '(0,0)'::tid AND ctid < '(`, "piece 8 of 8",
		`ALTER TABLE "public"."split_big" DROP CONSTRAINT "split_big_pkey"`, `DROP INDEX "public"."split_pad"`,
		`ALTER TABLE "public"."split_big" ADD CONSTRAINT "split_k" UNIQUE USING INDEX "split_k" DEFERRABLE INITIALLY DEFERRED`} {
		if !strings.Contains(plan, want) {
			t.Errorf("the plan does not show %s:\n%s", want, plan)
		}
	}

	// Writes all along, to the split table.
	stopWrites := writeAlong(t, l.blue, `WITH i AS (INSERT INTO public.split_big VALUES (100000 + $1, 'new') RETURNING 1)
UPDATE public.split_big SET pad = pad || 'x' WHERE id = $1 % 30000 + 1`)

	var mu sync.Mutex
	streamed := map[string]int64{}
	p.Progress = func(pr SnapshotCopyProgress) {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range pr.InFlight {
			streamed[f.Piece] = max(streamed[f.Piece], f.Streamed)
		}
		if pr.TablesDone > 2 || pr.BytesDone > pr.BytesTotal {
			t.Errorf("progress %+v", pr)
		}
	}
	var tablesDone atomic.Int64
	p.AfterTable = func(context.Context, Rel) { tablesDone.Add(1) }
	lsn, err := p.Exec(ctx, l.blue, l.green)
	if err != nil {
		t.Fatal(err)
	}
	if n := tablesDone.Load(); n != 2 {
		t.Errorf("told of %d tables done, want 2 (a split table once)", n)
	}
	sameIndexes(t, l, "split_big")
	if err := CreateSubscription(ctx, l.green, SubscriptionParams{Name: "split", Publication: "split", Slot: "split", Conninfo: l.subscriptionConninfo()}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, l.green, "ALTER SUBSCRIPTION split ENABLE")
	time.Sleep(300 * time.Millisecond)
	writes := stopWrites()
	labtest.WaitSlotDrained(t, l.blue, "split", nil)
	t.Logf("copied at %s in %d pieces on %d sessions; %d writes on blue during the copy and after it", lsn, len(pieces), p.Sessions(), writes)
	l.sameRows(t, "public.split_big", "")
	// The pieces share the table: the ones over the emptied middle hold
	// little, the last one (TOAST) more, and none most of it. Read on blue
	// with each piece's own range.
	var total, most int64
	var each []string
	for _, c := range of {
		sel := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(c.CopyOut().SQL, "COPY ("), " (FORMAT binary)"), ") TO STDOUT")
		var n, bytes int64
		if err := l.blue.QueryRow(ctx, "SELECT count(*), coalesce(sum(pg_column_size(s.*)), 0)::bigint FROM ("+sel+") s").Scan(&n, &bytes); err != nil {
			t.Fatal(err)
		}
		total += bytes
		most = max(most, bytes)
		each = append(each, fmt.Sprintf("%s %d rows %s", c.Name(), n, Bytes(bytes)))
	}
	mu.Lock()
	seen := len(streamed)
	mu.Unlock()
	t.Logf("pieces now: %s; %d pieces seen in flight", strings.Join(each, "; "), seen)
	if most*2 > total || seen < 2 {
		t.Errorf("one piece holds %d of %d bytes, or fewer than 2 pieces seen in flight (%d): the split is not useful", most, total, seen)
	}
}

// sameIndexes fails t unless green's indexes and constraints of table are
// blue's, and nothing of the program's is left on green.
func sameIndexes(t *testing.T, l *testLab, table string) {
	t.Helper()
	ctx := context.Background()
	q := `SELECT coalesce(string_agg(d, E'\n' ORDER BY d), '') FROM (
  SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1
  UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = format('public.%I', $1)::regclass
  UNION ALL SELECT 'replica identity ' || relreplident::text FROM pg_class WHERE oid = format('public.%I', $1)::regclass) x`
	var b, g string
	if err := l.blue.QueryRow(ctx, q, table).Scan(&b); err != nil {
		t.Fatal(err)
	}
	if err := l.green.QueryRow(ctx, q, table).Scan(&g); err != nil {
		t.Fatal(err)
	}
	if b != g || !strings.Contains(g, "PRIMARY KEY") {
		t.Errorf("%s's indexes differ:\nblue:\n%s\ngreen:\n%s", table, b, g)
	}
	var left bool
	if err := l.green.QueryRow(ctx, "SELECT to_regnamespace($1) IS NOT NULL", RecorderSchema).Scan(&left); err != nil || left {
		t.Errorf("schema %s left on green (%v)", RecorderSchema, err)
	}
}

// Indexes a copy dropped come back whatever becomes of it: a copy that
// fails builds them again (its tables emptied) before it returns, and
// those a killed copy left recorded are built by the next one, which
// finds them recorded. Until then nothing may subscribe (DeferredLeft).
func TestDeferredIndexesComeBack(t *testing.T) {
	labtest.Require(t)
	l := newLab(t)
	ctx := context.Background()
	mustExec(t, l.blue, `CREATE TABLE public.dix (id bigint PRIMARY KEY, k int NOT NULL, v text)`)
	mustExec(t, l.blue, `CREATE INDEX dix_k ON public.dix (k)`)
	mustExec(t, l.blue, `ALTER TABLE public.dix REPLICA IDENTITY USING INDEX dix_pkey`)
	mustExec(t, l.blue, `INSERT INTO public.dix SELECT g, g % 97, md5(g::text) FROM generate_series(1, 20000) g`)
	mustExec(t, l.blue, `CREATE PUBLICATION dix FOR TABLE public.dix`)
	l.schemaToGreen(t)
	tables, err := SnapshotTables(ctx, l.blue, "dix")
	if err != nil {
		t.Fatal(err)
	}
	deferred := func() []DeferredIndex {
		t.Helper()
		ds, err := DeferrableIndexes(ctx, l.green, "dix", tables, 1)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}

	// A copy refused by green half way: a constraint green has and blue
	// does not.
	mustExec(t, l.green, `ALTER TABLE public.dix ADD CONSTRAINT dix_no CHECK (k < 0) NOT VALID`)
	p := SnapshotCopyParams{Publication: "dix", Slot: "dix", Tables: tables, Jobs: 2, Deferred: deferred()}
	if len(p.Deferred) != 2 {
		t.Fatalf("deferred: %+v", p.Deferred)
	}
	if _, err := p.Exec(ctx, l.blue, l.green); err == nil || strings.Contains(err.Error(), "could not") {
		t.Fatalf("a copy refused by green: %v", err)
	}
	mustExec(t, l.green, `ALTER TABLE public.dix DROP CONSTRAINT dix_no`)
	sameIndexes(t, l, "dix")

	// A copy killed after it dropped them: the record stays.
	ds := deferred()
	c, err := l.green.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = ExecTx(ctx, c.Conn(), deferStmts("dix", ds))
	c.Release()
	if err != nil {
		t.Fatal(err)
	}
	if left, err := DeferredLeft(ctx, l.green); err != nil || left != "public.dix_k, public.dix_pkey" {
		t.Fatalf("left after a killed copy: %q %v", left, err)
	}
	again := deferred()
	if len(again) != 2 || !again[0].Recorded || !again[1].Recorded {
		t.Fatalf("the next copy's deferred indexes: %+v", again)
	}
	p = SnapshotCopyParams{Publication: "dix", Slot: "dix", Tables: tables, Jobs: 2, Deferred: again}
	if _, err := p.Exec(ctx, l.blue, l.green); err != nil {
		t.Fatal(err)
	}
	sameIndexes(t, l, "dix")
	if left, err := DeferredLeft(ctx, l.green); err != nil || left != "" {
		t.Errorf("left after the copy: %q %v", left, err)
	}
	var n int
	if err := l.green.QueryRow(ctx, "SELECT count(*) FROM public.dix").Scan(&n); err != nil || n != 20000 {
		t.Errorf("%d rows on green (%v)", n, err)
	}
}
