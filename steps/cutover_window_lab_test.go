package steps

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// TestCutoverWaitsForItsWindow holds green's apply behind a lock while
// blue writes more than the lag gate, under a live load. With a window of
// one second the cutover gives up before anything changes, saying the gate
// was never met; with a longer one it waits, telling the lag against the
// gate every second, and goes once the lock is gone and green has caught
// up. The ledger shows no write lost or duplicated.
func TestCutoverWaitsForItsWindow(t *testing.T) {
	l := newCutoverLab(t)
	l.catchUp(t)
	ctx := context.Background()
	cfg := l.runner.Config
	cfg.Cutover.MaxLagBytes = 256 << 10
	// lag holds green's apply behind a lock on events_log while blue writes
	// about a megabyte to it; release lets it go.
	lag := func() (release func()) {
		t.Helper()
		tx, err := l.runner.Green.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE public.events_log IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.runner.Blue.Exec(ctx, "INSERT INTO public.events_log (kind, body) SELECT 'window', jsonb_build_object('pad', repeat(md5(g::text), 16)) FROM generate_series(1, 2000) g"); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		return func() { once.Do(func() { _ = tx.Rollback(ctx) }) }
	}
	traffic := func() string {
		return monitor.ReadTraffic(ctx, cfg, l.runner.Blue, l.runner.Green).Target
	}
	var lines []string
	var mu sync.Mutex
	out := make(chan Line, 1024)
	l.runner.Out = out
	go func() {
		for ln := range out {
			mu.Lock()
			lines = append(lines, ln.Text)
			mu.Unlock()
		}
	}()
	defer close(out)

	t.Run("the window passes: nothing changes", func(t *testing.T) {
		release := lag()
		defer release()
		cfg.Cutover.Window.Duration = time.Second
		time.Sleep(300 * time.Millisecond)
		_, err := l.runner.Run(ctx, "cutover", RunParams{Confirmed: true})
		if err == nil || !strings.Contains(err.Error(), "the gate was met in 0 of") || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("cutover with green held behind a lock past a 1s window: %v", err)
		}
		t.Logf("refused: %v", err)
		if got := traffic(); got != "blue" {
			t.Errorf("traffic %q after the window passed, want blue", got)
		}
	})

	t.Run("it waits, and goes", func(t *testing.T) {
		release := lag()
		defer release()
		cfg.Cutover.Window.Duration = time.Minute
		go func() {
			time.Sleep(3 * time.Second)
			release()
		}()
		start := time.Now()
		res := l.loadWindow(t, 200, time.Second, time.Second, func() {
			if out := l.run(t, "cutover", ""); out != OutcomeRan {
				t.Fatalf("cutover: %s", out)
			}
		})
		t.Logf("the cutover went after %s; load %+v", time.Since(start).Round(time.Millisecond), res)
		if got := traffic(); got != "green" {
			t.Errorf("traffic %q after the cutover, want green", got)
		}
		mu.Lock()
		var waited []string
		for _, ln := range lines {
			if strings.Contains(ln, "waiting for the window") || strings.Contains(ln, "under the gate after") {
				waited = append(waited, ln)
			}
		}
		mu.Unlock()
		t.Logf("as the operator saw it:\n%s", strings.Join(waited, "\n"))
		if len(waited) < 2 || !strings.Contains(strings.Join(waited, "\n"), "under the gate after") {
			t.Errorf("the cutover did not say it waited for its window, then went: %q", waited)
		}
		if res.Errors != 0 {
			t.Errorf("clients saw %d errors (%s)", res.Errors, res.LastError)
		}
	})
	l.waitDrained(t, true, reverseReplication)
	if v := l.verify(t); !v.OK() {
		t.Errorf("ledger after the cutover: %+v", v)
	}
}
