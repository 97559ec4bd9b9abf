package pg

import (
	"context"
	"strings"
	"testing"
)

// seqState reads one sequence's last_value and is_called from the relation.
func seqState(t testing.TB, q Querier, qualified string) (int64, bool) {
	t.Helper()
	var v int64
	var called bool
	if err := q.QueryRow(context.Background(), "SELECT last_value, is_called FROM "+qualified).Scan(&v, &called); err != nil {
		t.Fatalf("read %s: %v", qualified, err)
	}
	return v, called
}

// TestSyncSequences: every kind of sequence lands on green exactly as on
// blue (a sequence owned by no column, a mixed-case name in a second schema,
// one never called, one set with is_called = false, a descending one), in
// one apply statement; a sequence green lacks is reported; the margin moves
// each value in its direction; a green sequence ahead of blue is caught as
// a collision before syncing.
func TestSyncSequences(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	ddl := `
CREATE SEQUENCE inventory."Invoice Seq" START 5;
CREATE SEQUENCE public.never_called START 77;
CREATE SEQUENCE public.reset_seq;
CREATE SEQUENCE public.down INCREMENT -1 START -10 MAXVALUE -1;`
	mustExec(t, l.green, "CREATE SCHEMA inventory; CREATE SEQUENCE public.invoice_no START 1000;"+ddl)
	mustExec(t, l.blue, ddl+`
SELECT nextval('inventory."Invoice Seq"') FROM generate_series(1, 3);
SELECT setval('public.reset_seq', 500, false);
SELECT nextval('public.down') FROM generate_series(1, 4);
CREATE SEQUENCE public.only_on_blue;`)

	// Green lacks the lab's column-owned sequences here (no schema copy)
	// and only_on_blue: those are reported, nothing else.
	coll, err := SequenceCollisions(ctx, l.blue, l.green)
	if err != nil {
		t.Fatal(err)
	}
	missing := map[string]bool{}
	for _, c := range coll {
		name, why, _ := strings.Cut(c, ": ")
		if why != "missing on the target" {
			t.Errorf("collision before any write on green: %s", c)
		}
		missing[name] = true
	}
	if !missing[`"public"."only_on_blue"`] {
		t.Errorf("only_on_blue not reported missing: %v", coll)
	}

	res, err := SyncSequences(ctx, l.blue, l.green, "green", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Missing) != len(missing) || !strings.Contains(strings.Join(res.Missing, " "), "public.only_on_blue") {
		t.Errorf("missing %v, want the %d of the precheck", res.Missing, len(missing))
	}
	seqs, err := ReadSequences(ctx, l.blue)
	if err != nil {
		t.Fatal(err)
	}
	if res.Synced != len(seqs)-len(missing) || res.Synced < 5 {
		t.Errorf("synced %d of %d (%d missing)", res.Synced, len(seqs), len(missing))
	}
	for _, s := range seqs {
		if missing[s.Qualified()] {
			continue
		}
		bv, bc := seqState(t, l.blue, s.Qualified())
		gv, gc := seqState(t, l.green, s.Qualified())
		if bv != gv || bc != gc {
			t.Errorf("%s: blue (%d, %t), green (%d, %t)", s.Qualified(), bv, bc, gv, gc)
		}
	}
	if v, c := seqState(t, l.green, "public.invoice_no"); v != 1042 || !c {
		t.Errorf("invoice_no (owned by no column) on green: %d %t", v, c)
	}
	if v, c := seqState(t, l.green, `inventory."Invoice Seq"`); v != 7 || !c {
		t.Errorf(`mixed-case "Invoice Seq" on green: %d %t, want 7 true`, v, c)
	}
	if v, c := seqState(t, l.green, "public.reset_seq"); v != 500 || c {
		t.Errorf("reset_seq on green: %d %t, want 500 false", v, c)
	}

	if _, err := SyncSequences(ctx, l.blue, l.green, "green", 100); err != nil {
		t.Fatal(err)
	}
	if v, _ := seqState(t, l.green, "public.invoice_no"); v != 1142 {
		t.Errorf("invoice_no with margin 100: %d, want 1142", v)
	}
	if v, _ := seqState(t, l.green, "public.down"); v != -113 {
		t.Errorf("descending sequence with margin 100: %d, want -113", v)
	}

	mustExec(t, l.green, "SELECT setval('public.invoice_no', 5000)")
	coll, err = SequenceCollisions(ctx, l.blue, l.green)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range coll {
		found = found || strings.Contains(c, "invoice_no") && strings.Contains(c, "past")
	}
	if !found {
		t.Errorf("green's invoice_no ahead of blue not reported: %v", coll)
	}
}

// BenchmarkSequenceSync5000 syncs 5,000 sequences, each moved on blue
// before every round (worst case: all changed; the cutover sets only those
// that moved since its first pass), from blue to green as the cutover does
// while writes are paused. Target: under 250 ms.
func BenchmarkSequenceSync5000(b *testing.B) {
	l := newLab(b)
	ctx := context.Background()
	const mk = `CREATE SCHEMA bench; DO $$ BEGIN FOR i IN 1..5000 LOOP EXECUTE format('CREATE SEQUENCE bench.%I', 's' || i); END LOOP; END $$`
	mustExec(b, l.blue, mk)
	mustExec(b, l.green, mk)
	mustExec(b, l.blue, `SELECT nextval(format('bench.%I', 's' || i)) FROM generate_series(1, 5000) i`)
	// The cutover's first pass, outside the pause, warms the sessions and
	// logs the sequence pages once; what is timed is the pass inside it.
	if _, err := SyncSequencesParallel(ctx, l.blue, l.green, "green", 0, SequenceSessions); err != nil {
		b.Fatal(err)
	}
	var res SequenceSync
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		mustExec(b, l.blue, `SELECT nextval(format('bench.%I', 's' || i)) FROM generate_series(1, 5000) i`)
		b.StartTimer()
		var err error
		if res, err = SyncSequencesParallel(ctx, l.blue, l.green, "green", 0, SequenceSessions); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if res.Synced < 5000 {
		b.Fatalf("synced %d", res.Synced)
	}
	b.ReportMetric(float64(res.Synced), "sequences")
	b.ReportMetric(float64(res.Read.Microseconds())/1000, "read_ms")
	b.ReportMetric(float64(res.Apply.Microseconds())/1000, "apply_ms")
}
