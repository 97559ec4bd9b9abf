package cutover

import (
	"context"
	"fmt"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// holdStep holds the source's commits (every database's drained feed is
// a synchronous standby), waits (at most HoldCommits) until their lag is
// small, and lets them go again right before the
// PAUSE: what commits in between is all the drain has left to wait for.
// They are not held through the PAUSE: a transaction that changes nothing
// published (the probe's temporary table, a table outside the
// publications) has nothing for the target to apply, and its commit was
// seen to wait 400 ms for the next report from the target while PAUSE,
// which lets no later transaction start, waited for it. When the source
// cannot be held (its own synchronous standbys, ALTER SYSTEM refused), it
// says so and the cutover goes on without.
func (r *run) holdStep() subStep {
	p, d := r.p, r.d
	f := feeds{drainSlots: r.allDrainSlots(), drainSubs: r.allDrainSubs()}
	return subStep{name: "hold " + d.from.name + "'s commits", target: d.from.name, own: true,
		plan: func() []pg.PlanLine {
			out := append(pg.Lines(pg.HoldStmts(d.from.name, f.drainSubs)...),
				pg.Note(d.from.name, "only when %s has no synchronous standby of its own and the lag is under max_lag_bytes; then at most %s until the lag is under %d bytes: commits on %s return once %s applied them; then released, right before the PAUSE (and by every undo)", d.from.name, p.HoldCommits, holdLag, d.from.name, d.to.name))
			return append(out, pg.Lines(pg.ReleaseStmts(d.from.name)...)...)
		},
		run: func(ctx context.Context) (string, error) {
			c := r.e.from
			// Held with green far behind, every commit would wait for all
			// of it: the lag gate first.
			if _, err := pg.CheckLag(ctx, c, f.drainSlots, p.MaxLagBytes); err != nil {
				return "", err
			}
			_, free, err := pg.HoldState(ctx, c, f.drainSubs)
			if err != nil {
				return "", err
			}
			if !free {
				return "not held: " + d.from.name + " has synchronous settings of its own", nil
			}
			bctx, cancel := context.WithTimeout(ctx, p.StatementTimeout)
			defer cancel()
			if err := pg.ExecAll(bctx, c, pg.HoldStmts(d.from.name, f.drainSubs)); err != nil {
				// A managed server refuses ALTER SYSTEM: go on without.
				_ = pg.ExecAll(context.WithoutCancel(ctx), c, pg.ReleaseStmts(d.from.name))
				return "not held: " + err.Error(), nil
			}
			r.held = true
			if err := pg.Reloaded(bctx, c, pg.HoldStandbys(f.drainSubs)); err != nil {
				return "", err
			}
			start := time.Now()
			deadline := start.Add(p.HoldCommits)
			var lag int64
			for {
				if lag, err = pg.FeedLag(pg.Quiet(ctx), c, f.drainSlots); err != nil {
					return "", err
				}
				if lag < holdLag || time.Now().After(deadline) {
					break
				}
				select {
				case <-ctx.Done():
					return "", ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
			held := time.Since(start).Round(time.Millisecond)
			if err := pg.ExecAll(ctx, c, pg.ReleaseStmts(d.from.name)); err != nil {
				return "", err
			}
			if err := pg.Reloaded(bctx, c, ""); err != nil {
				return "", err
			}
			r.held = false
			return fmt.Sprintf("commits waited for %s's apply; lag %d bytes after %s; released", d.to.name, lag, held), nil
		}}
}

// holdLag is the lag under which holding has done its work.
const holdLag = 16 << 10

// releaseStep lets the source's commits go again, when an interrupted
// attempt left them held: first in every undo (before a RESUME lets the
// application commit on the source again), and in a finish. It waits
// until the setting is gone.
func (r *run) releaseStep() subStep {
	d := r.d
	return subStep{name: "release " + d.from.name + "'s commits", target: d.from.name,
		plan: func() []pg.PlanLine {
			return pg.Lines(pg.ReleaseStmts(d.from.name)[0].With("when they were held"), pg.ReleaseStmts(d.from.name)[1], pg.ReleaseStmts(d.from.name)[2])
		},
		run: func(ctx context.Context) (string, error) {
			if !r.held {
				return "nothing held", nil
			}
			c := r.e.fromSide
			if err := pg.ExecAll(ctx, c, pg.ReleaseStmts(d.from.name)); err != nil {
				return "", err
			}
			r.held = false
			return "", pg.Reloaded(ctx, c, "")
		}}
}
