package pg

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// The drain waits until green has applied what blue committed, not only
// received it. Green's apply worker is made to commit synchronously to a
// standby that does not exist: it has received blue's transaction (its
// received_lsn is at the commit's end) and hangs in its commit. The drain
// must not end then; once the commit goes through, it ends, and the row
// is on green.
func TestDrainWaitsForTheApplyNotTheReceipt(t *testing.T) {
	labtest.Require(t)
	l := newLab(t)
	sub := l.replicate(t)
	ctx := context.Background()
	mustExec(t, l.green, "ALTER SUBSCRIPTION "+sub+" SET (synchronous_commit = 'on')")
	mustExec(t, l.green, "ALTER SYSTEM SET synchronous_standby_names = 'pgbg_nobody'")
	mustExec(t, l.green, "SELECT pg_reload_conf()")
	release := func() {
		mustExec(t, l.green, "ALTER SYSTEM RESET synchronous_standby_names")
		mustExec(t, l.green, "SELECT pg_reload_conf()")
	}
	t.Cleanup(func() {
		release()
		mustExec(t, l.green, "ALTER SUBSCRIPTION "+sub+" SET (synchronous_commit = 'off')")
	})
	src, err := l.blue.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := l.green.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { src.Release(); dst.Release() }()
	if err := Reloaded(ctx, dst, "pgbg_nobody"); err != nil {
		t.Fatal(err)
	}

	// The target is the end of the row's commit, nothing written after it:
	// green's worker has received everything up to there (its received_lsn
	// says so) but has applied nothing.
	mustExec(t, l.blue, "INSERT INTO public.events_log (kind) VALUES ('drain-probe')")
	var lsn string
	if err := l.blue.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, polls, err := WaitApplied(wctx, src, dst, "blue", "green", []string{sub}, lsn)
	cancel()
	if err == nil {
		t.Fatalf("the drain ended after %d polls while green's apply worker had not committed blue's row", polls)
	}
	var received bool
	if err := l.green.QueryRow(ctx, "SELECT coalesce(bool_and(received_lsn >= $1::pg_lsn), false) FROM pg_stat_subscription WHERE subname = $2 AND relid IS NULL", lsn, sub).Scan(&received); err != nil || !received {
		t.Errorf("green's worker should have received up to %s already: %t, %v", lsn, received, err)
	}
	var waiting int
	if err := l.green.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND backend_type LIKE 'logical replication%'").Scan(&waiting); err != nil || waiting != 1 {
		t.Fatalf("green's apply worker should be waiting in its commit: %d waiting, %v", waiting, err)
	}

	release()
	// A statement cut short by the timeout closes its connection: fresh ones.
	src.Release()
	dst.Release()
	if src, err = l.blue.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if dst, err = l.green.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	at, polls, err := WaitApplied(ctx, src, dst, "blue", "green", []string{sub}, lsn)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := l.green.QueryRow(ctx, "SELECT count(*) FROM public.events_log WHERE kind = 'drain-probe'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after the drain (%d polls, green at %s): %d rows on green, %v", polls, at, n, err)
	}
	t.Logf("the drain waited for the held commit, then ended after %d polls", polls)
}

// The precheck refuses a cutover whose role on blue may not set the
// reverse subscription's start (pg_replication_origin_advance), which the
// pause needs, and passes once it may.
func TestReversePrecheckNeedsOriginAdvance(t *testing.T) {
	labtest.Require(t)
	l := newLab(t)
	l.replicate(t)
	ctx := context.Background()
	// Every TCP login of the lab asks for a password (SCRAM).
	mustExec(t, l.blue, "CREATE ROLE pgbg_weak LOGIN PASSWORD 'weak'")
	weak := mustPool(t, strings.Replace(l.info.Blue.Conninfo, "user=postgres", "user=pgbg_weak password=weak", 1))
	p := ReversePrereqs{Name: "pgbg_reverse", Role: lab.ReplicationRole, Password: l.password}
	green, err := l.green.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer green.Release()
	try := func() error {
		c, err := weak.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		_, err = CheckReversePrereqs(ctx, c, green, p)
		return err
	}
	if err := try(); err == nil || !strings.Contains(err.Error(), "GRANT EXECUTE ON FUNCTION pg_replication_origin_advance") {
		t.Fatalf("a role that may not advance an origin: %v", err)
	}
	mustExec(t, l.blue, "GRANT EXECUTE ON FUNCTION pg_replication_origin_advance(text, pg_lsn) TO pgbg_weak")
	if err := try(); err != nil {
		t.Fatalf("after the grant: %v", err)
	}
}
