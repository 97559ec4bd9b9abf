package cutover

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// loadDuring runs the lab's workload at rate writes/s through PgBouncer
// while fn runs, plus lead before and tail after it, and returns its result.
func loadDuring(tb testing.TB, l *testLab, rate int, lead, tail time.Duration, fn func()) lab.LoadResult {
	tb.Helper()
	return labtest.LoadAround(tb, l.info.Dir, labtest.LoadParams{Rate: rate, Clients: 4, Lead: lead, Tail: tail}, fn)
}

// verifyLedger checks every acknowledged write is on the server PgBouncer
// points at, exactly once, and that blue and green hold the same rows (the
// caller waited for the feed in use to drain).
func verifyLedger(tb testing.TB, l *testLab) lab.VerifyResult {
	tb.Helper()
	v, err := lab.Verify(context.Background(), l.info.Dir)
	if err != nil {
		tb.Fatalf("lab verify: %v", err)
	}
	if v.Lost != 0 || v.Duplicated != 0 || len(v.MismatchedTables) != 0 || v.LedgerEntries == 0 {
		tb.Logf("%s", labLogs(l))
		ctx := context.Background()
		for _, side := range []struct {
			name string
			pool *pgxpool.Pool
		}{{"blue", l.blue}, {"green", l.green}} {
			var n, maxID int64
			var slots, subs string
			side.pool.QueryRow(ctx, "SELECT count(*), coalesce(max(id), 0) FROM public.ledger").Scan(&n, &maxID)
			side.pool.QueryRow(ctx, "SELECT coalesce(string_agg(slot_name || ' active=' || active || ' confirmed=' || confirmed_flush_lsn || ' cur=' || pg_current_wal_lsn(), '; '), '') FROM pg_replication_slots").Scan(&slots)
			side.pool.QueryRow(ctx, "SELECT coalesce(string_agg(subname || ' pid=' || coalesce(pid::text, '-') || ' recv=' || coalesce(received_lsn::text, '-'), '; '), '') FROM pg_stat_subscription").Scan(&subs)
			tb.Logf("%s: ledger %d rows, max id %d; slots: %s; subscriptions: %s", side.name, n, maxID, slots, subs)
		}
		tb.Fatalf("lab verify: %+v", v)
	}
	return v
}

// bouncerPort is the port PgBouncer's ini gives the lab's database.
func bouncerPort(tb testing.TB, l *testLab) int {
	tb.Helper()
	e, err := pg.ReadBouncerEntry(l.info.PgBouncer.Ini, lab.AppDB)
	if err != nil {
		tb.Fatal(err)
	}
	port, _ := strconv.Atoi(e.Get("port"))
	return port
}

// TestCutoverPgBouncerAndRollbackUnderLoad: a cutover through PgBouncer at
// 200 writes/s moves every client to green with no client error, nothing
// lost or duplicated, sequences synced and blue fed back; a rollback then
// moves them to blue the same way.
func TestCutoverPgBouncerAndRollbackUnderLoad(t *testing.T) {
	l := newLab(t)
	sub := l.replicate(t)
	p := l.params(MethodPgBouncer, sub)
	names := &subStepNames{}
	p.Hooks = names

	var rep *Report
	res := loadDuring(t, l, 200, 2*time.Second, 2*time.Second, func() {
		var err error
		rep, err = Cutover(context.Background(), p)
		if err != nil {
			logSubSteps(t, rep)
			t.Fatalf("cutover: %v", err)
		}
	})
	logSubSteps(t, rep)
	t.Logf("load during cutover: %+v", res)
	if res.Errors != 0 || res.Committed == 0 {
		t.Errorf("clients saw %d errors (%s), %d commits", res.Errors, res.LastError, res.Committed)
	}
	if rep.Aborted || !strings.Contains(rep.FinalVersion, "PostgreSQL 17") || rep.Sequences < 6 || rep.Probe.Samples == 0 {
		t.Errorf("report: aborted %t, final %s %q, %d sequences, %d probes", rep.Aborted, rep.FinalTarget, rep.FinalVersion, rep.Sequences, rep.Probe.Samples)
	}
	if len(names.got) != len(rep.SubSteps) {
		t.Errorf("journaled %d sub-steps, report has %d", len(names.got), len(rep.SubSteps))
	}
	if port := bouncerPort(t, l); port != l.info.Green.Port {
		t.Errorf("the ini points at port %d after the cutover, want green's %d", port, l.info.Green.Port)
	}
	waitSlotDrained(t, l, l.green, DefaultReverseName)
	v := verifyLedger(t, l)
	t.Logf("after cutover: %+v", v)
	// Green's sequences continued from blue's: the ledger's ids are unique
	// (verify), and blue received green's writes through the reverse feed
	// (the tables compare equal).

	res = loadDuring(t, l, 200, 2*time.Second, 2*time.Second, func() {
		var err error
		rep, err = Rollback(context.Background(), p)
		if err != nil {
			logSubSteps(t, rep)
			t.Fatalf("rollback: %v", err)
		}
	})
	logSubSteps(t, rep)
	t.Logf("load during rollback: %+v", res)
	if res.Errors != 0 {
		t.Errorf("clients saw %d errors during the rollback (%s)", res.Errors, res.LastError)
	}
	if !strings.Contains(rep.FinalVersion, "PostgreSQL 15") {
		t.Errorf("after rollback the final target is %s %q", rep.FinalTarget, rep.FinalVersion)
	}
	waitSlotDrained(t, l, l.blue, sub)
	v = verifyLedger(t, l)
	t.Logf("after rollback: %+v", v)
	var n int
	if err := l.green.QueryRow(context.Background(), "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", DefaultReverseName).Scan(&n); err != nil || n != 0 {
		t.Errorf("reverse slot left on green after rollback: %d %v", n, err)
	}

	_, err := Rollback(context.Background(), p)
	var pe *PrecheckError
	if !errors.As(err, &pe) {
		t.Errorf("a second rollback: %v, want a precheck failure", err)
	}
}

// TestChangedSequences: only sequences that moved, or are new, are set
// again inside the pause.
func TestChangedSequences(t *testing.T) {
	a := pg.Sequence{Schema: "public", Name: "a", LastValue: 5, IsCalled: true, Increment: 1}
	b := pg.Sequence{Schema: "public", Name: "B", LastValue: 1, IsCalled: false, Increment: 1}
	c := pg.Sequence{Schema: "x", Name: "c", LastValue: 9, IsCalled: true, Increment: -1}
	b2, c2 := b, c
	b2.IsCalled = true
	c2.LastValue = 8
	d := pg.Sequence{Schema: "x", Name: "d", LastValue: 1, IsCalled: true, Increment: 1}
	got := changedSequences([]pg.Sequence{a, b, c}, []pg.Sequence{a, b2, c2, d})
	if len(got) != 3 || got[0] != b2 || got[1] != c2 || got[2] != d {
		t.Errorf("changed: %+v", got)
	}
	if got := changedSequences([]pg.Sequence{a, b}, []pg.Sequence{a, b}); len(got) != 0 {
		t.Errorf("nothing moved, yet %+v", got)
	}
}

// subStepNames records the name of every sub-step the run reports.
type subStepNames struct {
	NoHooks
	got []string
}

func (h *subStepNames) SubStepDone(s SubStep) { h.got = append(h.got, s.Name) }
