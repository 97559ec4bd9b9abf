package steps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// TestOneDriverPerBlue: two drivers of the same blue, each with its own
// state file (as from two hosts, where the state file's lock cannot see
// the other): while the first runs a step, the second is refused, told
// who holds blue (its host and pid, from pg_locks and pg_stat_activity),
// and changes nothing; a dry run (read-only) is not refused; once the
// first's step ends, the second runs.
func TestOneDriverPerBlue(t *testing.T) {
	le, _ := startLab(t, "copy")
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	hold := &Step{ID: "hold", Phase: PhasePrepare, Target: Blue, Title: "holds blue while it runs",
		Run: func(context.Context, *Env) error { close(started); <-release; return nil }}
	ran := 0
	quick := &Step{ID: "quick", Phase: PhasePrepare, Target: Blue, Title: "a step of the second driver",
		Plan: func(context.Context, *Env) ([]Action, error) { return []Action{note(Blue, "nothing")}, nil },
		Run:  func(context.Context, *Env) error { ran++; return nil }}

	first := &Runner{Config: le.Config, Steps: []*Step{hold}, Store: le.Store, Blue: le.Blue}
	otherState, err := state.Open(filepath.Join(t.TempDir(), "other-host.state.json"), state.OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer otherState.Close()
	otherBlue, err := pg.NewPool(pg.PoolParams{Conninfo: le.Config.Blue.Conninfo})
	if err != nil {
		t.Fatal(err)
	}
	defer otherBlue.Close()
	second := &Runner{Config: le.Config, Steps: []*Step{quick}, Store: otherState, Blue: otherBlue}

	done := make(chan error, 1)
	go func() { _, err := first.Run(ctx, "hold", RunParams{}); done <- err }()
	<-started
	app := queryOne[string](t, le.Blue, "SELECT coalesce(string_agg(application_name, ','), '') FROM pg_stat_activity WHERE application_name LIKE $1", pg.DriverApplicationPrefix+"%")
	if !strings.Contains(app, fmt.Sprintf("pid=%d", os.Getpid())) {
		t.Errorf("the driver's lock session is not named after its host and pid: %q", app)
	}

	_, err = second.Run(ctx, "quick", RunParams{})
	t.Logf("second driver: %v", err)
	host, _ := os.Hostname()
	if !IsRefused(err) || !strings.Contains(err.Error(), "blue is driven by another pgbluegreen") ||
		!strings.Contains(err.Error(), "host="+host) || !strings.Contains(err.Error(), fmt.Sprintf("pid=%d", os.Getpid())) {
		t.Fatalf("second driver while the first runs: %v; want a refusal naming the holder's host and pid", err)
	}
	if ran != 0 || otherState.Snapshot().Step("quick").Status != state.Pending {
		t.Fatalf("the refused driver ran its step (%d) or recorded it (%s)", ran, otherState.Snapshot().Step("quick").Status)
	}
	if _, err := second.Run(ctx, "quick", RunParams{DryRun: true}); err != nil {
		t.Errorf("a dry run (read-only) was refused: %v", err)
	}

	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first driver: %v", err)
	}
	if out, err := second.Run(ctx, "quick", RunParams{}); err != nil || out != OutcomeRan || ran != 1 {
		t.Fatalf("second driver once the first is done: %s %v (ran %d)", out, err, ran)
	}
	if n := queryOne[int64](t, le.Blue, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"); n != 0 {
		t.Errorf("%d advisory lock(s) left on blue after both drivers' steps", n)
	}
}
