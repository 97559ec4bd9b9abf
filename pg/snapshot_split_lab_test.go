package pg

import (
	"context"
	"fmt"
	"sort"
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

// A copy stopped half way goes on in the same snapshot, held by another
// session (as pgbluegreen hold-snapshot holds it): what committed on
// green is recorded with it and not copied again, the rest is; after the
// subscription catches up the table is equal on both sides.
func TestSnapshotCopyGoesOn(t *testing.T) {
	labtest.Require(t)
	l := newLab(t)
	ctx := context.Background()
	mustExec(t, l.blue, `CREATE TABLE public.on_big (id bigint PRIMARY KEY, pad text NOT NULL)`)
	mustExec(t, l.blue, `INSERT INTO public.on_big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 40000) g`)
	mustExec(t, l.blue, `CREATE PUBLICATION goon FOR TABLE public.on_big, public.ledger`)
	l.schemaToGreen(t)
	tables, err := SnapshotTables(ctx, l.blue, "goon")
	if err != nil {
		t.Fatal(err)
	}
	held, err := HoldSnapshot(ctx, &l.blue.Config().ConnConfig.Config, "goon")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Conn.Close(ctx)
	stopWrites := writeAlong(t, l.blue, `WITH i AS (INSERT INTO public.on_big VALUES (100000 + $1, 'new') RETURNING 1)
UPDATE public.on_big SET pad = pad || 'x' WHERE id = $1 % 40000 + 1`)

	// The first run stops once two pieces are in: the others roll back.
	p := SnapshotCopyParams{Publication: "goon", Slot: "goon", Tables: tables, Jobs: 2, PieceBytes: tables[0].Bytes / 6,
		Snapshot: held.Snapshot, SlotLSN: held.LSN, Keep: true}
	first := p.Pieces()
	stop, cancel := context.WithCancel(ctx)
	p.Progress = func(pr SnapshotCopyProgress) {
		if pr.BytesDone > 0 && pr.TablesDone == 0 && len(pr.InFlight) == 0 || pr.BytesDone >= 2*first[0].Bytes {
			cancel()
		}
	}
	if _, err := p.Exec(stop, l.blue, l.green); err == nil {
		t.Fatal("the first run was not stopped")
	}
	lives, err := SnapshotLives(ctx, l.blue, held.Snapshot)
	if err != nil || !lives {
		t.Fatalf("the held snapshot is gone after the first run stopped: %v", err)
	}
	done, err := CopiedRanges(ctx, l.green, "goon", held.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	var rowsIn int64
	if err := l.green.QueryRow(ctx, "SELECT count(*) FROM public.on_big").Scan(&rowsIn); err != nil {
		t.Fatal(err)
	}
	if len(done) == 0 || len(done) >= len(first) || rowsIn == 0 {
		t.Fatalf("after the stop: %d of %d pieces recorded, %d rows on green; want some of them, with their rows", len(done), len(first), rowsIn)
	}

	// The second run copies what is not recorded, in the same snapshot.
	p.Progress, p.Done = nil, done
	left := p.Pieces()
	covered(t, tables[0].Rel, done, left)
	lsn, err := p.Exec(ctx, l.blue, l.green)
	if err != nil {
		t.Fatal(err)
	}
	if lsn != held.LSN {
		t.Errorf("copy returned %s, want the slot's %s", lsn, held.LSN)
	}
	held.Conn.Close(ctx)
	if err := CreateSubscription(ctx, l.green, SubscriptionParams{Name: "goon", Publication: "goon", Slot: "goon", Conninfo: l.subscriptionConninfo()}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, l.green, "ALTER SUBSCRIPTION goon ENABLE")
	time.Sleep(300 * time.Millisecond)
	writes := stopWrites()
	labtest.WaitSlotDrained(t, l.blue, "goon", nil)
	t.Logf("%d of %d pieces done by the first run (%d rows), %d by the second; %d writes along", len(done), len(first), rowsIn, len(left), writes)
	l.sameRows(t, "public.on_big", "")
	var recorded bool
	if err := l.green.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", CopiedTable).Scan(&recorded); err != nil || recorded {
		t.Errorf("%s left on green after the copy (%v)", CopiedTable, err)
	}
}

// covered fails t unless table's done ranges and the pieces left cover
// its heap from page 0 to its end, each page once.
func covered(t *testing.T, table Rel, done []CopiedRange, left []Piece) {
	t.Helper()
	all := append([]CopiedRange(nil), done...)
	for _, c := range left {
		all = append(all, CopiedRange{Rel: c.Table.Rel, From: c.From, To: c.To})
	}
	var rs []CopiedRange
	for _, r := range all {
		if r.Rel == table {
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].From < rs[j].From })
	at := int64(0)
	for i, r := range rs {
		if r.From != at || (r.To == 0) != (i == len(rs)-1) {
			t.Fatalf("%s: done %+v and left %+v do not cover its heap once from page 0 to its end", table, done, left)
		}
		at = r.To
	}
}

func TestGaps(t *testing.T) {
	tbl := SnapshotTable{Rel: Rel{Schema: "s", Name: "t"}, Pages: 100, Bytes: 100 << 13}
	r := func(from, to int64) CopiedRange { return CopiedRange{Rel: tbl.Rel, From: from, To: to} }
	for _, c := range []struct {
		done []CopiedRange
		want string
	}{
		{nil, "0-0"},
		{[]CopiedRange{r(0, 0)}, ""},
		{[]CopiedRange{r(0, 25)}, "25-0"},
		{[]CopiedRange{r(25, 50), r(75, 0)}, "0-25 50-75"},
		{[]CopiedRange{r(50, 75), r(0, 25)}, "25-50 75-0"},
	} {
		var got []string
		for _, p := range gaps(tbl, c.done) {
			got = append(got, fmt.Sprintf("%d-%d", p.From, p.To))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("gaps after %+v: %v, want %s", c.done, got, c.want)
		}
	}
}
