package cutover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
)

// replicationState is what the abort path must leave as it was.
type replicationState struct {
	forwardEnabled, forwardRunning bool
	reverseSub, reverseSlot        int
	reversePub                     int
	greenAppLogin                  bool
}

func readReplicationState(t *testing.T, l *testLab, sub string) replicationState {
	t.Helper()
	ctx := context.Background()
	var s replicationState
	if err := l.green.QueryRow(ctx, `
SELECT s.subenabled, EXISTS (SELECT 1 FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.pid IS NOT NULL),
       (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $2),
       (SELECT count(*) FROM pg_publication WHERE pubname = $2),
       (SELECT rolcanlogin FROM pg_roles WHERE rolname = $3)
FROM pg_subscription s WHERE s.subname = $1`, sub, DefaultReverseName, lab.AppRole).
		Scan(&s.forwardEnabled, &s.forwardRunning, &s.reverseSlot, &s.reversePub, &s.greenAppLogin); err != nil {
		t.Fatal(err)
	}
	if err := l.blue.QueryRow(ctx, "SELECT count(*) FROM pg_subscription WHERE subname = $1", DefaultReverseName).Scan(&s.reverseSub); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitForwardRunning waits for green's apply worker (re-enabled by an
// abort) to be back.
func waitForwardRunning(t *testing.T, l *testLab, sub string) replicationState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := readReplicationState(t, l, sub)
		if s.forwardRunning || time.Now().After(deadline) {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCutoverRefusedAndAborted: a failed precheck touches nothing; a drain
// timeout (forced) under load aborts with PgBouncer resumed on blue, the
// ini and the effective target blue, the replication as it was, no client
// error and nothing lost.
func TestCutoverRefusedAndAborted(t *testing.T) {
	l := newLab(t)
	sub := l.replicate(t)
	mustExec(t, l.green, "ALTER ROLE "+lab.AppRole+" NOLOGIN") // as block-green-logins leaves it
	before := readReplicationState(t, l, sub)
	p := l.params(MethodPgBouncer, sub)
	ctx := context.Background()

	t.Run("precheck failure changes nothing", func(t *testing.T) {
		// The ini says green while PgBouncer still serves blue: the next
		// RELOAD would move traffic, so the cutover must refuse.
		bk, err := pg.RepointIni(l.info.PgBouncer.Ini, lab.AppDB, p.GreenEndpoint)
		if err != nil {
			t.Fatal(err)
		}
		defer bk.Restore()
		rep, err := Cutover(ctx, p)
		var pe *PrecheckError
		if !errors.As(err, &pe) || len(pe.Failed) != 1 || !strings.Contains(pe.Failed[0].Detail, "RELOAD") {
			t.Fatalf("cutover with a diverging ini: %v", err)
		}
		if len(rep.SubSteps) != 0 || len(rep.Prechecks) < 5 {
			t.Errorf("sub-steps ran (%d) or prechecks missing (%d)", len(rep.SubSteps), len(rep.Prechecks))
		}
		if after := readReplicationState(t, l, sub); after != before {
			t.Errorf("state changed by a refused cutover: %+v then %+v", before, after)
		}
		if port := bouncerPort(t, l); port != l.info.Green.Port {
			t.Errorf("the refused cutover rewrote the ini")
		}
	})

	t.Run("a session bypassing PgBouncer refuses the cutover, named", func(t *testing.T) {
		direct := connect(t, strings.Replace(l.info.Blue.Conninfo, "user=postgres", "user="+lab.AppRole, 1)+" application_name=nightly-cron")
		defer direct.Close(ctx)
		pid := direct.PgConn().PID()
		_, err := Cutover(ctx, p)
		var pe *PrecheckError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d %s@", pid, lab.AppRole)) || !strings.Contains(err.Error(), "nightly-cron") {
			t.Fatalf("cutover with a direct session on blue: %v, want a precheck naming pid %d", err, pid)
		}
		if after := readReplicationState(t, l, sub); after != before {
			t.Errorf("state changed by a refused cutover: %+v then %+v", before, after)
		}
		// The rehearsal says the same, and with a measured PAUSE/RESUME it
		// is the only thing that touches PgBouncer.
		if _, err := Rehearse(ctx, p, false, true); !errors.As(err, &pe) {
			t.Errorf("rehearsal with a direct session: %v", err)
		}
		direct.Close(ctx)
		rep, err := Rehearse(ctx, p, false, true)
		if err != nil || len(rep.SubSteps) != len(p.Bouncers) || rep.PausedMs <= 0 || rep.Bouncers[len(p.Bouncers)-1].PauseMs <= 0 {
			t.Fatalf("rehearsal on a healthy lab: %v %+v", err, rep)
		}
		t.Logf("rehearsal: %d prechecks; %s: %s", len(rep.Prechecks), rep.SubSteps[0].Name, rep.SubSteps[0].Detail)
		if after := readReplicationState(t, l, sub); after != before {
			t.Errorf("state changed by a rehearsal: %+v then %+v", before, after)
		}
	})

	t.Run("a measured rehearsal under load turns no client away", func(t *testing.T) {
		// A bare PAUSE that lands while PgBouncer logs a server connection
		// in counts as a failed login: without server_login_retry lifted
		// around the RESUME, clients got "server login has been failing"
		// for 15 s (seen at 1,000 writes/s).
		var errs []error
		res := loadDuring(t, l, 1000, time.Second, time.Second, func() {
			for range 6 {
				if _, err := Rehearse(ctx, p, false, true); err != nil {
					errs = append(errs, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
		if len(errs) > 0 || res.Errors != 0 {
			t.Fatalf("6 measured rehearsals at 1,000 writes/s: rehearsal errors %v; clients saw %d errors (%s)", errs, res.Errors, res.LastError)
		}
		c, err := pg.ConnectConsole(ctx, "lab", l.info.PgBouncer.AdminConninfo, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cfg, err := c.Config(ctx)
		if err != nil || cfg["server_login_retry"] != "15" {
			t.Errorf("server_login_retry after the rehearsals: %q (%v), want 15, PgBouncer's default the lab keeps", cfg["server_login_retry"], err)
		}
		t.Logf("%d writes at %.0f/s around 6 rehearsals, longest stall %.1f ms", res.Committed, res.Rate, res.MaxStallMs)
	})

	t.Run("an apply error is judged by when it was seen, not by the lifetime counter", func(t *testing.T) {
		// A real apply error: a row on green that blue then inserts too.
		mustExec(t, l.green, "INSERT INTO public.accounts (id, owner) VALUES (900001, 'green only')")
		mustExec(t, l.blue, "INSERT INTO public.accounts (id, owner) VALUES (900001, 'from blue')")
		defer mustExec(t, l.blue, "DELETE FROM public.accounts WHERE id = 900001")
		// The later subtests start from a clean counter.
		defer mustExec(t, l.green, "SELECT pg_stat_reset_subscription_stats(NULL)")
		var errs int64
		for deadline := time.Now().Add(30 * time.Second); errs == 0; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no apply error counted in 30s")
			}
			if err := l.green.QueryRow(ctx, "SELECT coalesce(sum(apply_error_count), 0)::bigint FROM pg_stat_subscription_stats").Scan(&errs); err != nil {
				t.Fatal(err)
			}
		}
		// The operator fixes the cause; the feed applies again, the counter stays.
		mustExec(t, l.green, "DELETE FROM public.accounts WHERE id = 900001")
		var back bool
		for deadline := time.Now().Add(30 * time.Second); !back; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("blue's row never reached green after the fix")
			}
			if err := l.green.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM public.accounts WHERE id = 900001 AND owner = 'from blue')").Scan(&back); err != nil {
				t.Fatal(err)
			}
		}
		// The apply worker retried until the fix: the count as it stands now.
		if err := l.green.QueryRow(ctx, "SELECT coalesce(sum(apply_error_count), 0)::bigint FROM pg_stat_subscription_stats").Scan(&errs); err != nil {
			t.Fatal(err)
		}
		health := func(h Health) Check {
			p := p
			p.Health = h
			rep, _ := Rehearse(ctx, p, false, false)
			for _, x := range rep.Prechecks {
				if x.Name == "subscriptions healthy" {
					return x
				}
			}
			t.Fatalf("no health check in the rehearsal: %+v", rep.Prechecks)
			return Check{}
		}
		for _, c := range []struct {
			what string
			h    Health
			ok   bool
			says string
		}{
			{"never read before", Health{Window: 10 * time.Minute}, false, "errors are happening now"},
			{"seen a minute ago", Health{Window: 10 * time.Minute, Known: errs, KnownAt: time.Now().Add(-time.Minute)}, false, "within the health window"},
			{"seen 20 minutes ago", Health{Window: 10 * time.Minute, Known: errs, KnownAt: time.Now().Add(-20 * time.Minute)}, true, "none since"},
		} {
			got := health(c.h)
			if got.OK != c.ok || !strings.Contains(got.Detail, c.says) {
				t.Errorf("%s: ok %t %q, want ok %t saying %q", c.what, got.OK, got.Detail, c.ok, c.says)
			}
			t.Logf("%s: ok %t, warn %t: %s", c.what, got.OK, got.Warn, got.Detail)
		}
	})

	t.Run("drain timeout aborts and puts everything back", func(t *testing.T) {
		p := p
		p.DrainTimeout = time.Nanosecond
		var rep *Report
		var err error
		res := loadDuring(t, l, 200, 2*time.Second, 2*time.Second, func() { rep, err = Cutover(ctx, p) })
		logSubSteps(t, rep)
		var ae *AbortError
		if !errors.As(err, &ae) || ae.RestoreErr != nil || !rep.Aborted || !strings.Contains(err.Error(), "drain") {
			t.Fatalf("cutover with a 1ns drain timeout: %v (aborted %t)", err, rep.Aborted)
		}
		if res.Errors != 0 {
			t.Errorf("clients saw %d errors (%s)", res.Errors, res.LastError)
		}
		if !strings.Contains(rep.FinalVersion, "PostgreSQL 15") || rep.FinalTarget != p.BlueEndpoint.String() {
			t.Errorf("report after the abort: final %s %q", rep.FinalTarget, rep.FinalVersion)
		}
		c, cerr := pg.ConnectConsole(ctx, "lab", l.info.PgBouncer.AdminConninfo, 5*time.Second)
		if cerr != nil {
			t.Fatal(cerr)
		}
		defer c.Close()
		d, derr := c.Database(ctx, lab.AppDB)
		if derr != nil || d.Paused || d.Port != l.info.Blue.Port {
			t.Errorf("PgBouncer after the abort: %+v %v", d, derr)
		}
		if port := bouncerPort(t, l); port != l.info.Blue.Port {
			t.Errorf("the ini points at %d after the abort", port)
		}
		if v, err := pg.VersionThrough(ctx, l.info.PgBouncer.Conninfo); err != nil || !strings.Contains(v, "PostgreSQL 15") {
			t.Errorf("version through PgBouncer after the abort: %q %v", v, err)
		}
		if after := waitForwardRunning(t, l, sub); after != before {
			t.Errorf("replication after the abort: %+v, before %+v", after, before)
		}
		l.waitCaughtUp(t, sub)
		waitSlotDrained(t, l, l.blue, sub)
		verifyLedger(t, l)
	})
}

// TestCutoverNologinUnderLoad: the nologin method under load, then the
// operator's traffic switch (PgBouncer repointed by the test), then its
// rollback. Clients see errors while they are locked out, by design; no
// acknowledged write is lost or duplicated.
func TestCutoverNologinUnderLoad(t *testing.T) {
	testMethodUnderLoad(t, MethodNologin)
}

// TestCutoverReadonlyUnderLoad: the readonly method (a write on blue must
// fail, one on green succeed), under load, then its rollback.
func TestCutoverReadonlyUnderLoad(t *testing.T) {
	testMethodUnderLoad(t, MethodReadonly)
}

func testMethodUnderLoad(t *testing.T, method string) {
	l := newLab(t)
	sub := l.replicate(t)
	mustExec(t, l.green, "ALTER ROLE "+lab.AppRole+" NOLOGIN")
	p := l.params(method, sub)
	p.Bouncers = nil // the traffic switch is the operator's
	ctx := context.Background()

	var rep *Report
	res := loadDuring(t, l, 200, 2*time.Second, 2*time.Second, func() {
		var err error
		if rep, err = Cutover(ctx, p); err != nil {
			logSubSteps(t, rep)
			t.Fatalf("%s cutover: %v", method, err)
		}
		l.pointBouncer(t, p.GreenEndpoint)
	})
	logSubSteps(t, rep)
	t.Logf("load: %+v", res)
	if !strings.Contains(rep.FinalVersion, "PostgreSQL 17") || rep.Sequences < 6 {
		t.Errorf("report: final %q, %d sequences", rep.FinalVersion, rep.Sequences)
	}
	// The fence closes CONNECT on the moved database, for every method:
	// the role itself keeps LOGIN (it is the server's, not the database's).
	var connect bool
	if err := l.blue.QueryRow(ctx, "SELECT has_database_privilege($1, $2, 'CONNECT')", lab.AppRole, lab.AppDB).Scan(&connect); err != nil {
		t.Fatal(err)
	}
	if connect {
		t.Error("the application role can still connect to blue's database")
	}
	if method == MethodReadonly {
		if err := pg.ProbeWrite(ctx, l.blue, "blue"); !pg.IsReadOnlyError(err) {
			t.Errorf("a write on blue after a readonly cutover: %v", err)
		}
	}
	if err := pg.ProbeWrite(ctx, l.green, "green"); err != nil {
		t.Errorf("a write on green after the cutover: %v", err)
	}
	waitSlotDrained(t, l, l.green, DefaultReverseName)
	verifyLedger(t, l)

	res = loadDuring(t, l, 200, 2*time.Second, 2*time.Second, func() {
		var err error
		if rep, err = Rollback(ctx, p); err != nil {
			logSubSteps(t, rep)
			t.Fatalf("%s rollback: %v", method, err)
		}
		l.pointBouncer(t, p.BlueEndpoint)
	})
	logSubSteps(t, rep)
	t.Logf("load: %+v", res)
	if err := pg.ProbeWrite(ctx, l.blue, "blue"); err != nil {
		t.Errorf("a write on blue after the rollback: %v", err)
	}
	waitSlotDrained(t, l, l.blue, sub)
	verifyLedger(t, l)
}
