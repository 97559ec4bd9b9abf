package pg

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Holding the source's commits to the target's apply for the last moments
// before the pause: the drained feed's subscriptions become the source's
// synchronous standbys with synchronous_commit = remote_apply, so every
// commit returns only once the target has applied it. At PAUSE the lag is
// then what is in flight, and the drain inside the pause is one poll. It
// is bounded in time (CutoverParams.HoldCommits), needs ALTER SYSTEM (a
// self-managed server), is skipped when the source has synchronous
// standbys of its own, and is released right after the switch and on every
// undo (a way out, the guard).

// holdStandbys is our synchronous_standby_names, told from anyone else's:
// the application names are the subscriptions', listed with FIRST n.
func holdStandbys(subs []string) string {
	q := make([]string, len(subs))
	for i, s := range subs {
		q[i] = Ident(s)
	}
	return fmt.Sprintf("FIRST %d (%s)", len(subs), strings.Join(q, ", "))
}

// holdStmts make every commit on the source wait until the drained feed's
// subscribers have applied it.
func holdStmts(on string, subs []string) []Stmt {
	return []Stmt{
		alterSystemStmt(on, "synchronous_standby_names", holdStandbys(subs)),
		alterSystemStmt(on, "synchronous_commit", "remote_apply"),
		reloadConfStmt(on),
	}
}

// releaseStmts undo holdStmts.
func releaseStmts(on string) []Stmt {
	return []Stmt{
		alterSystemResetStmt(on, "synchronous_standby_names"),
		alterSystemResetStmt(on, "synchronous_commit"),
		reloadConfStmt(on),
	}
}

// holdState reads whether the source's commits are held by us (its
// synchronous_standby_names is ours), or could be: none set, and neither
// setting written by an earlier ALTER SYSTEM (its RESET would lose it).
func holdState(ctx context.Context, c *pgxpool.Conn, subs []string) (held, free bool, err error) {
	var names string
	var altered bool
	err = c.QueryRow(ctx, `
SELECT current_setting('synchronous_standby_names'),
       EXISTS (SELECT 1 FROM pg_settings WHERE name IN ('synchronous_standby_names', 'synchronous_commit')
               AND coalesce(sourcefile, '') LIKE '%postgresql.auto.conf')`).Scan(&names, &altered)
	if err != nil {
		return false, false, fmt.Errorf("read the synchronous settings: %w", err)
	}
	held = names == holdStandbys(subs)
	return held, names == "" && !altered, nil
}

// reloaded waits until the server's configuration says what it should
// (pg_reload_conf only signals the postmaster).
func reloaded(ctx context.Context, c *pgxpool.Conn, want string) error {
	for {
		var names string
		if err := c.QueryRow(Quiet(ctx), "SELECT setting FROM pg_settings WHERE name = 'synchronous_standby_names'").Scan(&names); err != nil {
			return err
		}
		if names == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the reloaded configuration did not arrive: %w", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// holdStep holds the source's commits, waits (at most HoldCommits) until
// the drained feed's lag is small, and lets them go again right before the
// PAUSE: what commits in between is all the drain has left to wait for.
// They are not held through the PAUSE: a transaction that changes nothing
// published (the probe's temporary table, a table outside the
// publications) has nothing for the target to apply, and its commit was
// seen to wait 400 ms for the next report from the target while PAUSE,
// which lets no later transaction start, waited for it. When the source
// cannot be held (its own synchronous standbys, ALTER SYSTEM refused), it
// says so and the cutover goes on without.
func (r *run) holdStep() subStep {
	p, d, f := r.p, r.d, r.f
	return subStep{name: "hold " + d.from.name + "'s commits", target: d.from.name, own: true,
		plan: func() []PlanLine {
			out := append(stmtLines(holdStmts(d.from.name, f.drainSubs)...),
				noteLine(d.from.name, "only when %s has no synchronous standby of its own and the lag is under max_lag_bytes; then at most %s until the lag is under %d bytes: commits on %s return once %s applied them; then released, right before the PAUSE (and by every undo)", d.from.name, p.HoldCommits, holdLag, d.from.name, d.to.name))
			return append(out, stmtLines(releaseStmts(d.from.name)...)...)
		},
		run: func(ctx context.Context) (string, error) {
			c := r.e.from
			// Held with green far behind, every commit would wait for all
			// of it: the lag gate first.
			if _, err := checkLag(ctx, c, f.drainSlots, p.MaxLagBytes); err != nil {
				return "", err
			}
			_, free, err := holdState(ctx, c, f.drainSubs)
			if err != nil {
				return "", err
			}
			if !free {
				return "not held: " + d.from.name + " has synchronous settings of its own", nil
			}
			bctx, cancel := context.WithTimeout(ctx, p.StatementTimeout)
			defer cancel()
			if err := ExecAll(bctx, c, holdStmts(d.from.name, f.drainSubs)); err != nil {
				// A managed server refuses ALTER SYSTEM: go on without.
				_ = ExecAll(context.WithoutCancel(ctx), c, releaseStmts(d.from.name))
				return "not held: " + err.Error(), nil
			}
			r.held = true
			if err := reloaded(bctx, c, holdStandbys(f.drainSubs)); err != nil {
				return "", err
			}
			start := time.Now()
			deadline := start.Add(p.HoldCommits)
			var lag int64
			for {
				if err := c.QueryRow(Quiet(ctx), "SELECT "+slotApplyLag+" FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = ANY($1)", f.drainSlots).Scan(&lag); err != nil {
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
			if err := ExecAll(ctx, c, releaseStmts(d.from.name)); err != nil {
				return "", err
			}
			if err := reloaded(bctx, c, ""); err != nil {
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
		plan: func() []PlanLine {
			return stmtLines(releaseStmts(d.from.name)[0].with("when they were held"), releaseStmts(d.from.name)[1], releaseStmts(d.from.name)[2])
		},
		run: func(ctx context.Context) (string, error) {
			if !r.held {
				return "nothing held", nil
			}
			c := r.e.fromSide
			if err := ExecAll(ctx, c, releaseStmts(d.from.name)); err != nil {
				return "", err
			}
			r.held = false
			return "", reloaded(ctx, c, "")
		}}
}
