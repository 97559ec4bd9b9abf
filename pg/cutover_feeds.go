package pg

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The feeds around a switch: the reverse feed prepared before writes stop,
// the drain and stop of the feed being left, the opposite feed started
// after it, and the reverse feed dropped when an attempt is undone.

// prepareReverseStep creates, before writes stop, green's publication and
// the disabled subscription on blue (its connection to green is proven
// now); the slot comes inside the pause, after the drain. What an earlier
// attempt left is dropped first.
func (r *run) prepareReverseStep() subStep {
	p := r.p
	rev := p.Reverse
	return subStep{name: "prepare reverse replication", target: "blue, green",
		plan: func() []PlanLine {
			out := []PlanLine{noteLine("blue", "what an earlier attempt left is dropped first, when there:")}
			out = append(out, stmtLines(dropSubscriptionStmts("blue", rev)...)...)
			out = append(out, stmtLines(dropSlotStmt("green", rev), createPublicationAllStmt("green", rev))...)
			return append(out, stmtLines(r.reverseSubscription()...)...)
		},
		run: func(ctx context.Context) (string, error) {
			blue, green := r.e.conn("blue"), r.e.conn("green")
			if err := dropReverseFeed(ctx, blue, green, rev); err != nil {
				return "", err
			}
			var has bool
			if err := green.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", rev).Scan(&has); err != nil {
				return "", fmt.Errorf("look for publication %s: %w", rev, err)
			}
			if !has {
				if err := createPublicationAllStmt("green", rev).Exec(ctx, green); err != nil {
					return "", fmt.Errorf("create publication %s on green: %w", rev, err)
				}
			}
			if err := ExecTx(ctx, blue, r.reverseSubscription()); err != nil {
				return "", fmt.Errorf("create subscription %s on blue: %w", rev, scrubPassword(err, p.ReplicationPassword))
			}
			return fmt.Sprintf("publication %s on green, subscription %s on blue (disabled, connected to %s)", rev, rev, r.greenForBlue()), nil
		}}
}

func (r *run) greenForBlue() Endpoint {
	if r.p.GreenForBlue != nil {
		return *r.p.GreenForBlue
	}
	return r.p.GreenEndpoint
}

// reverseSubscription is blue's subscription to green, as statements:
// created disabled, with no copy and no slot (the slot comes after the
// drain); connect = true proves blue reaches green now. The connection
// string is a Secret bind parameter, sent with statement logging off.
func (r *run) reverseSubscription() []Stmt {
	to := r.greenForBlue()
	rev := r.p.Reverse
	conninfo := fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=", QuoteConninfoValue(to.Host), to.Port,
		QuoteConninfoValue(to.DBName), QuoteConninfoValue(r.p.ReplicationRole))
	return SubscriptionParams{On: "blue", Name: rev, Publication: rev, Slot: rev,
		Conninfo: conninfo + QuoteConninfoValue(r.p.ReplicationPassword), ShownConninfo: conninfo + "********"}.Statements()
}

// advanceStep moves blue's forward slots past what the reverse feed wrote
// (a rollback's; blue is its target).
func (r *run) advanceStep(name string) subStep {
	d, f := r.d, r.f
	return subStep{name: name, target: d.to.name,
		plan: func() []PlanLine {
			out := stmtLines(flushStmts(d.to.name)...)
			for _, s := range f.startSlots {
				out = append(out, stmtLines(advanceSlotStmt(d.to.name, s, Later("the LSN of the message just flushed")))...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			lsn, err := advanceSlots(ctx, r.e.to, d.to.name, f.startSlots)
			return "to " + lsn, err
		}}
}

// drainSteps wait until the feed from -> to has applied everything written
// before writes stopped, then stop it.
func (r *run) drainSteps(held bool) []subStep {
	p, d, f := r.p, r.d, r.f
	drainLSN := Later("the drain LSN: " + d.from.name + "'s pg_current_wal_lsn() once its WAL is flushed")
	return []subStep{
		{name: "drain target", target: d.from.name,
			plan: func() []PlanLine {
				return stmtLines(append(flushStmts(d.from.name), drainTargetStmt(d.from.name, f.drainSlots))...)
			},
			run: func(ctx context.Context) (string, error) {
				if _, err := flushWAL(ctx, r.e.from, d.from.name); err != nil {
					return "", err
				}
				var lag int64
				var n int
				if err := drainTargetStmt(d.from.name, f.drainSlots).QueryRow(ctx, r.e.from, &r.drainLSN, &lag, &n); err != nil {
					return "", fmt.Errorf("read the drain target: %w", err)
				}
				if n != len(f.drainSlots) {
					return "", fmt.Errorf("found %d of the slots %s", n, strings.Join(f.drainSlots, ", "))
				}
				r.rep.LagAtPause, r.rep.DrainLSN = lag, r.drainLSN
				return fmt.Sprintf("%s, lag %d bytes", r.drainLSN, lag), nil
			}},
		r.together("drain, reading the sequences meanwhile", append([]subStep{
			subStep{name: "drain", target: d.from.name + " -> " + d.to.name, own: true,
				plan: func() []PlanLine {
					out := stmtLines(drainedStmt(d.from.name, f.drainSlots, drainLSN))
					out = append(out, stmtLines(flushStmts(d.to.name)...)...)
					return append(out, noteLine(d.from.name, "past %s: abort, everything put back", p.DrainTimeout))
				},
				run: func(ctx context.Context) (string, error) {
					ctx, cancel := context.WithTimeout(ctx, p.DrainTimeout)
					defer cancel()
					polls, err := waitDrained(ctx, r.e.from, r.e.to, d.from.name, d.to.name, f.drainSlots, r.drainLSN)
					if err != nil {
						return "", fmt.Errorf("drain (timeout %s): %w", p.DrainTimeout, err)
					}
					return fmt.Sprintf("every slot at %s after %d polls", r.drainLSN, polls), nil
				}},
			subStep{name: "read sequences", target: d.from.name,
				plan: func() []PlanLine {
					return []PlanLine{noteLine(d.from.name, "every sequence of %s read (two sessions): writes are stopped", d.from.name)}
				},
				run: func(ctx context.Context) (string, error) {
					start := time.Now()
					var err error
					r.seqs, err = ReadSequencesParallel(ctx, d.from.pool, SequenceSessions)
					r.seqReadMs = ms(time.Since(start))
					return fmt.Sprintf("%d sequences", len(r.seqs)), err
				}}}, r.releaseIf(held)...)...),
	}
}

// releaseIf is the release of held commits, when they may be held.
func (r *run) releaseIf(held bool) []subStep {
	if !held {
		return nil
	}
	return []subStep{r.releaseStep(false)}
}

// stopDrainedStep stops the drained feed: nothing more is applied once it
// returns.
func (r *run) stopDrainedStep() subStep {
	d, f := r.d, r.f
	return subStep{name: "stop " + d.from.name + " -> " + d.to.name + " replication", target: d.to.name,
		plan: func() []PlanLine { return stmtLines(disableSubscriptionStmts(d.to.name, f.drainSubs)...) },
		run: func(ctx context.Context) (string, error) {
			return "disabled " + strings.Join(f.drainSubs, ", "), disableSubscriptions(ctx, r.e.to, d.to.name, f.drainSubs)
		}}
}

// oppositeSteps start the feed from the target back to the source: the
// reverse feed for a cutover, blue's original feed for a rollback.
func (r *run) oppositeSteps(pos position) []subStep {
	d, f := r.d, r.f
	var out []subStep
	if !d.rollback {
		if !pos.oppositeSlot {
			out = append(out, subStep{name: "create reverse slot", target: "green",
				plan: func() []PlanLine {
					return stmtLines(createSlotStmt("green", r.p.Reverse).with("after the drain: it holds green's writes only"))
				},
				run: func(ctx context.Context) (string, error) {
					var lsn string
					if err := createSlotStmt("green", r.p.Reverse).QueryRow(ctx, r.e.to, &lsn); err != nil {
						return "", fmt.Errorf("create slot %s on green: %w", r.p.Reverse, err)
					}
					return "slot " + r.p.Reverse + " at " + lsn, nil
				}})
		}
		if !pos.oppositeSub {
			out = append(out, r.prepareReverseStep())
		}
	} else if !pos.oppositeOn {
		out = append(out, r.advanceStep("advance blue's slots"))
	}
	if !pos.oppositeOn {
		out = append(out, subStep{name: "enable " + d.to.name + " -> " + d.from.name + " replication", target: d.from.name,
			plan: func() []PlanLine { return stmtLines(enableSubscriptionStmts(d.from.name, f.startSubs)...) },
			run: func(ctx context.Context) (string, error) {
				return "enabled " + strings.Join(f.startSubs, ", "), ExecAll(ctx, r.e.from, enableSubscriptionStmts(d.from.name, f.startSubs))
			}})
	}
	return out
}

// dropReverseStep removes the reverse subscription (on blue), then its slot
// and publication (on green).
func (r *run) dropReverseStep() subStep {
	rev := r.p.Reverse
	return subStep{name: "drop reverse replication", target: "blue, green",
		plan: func() []PlanLine {
			out := stmtLines(dropSubscriptionStmts("blue", rev)...)
			return append(out, stmtLines(dropSlotStmt("green", rev), dropPublicationStmt("green", rev))...)
		},
		run: func(ctx context.Context) (string, error) {
			blue, green := r.e.conn("blue"), r.e.conn("green")
			if err := dropReverseFeed(ctx, blue, green, rev); err != nil {
				return "", err
			}
			return "", dropPublicationStmt("green", rev).Exec(ctx, green)
		}}
}

// dropReverseFeed drops the reverse subscription on blue when it exists,
// then its slot on green (dropSlot does nothing where there is none).
func dropReverseFeed(ctx context.Context, blue, green *pgxpool.Conn, rev string) error {
	if exists, err := subscriptionExists(ctx, blue, rev); err != nil {
		return err
	} else if exists {
		if err := dropSubscription(ctx, blue, "blue", rev); err != nil {
			return err
		}
	}
	return dropSlot(ctx, green, "green", rev)
}

func subscriptionExists(ctx context.Context, c *pgxpool.Conn, name string) (bool, error) {
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look for subscription %s: %w", name, err)
	}
	return exists, nil
}
