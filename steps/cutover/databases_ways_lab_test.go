package cutover

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// crashAt stops a run at a named sub-step as a killed process would: the
// goroutine ends there (its deferred closes run, nothing is undone), and
// what the run recorded (Prior) is kept for the way out.
type crashAt struct {
	NoHooks
	at    string
	mu    sync.Mutex
	prior Prior
}

func (h *crashAt) Prior(p Prior) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.prior = p
	return nil
}

func (h *crashAt) BeforeSubStep(_ context.Context, name string) {
	if name == h.at {
		runtime.Goexit()
	}
}

// TestWayOutsOfTwoDatabases: a cutover of app and billing stopped at each
// point from the pause to the fence, under load, is taken out forward or
// back from where the servers are: every entry of both databases on both
// PgBouncers, both databases' feeds and the fence end in one consistent
// state, and nothing is lost or duplicated in either database.
func TestWayOutsOfTwoDatabases(t *testing.T) {
	l := newLab(t)
	appSub := l.replicate(t)
	billing := l.replicateDB(t, lab.BillingDB)
	mustExec(t, l.green, "ALTER ROLE "+pg.Ident(lab.AppRole)+" NOLOGIN")
	p := l.params(MethodPgBouncer, appSub)
	p.Databases[0].Reverse = DefaultReverseName
	p.Databases = append(p.Databases, billing.database())
	// A stopped run's deferred probe stop would wait for its write held by
	// the pause (a killed process does not): no probe.
	p.ProbeInterval = -1
	ctx := context.Background()

	state := func(rollback bool) string {
		t.Helper()
		st, err := ReadSwitchState(ctx, p, rollback)
		if err != nil {
			t.Fatalf("read the state: %v", err)
		}
		return st.State + ": " + st.Where
	}
	crash := func(at string) Prior {
		t.Helper()
		h := &crashAt{at: at}
		q := p
		q.Hooks = h
		done := make(chan bool)
		go func() {
			ran := false
			defer func() { done <- ran }()
			_, err := Cutover(ctx, q)
			ran = true
			t.Errorf("the cutover ran past %q: %v", at, err)
		}()
		<-done
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.prior
	}
	wayOut := func(at, way, want string) {
		t.Helper()
		start := time.Now()
		defer func() { t.Logf("%s after a stop at %s: %s in all", way, at, time.Since(start).Round(time.Millisecond)) }()
		prior := crash(at)
		t.Logf("stopped at %s after %s", at, time.Since(start).Round(time.Millisecond))
		t.Logf("stopped at %s: %s", at, state(false))
		q := p
		q.Prior = &prior
		rep, err := WayOut(ctx, q, false, way)
		for _, x := range rep.SubSteps {
			if x.Duration > time.Second {
				t.Logf("  slow sub-step %s: %s %s", x.Name, x.Duration.Round(time.Millisecond), x.Detail)
			}
		}
		if err != nil {
			logSubSteps(t, rep)
			t.Fatalf("%s after a stop at %s: %v", way, at, err)
		}
		p.Fences = rep.Fences
		if got := state(false); got[:len(want)] != want {
			t.Errorf("%s after a stop at %s: %s, want %s", way, at, got, want)
		} else {
			t.Logf("%s after a stop at %s: %s", way, at, got)
		}
	}
	// The forward feeds have their workers again (waitFeeds).
	waitWorkers := func() {
		t.Helper()
		for _, db := range p.Databases {
			c, err := db.Green.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			missing, err := pg.WorkersMissing(ctx, c, db.Subscriptions)
			c.Release()
			if err != nil || len(missing) > 0 {
				t.Errorf("no apply worker for %v in %s (%v)", missing, db.Name, err)
			}
		}
	}
	back := func() {
		t.Helper()
		rep, err := Rollback(ctx, p)
		if err != nil {
			logSubSteps(t, rep)
			t.Fatalf("rollback: %v", err)
		}
		p.Fences = rep.Fences
		waitWorkers()
	}
	res := labtest.LoadAround(t, l.info.Dir, labtest.LoadParams{Rate: 100, Clients: 2, Lead: time.Second, Tail: time.Second, Databases: []string{lab.AppDB, lab.BillingDB}}, func() {
		wayOut("writes stopped", WayUndo, StateSource)
		wayOut("reload", WayFinish, StateTarget)
		back()
		wayOut("resume", WayUndo, StateSource)
		wayOut("swap the feeds", WayFinish, StateTarget)
		back()
		wayOut("fence blue", WayUndo, StateSource) // the traffic moved: undoing it is a rollback
		waitWorkers()
	})
	t.Logf("load: %+v", res)
	if res.Errors != 0 {
		t.Errorf("clients saw %d errors (%s)", res.Errors, res.LastError)
	}
	for _, db := range p.Databases {
		waitSlotDrained(t, l, l.blue, db.Subscriptions[0])
	}
	v, err := lab.Verify(ctx, l.info.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range v.Databases {
		t.Logf("%s: %d writes, %d lost, %d duplicated, %d tables differ", d.Database, d.LedgerEntries, d.Lost, d.Duplicated, len(d.MismatchedTables))
		if d.Lost != 0 || d.Duplicated != 0 || len(d.MismatchedTables) != 0 {
			t.Errorf("%s: %+v", d.Database, d)
		}
	}
	if len(v.Databases) != 2 {
		t.Errorf("verified %d databases", len(v.Databases))
	}
}
