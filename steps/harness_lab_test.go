package steps

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// The end-to-end harness: a real lab (blue 15, green 17, PgBouncer) per
// test, and a runner built from the lab's own pgbluegreen.yaml exactly as
// main.go builds one. Shared by the copy and clone end-to-end tests.

// labEnv is one running lab and what the tests hold open on it.
type labEnv struct {
	Info   *lab.Info
	Config *config.Config
	Runner *Runner
	Store  *state.Store
	// JournalPath is the runner's journal (JSON lines), to grep for secrets.
	JournalPath string
	Blue, Green *pgxpool.Pool

	closers []func()
}

// startLab brings a fresh lab up for strategy ("copy" or "clone") with
// labtest.Start, and builds pools, a state file, a journal and a runner
// from DIR/pgbluegreen.yaml. The returned cleanup (also
// registered with t.Cleanup, so calling it is optional) stops everything.
func startLab(t testing.TB, strategy string) (*labEnv, func()) {
	t.Helper()
	start := time.Now()
	info := labtest.Start(t, labtest.StartParams{Strategy: strategy})
	t.Logf("lab up (%s) in %s", strategy, time.Since(start).Round(time.Millisecond))
	var once sync.Once
	var le *labEnv
	// Registered after labtest.Start's teardown, so it runs first: the
	// runner's pools and files close before the servers stop.
	cleanup := func() {
		once.Do(func() {
			if le != nil {
				le.close()
			}
			labtest.Stop(info.Dir)
		})
	}
	t.Cleanup(cleanup)
	var err error
	le, err = newLabEnv(t, info)
	if err != nil {
		t.Fatal(err)
	}
	return le, cleanup
}

// newLabEnv builds the runner side of a running lab.
func newLabEnv(t testing.TB, info *lab.Info) (*labEnv, error) {
	cfg, err := config.Load(info.Config)
	if err != nil {
		return nil, err
	}
	le := &labEnv{Info: info, Config: cfg}
	// The names a run on the lab uses by default (lab down --purge knows them).
	statePath := filepath.Join(info.Dir, "pgbluegreen.state.json")
	le.Store, err = state.Open(statePath, state.OpenParams{})
	if err != nil {
		return nil, err
	}
	le.JournalPath = filepath.Join(info.Dir, "pgbluegreen.state.journal.jsonl")
	j, err := state.OpenJournal(le.JournalPath)
	if err != nil {
		return nil, err
	}
	le.Blue, err = pg.NewPool(pg.PoolParams{Conninfo: cfg.Blue.Conninfo, ConnectTimeout: cfg.Timeouts.Connect.Duration, OnQuery: QueryJournal(j, "blue")})
	if err != nil {
		return nil, err
	}
	le.Green, err = pg.NewPool(pg.PoolParams{Conninfo: cfg.Green.Conninfo, ConnectTimeout: cfg.Timeouts.Connect.Duration, OnQuery: QueryJournal(j, "green")})
	if err != nil {
		return nil, err
	}
	r := NewRunner(cfg, le.Store, j)
	r.Blue, r.Green = le.Blue, le.Green
	out := make(chan Line, 256)
	r.Out = out
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l := range out {
			if testing.Verbose() {
				t.Logf("%s %-5s %s: %s", l.Time.Format("15:04:05.000"), l.Level, l.Step, l.Text)
			}
		}
	}()
	le.Runner = r
	le.closers = append(le.closers, func() {
		r.Close()
		close(out)
		<-done
		le.Blue.Close()
		le.Green.Close()
		j.Close()
		le.Store.Close()
	})
	return le, nil
}

func (le *labEnv) close() {
	for k := len(le.closers) - 1; k >= 0; k-- {
		le.closers[k]()
	}
	le.closers = nil
}

// startLoad writes through PgBouncer at rate transactions per second
// until the returned stop is called; stop returns the load's figures.
func startLoad(t *testing.T, le *labEnv, rate int) (stop func() lab.LoadResult) {
	t.Helper()
	return labtest.StartLoad(t, le.Info.Dir, labtest.LoadParams{Rate: rate, Clients: 3})
}

// queryOne runs one query returning one value on a pool.
func queryOne[T any](t *testing.T, pool *pgxpool.Pool, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// mustRun runs one step through the runner and fails the test on error.
func mustRun(t *testing.T, le *labEnv, id string) Outcome {
	t.Helper()
	start := time.Now()
	out, err := le.Runner.Run(context.Background(), id, RunParams{Confirmed: true})
	if err != nil {
		t.Fatalf("run %s: %v", id, err)
	}
	t.Logf("step %s: %s in %s", id, out, time.Since(start).Round(time.Millisecond))
	return out
}

// labLog reads one server's log file (DIR/logs/blue.log, green.log).
func labLog(t *testing.T, le *labEnv, server string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(le.Info.Dir, "logs", server+".log"))
	if err != nil {
		t.Fatalf("reading %s's log: %v", server, err)
	}
	return string(b)
}

// labPassword is the replication role's password the lab generated.
func labPassword(t *testing.T, le *labEnv) string {
	t.Helper()
	pw, err := le.Config.ReplicationPassword()
	if err != nil || pw == "" {
		t.Fatalf("the lab's replication password: %v", err)
	}
	return pw
}

// TestLabHarness brings a copy lab up and proves the runner built from its
// configuration reaches blue (15) and green (17): the harness itself works.
func TestLabHarness(t *testing.T) {
	le, _ := startLab(t, "copy")
	if v := queryOne[string](t, le.Blue, "SHOW server_version_num"); v[:2] != "15" {
		t.Errorf("blue is %s", v)
	}
	if v := queryOne[string](t, le.Green, "SHOW server_version_num"); v[:2] != "17" {
		t.Errorf("green is %s", v)
	}
	if le.Runner.Config.Strategy != "copy" || len(le.Runner.Steps) == 0 {
		t.Errorf("runner for %q with %d steps", le.Runner.Config.Strategy, len(le.Runner.Steps))
	}
	labPassword(t, le)
}
