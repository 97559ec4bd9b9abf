package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// wait-catch-up, and the wait for green to drain that verify-data uses.

// checkCaughtUp is done when every slot has reached blue's current LSN and
// every table's initial copy is ready, right now. Under live writes it
// rarely is: the run then waits.
func checkCaughtUp(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBoth(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	target, err := pg.CurrentLSN(ctx, e.Blue)
	if err != nil {
		return CheckResult{}, err
	}
	prog, err := pg.ReadSlotProgress(ctx, e.Blue, e.Config.FeedNames(), target)
	if err != nil {
		return CheckResult{}, err
	}
	cp, err := pg.ReadCopyProgress(ctx, e.Green, e.Config.FeedNames())
	if err != nil {
		return CheckResult{}, err
	}
	if prog.Reached() && cp.Ready == cp.Total {
		return CheckResult{Done: true, Detail: fmt.Sprintf("caught up: every slot at %s, %d/%d tables ready", target, cp.Ready, cp.Total)}, nil
	}
	return CheckResult{Detail: fmt.Sprintf("now %d bytes behind blue's current LSN %s (live writes keep it moving), %d/%d tables ready", prog.Total(), target, cp.Ready, cp.Total)}, nil
}

// runWaitCatchUp takes blue's current LSN as the target and waits until
// every slot's confirmed_flush_lsn reaches it and every table is ready,
// failing at once on apply or sync errors, up to timeouts.lag_wait.
func runWaitCatchUp(ctx context.Context, e *Env) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	qctx, cancel := e.bounded(ctx)
	target, err := pg.CurrentLSN(qctx, e.Blue)
	cancel()
	if err != nil {
		return err
	}
	_, err = e.waitDrained(ctx, target, e.Config.Timeouts.LagWait.Duration, true)
	return err
}

// drainPoll is how often a wait reads the slots (one query on blue, three
// on green); workerGrace is how long an apply worker may be down (it
// restarts after wal_retrieve_retry_interval, 5 s by default) before the
// wait fails.
const drainPoll = 250 * time.Millisecond

var workerGrace = 30 * time.Second // a variable so tests can shorten it

// drainStats is what a wait measured.
type drainStats struct {
	Took          time.Duration
	StartBehind   int64
	BytesPerSec   float64
	TablesCopied  int
	SubscriptionN int
}

// waitDrained polls every drainPoll until each slot reaches target (and, with
// ready, every table's initial sync is done), logging progress every 5 s.
// Apply or sync errors counted since the start of the wait fail it at once.
func (e *Env) waitDrained(ctx context.Context, target string, timeout time.Duration, ready bool) (drainStats, error) {
	var st drainStats
	start := time.Now()
	deadline := start.Add(timeout)
	names := e.Config.FeedNames()
	baseline := map[string][2]int64{}
	if subs, err := e.readSubs(ctx); err == nil {
		for _, s := range subs {
			baseline[s.Name] = [2]int64{s.ApplyErrors, s.SyncErrors}
		}
	} else {
		return st, err
	}
	e.Logf("waiting for every slot to reach blue's LSN %s (timeout %s)", target, timeout)
	lastLog, lastBehind := time.Time{}, int64(-1)
	// An apply worker that cannot connect (password, pg_hba, network)
	// counts no error in pg_stat_subscription_stats: it just keeps
	// restarting. Waiting for lag_wait would hide it for half an hour. One
	// never launched, while green's worker slots are all taken by table
	// syncs, is waiting for a slot: that is said as such, and waited for.
	notRunningSince := map[string]time.Time{}
	launched := map[string]bool{}
	lastNotLaunched := map[string]time.Time{}
	var tracker pg.SyncTracker
	for first := true; ; first = false {
		qctx, cancel := e.bounded(ctx)
		prog, err := pg.ReadSlotProgress(qctx, e.Blue, e.Config.FeedNames(), target)
		var cp pg.CopyProgress
		if err == nil {
			cp, err = pg.ReadCopyProgress(qctx, e.Green, names)
		}
		cancel()
		if err != nil {
			return st, err
		}
		if len(prog.Missing) > 0 {
			return st, fmt.Errorf("slot %s is gone from blue: replication stopped; the run must start over from create-slots", strings.Join(prog.Missing, ", "))
		}
		subs, err := e.readSubs(ctx)
		if err != nil {
			return st, err
		}
		for _, s := range subs {
			if !contains(names, s.Name) {
				continue
			}
			if !s.Enabled {
				return st, fmt.Errorf("subscription %s is disabled: nothing consumes its slot; run enable-subscriptions", s.Name)
			}
			if err := e.followWorker(ctx, s, launched, notRunningSince, lastNotLaunched); err != nil {
				return st, err
			}
			b := baseline[s.Name]
			if s.ApplyErrors > b[0] || s.SyncErrors > b[1] {
				return st, fmt.Errorf("subscription %s reports %d apply and %d sync error(s) since the wait began: read green's log for the failing statement (a duplicate key or a missing table), fix it on green, then run wait-catch-up again",
					s.Name, s.ApplyErrors-b[0], s.SyncErrors-b[1])
			}
		}
		behind := prog.Total()
		if first {
			st.StartBehind = behind
		}
		done := prog.Reached() && (!ready || cp.Ready == cp.Total)
		now := time.Now()
		if done || now.Sub(lastLog) >= 5*time.Second {
			rate := ""
			if lastBehind >= 0 && !lastLog.IsZero() {
				rate = fmt.Sprintf(", draining %.0f B/s", float64(lastBehind-behind)/now.Sub(lastLog).Seconds())
			}
			line := fmt.Sprintf("%d bytes behind %s (all slots)%s", behind, target, rate)
			if cp.Total > 0 {
				qctx, cancel := e.bounded(ctx)
				sample, err := pg.ReadSyncSample(qctx, e.Green, e.Blue, e.Config.SyncSources())
				cancel()
				if err != nil {
					return st, err
				}
				line = tracker.Add(sample).Line() + "; " + line
			}
			e.Logf("%s", line)
			lastLog, lastBehind = now, behind
		}
		if done {
			st.Took = time.Since(start)
			st.TablesCopied = cp.Total
			st.SubscriptionN = len(names)
			if st.Took > 0 {
				st.BytesPerSec = float64(st.StartBehind) / st.Took.Seconds()
			}
			e.Logf("caught up with %s in %s (%d bytes behind at the start, %.0f B/s)", target, st.Took.Round(time.Millisecond), st.StartBehind, st.BytesPerSec)
			return st, nil
		}
		if now.After(deadline) {
			return st, fmt.Errorf("not caught up with %s after %s: %d bytes behind, %d/%d tables ready (not ready: %s); raise timeouts.lag_wait, or look at green's log for a stuck apply worker",
				target, timeout, behind, cp.Ready, cp.Total, strings.Join(cp.NotReady, ", "))
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(drainPoll):
		}
	}
}

func (e *Env) readSubs(ctx context.Context) ([]pg.Subscription, error) {
	d := 30 * time.Second
	if e.Config.Timeouts.Statement.Duration > 0 {
		d = e.Config.Timeouts.Statement.Duration
	}
	return pg.ReadSubscriptions(ctx, e.Green, d)
}

// followWorker checks one subscription's apply worker during a wait: one
// that ran and has been down past workerGrace cannot stream from blue;
// one never launched is waiting for a worker slot while green's are all
// taken (said every 30 s, and waited for), or, with slots free past
// workerGrace, did not start.
func (e *Env) followWorker(ctx context.Context, s pg.Subscription, launched map[string]bool, notRunningSince, lastSaid map[string]time.Time) error {
	if s.WorkerRunning {
		launched[s.Name] = true
		delete(notRunningSince, s.Name)
		return nil
	}
	since, ok := notRunningSince[s.Name]
	if !ok {
		notRunningSince[s.Name] = time.Now()
		return nil
	}
	if !launched[s.Name] {
		qctx, cancel := e.bounded(ctx)
		w, err := pg.ReadWorkerState(qctx, e.Green, s.Name)
		cancel()
		if err != nil {
			return err
		}
		if w.InUse >= w.Max {
			if time.Since(lastSaid[s.Name]) >= 30*time.Second {
				e.Logf("%s", w.NotLaunched(s.Name))
				lastSaid[s.Name] = time.Now()
			}
			notRunningSince[s.Name] = time.Now()
			return nil
		}
		if time.Since(since) > workerGrace {
			return fmt.Errorf("the apply worker of subscription %s has not started in %s though green has free worker slots (%d of %d in use): read green's log (max_worker_processes, a failure to connect to blue: pg_hba.conf on blue, the password)",
				s.Name, time.Since(since).Round(time.Second), w.InUse, w.Max)
		}
		return nil
	}
	if time.Since(since) > workerGrace {
		return fmt.Errorf("the apply worker of subscription %s has not been running for %s: green cannot stream from blue; read green's log (connection refused, password authentication failed, pg_hba.conf on blue, max_logical_replication_workers)",
			s.Name, time.Since(since).Round(time.Second))
	}
	return nil
}

// planWaitCatchUp is wait-catch-up's plan: reads only; in a dry run, with
// where the sync stands now.
func planWaitCatchUp(ctx context.Context, e *Env) ([]Action, error) {
	out := []Action{
		note(Blue, "reads only: blue's current WAL position once, as the target; then every %s how far slots %s are from it (pg_replication_slots)", drainPoll, strings.Join(e.Config.FeedNames(), ", ")),
		note(Green, "every %s: the tables not ready yet (pg_subscription_rel), each subscription's apply worker and error counts (pg_stat_subscription, pg_stat_subscription_stats)", drainPoll),
		note(BlueGreen, "every 5 s, one progress line: each table's state and size so far on green (pg_subscription_rel, pg_table_size, pg_stat_progress_copy), its size on blue, the slots' lag and pg_stat_replication's replay_lag"),
		note(BlueGreen, "until every slot's confirmed_flush_lsn reaches the target and every table is ready (timeout %s); apply or sync errors fail it at once", e.Config.Timeouts.LagWait),
	}
	if e.Green != nil && e.Blue != nil {
		sample, err := pg.ReadSyncSample(ctx, e.Green, e.Blue, e.Config.SyncSources())
		if err != nil {
			return nil, err
		}
		var t pg.SyncTracker
		out = append(out, note(BlueGreen, "now: %s", t.Add(sample).Line()))
	}
	return out, nil
}
