package cutover

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// The feeds around a switch: the reverse feed prepared before writes stop,
// the drain and stop of the feed being left, the opposite feed started
// after it, and the reverse feed dropped when an attempt is undone.

// prepareReverseStep creates, before writes stop, green's publication, the
// reverse slot and the disabled subscription on blue (its connection to
// green is proven now). The slot holds from now on what the forward feed
// applies on green too: inside the pause the subscription's start is set
// past all of it (anchorStep), which costs a round trip where creating the
// slot there cost 13-32 ms. What an earlier attempt left is dropped first.
func (r *run) prepareReverseStep() subStep {
	p := r.p
	rev := p.Reverse
	return subStep{name: "prepare reverse replication", target: "blue, green",
		plan: func() []pg.PlanLine {
			out := []pg.PlanLine{pg.Note("blue", "what an earlier attempt left is dropped first, when there:")}
			out = append(out, pg.Lines(pg.DropSubscriptionStmts("blue", rev)...)...)
			out = append(out, pg.Lines(pg.DropSlotStmt("green", rev), pg.CreatePublicationStmt("green", pg.PublicationSpec{Name: rev, AllTables: true}),
				pg.CreateSlotStmt("green", rev).With("its start is set inside the pause, once the drain is done"))...)
			return append(out, pg.Lines(r.reverseSubscription()...)...)
		},
		run: func(ctx context.Context) (string, error) {
			blue, green := r.e.conn("blue"), r.e.conn("green")
			if err := dropReverseFeed(ctx, blue, green, rev); err != nil {
				return "", err
			}
			has, err := pg.PublicationExists(ctx, green, rev)
			if err != nil {
				return "", err
			}
			if !has {
				if err := pg.CreatePublicationStmt("green", pg.PublicationSpec{Name: rev, AllTables: true}).Exec(ctx, green); err != nil {
					return "", fmt.Errorf("create publication %s on green: %w", rev, err)
				}
			}
			var lsn string
			if err := pg.CreateSlotStmt("green", rev).QueryRow(ctx, green, &lsn); err != nil {
				return "", fmt.Errorf("create slot %s on green: %w", rev, err)
			}
			if err := pg.ExecTx(ctx, blue, r.reverseSubscription()); err != nil {
				return "", fmt.Errorf("create subscription %s on blue: %w", rev, pg.ScrubPassword(err, p.ReplicationPassword))
			}
			return fmt.Sprintf("publication %s and slot %s (at %s) on green, subscription %s on blue (disabled, connected to %s)", rev, rev, lsn, rev, r.greenForBlue()), nil
		}}
}

func (r *run) greenForBlue() pg.Endpoint {
	if r.p.GreenForBlue != nil {
		return *r.p.GreenForBlue
	}
	return r.p.GreenEndpoint
}

// reverseSubscription is blue's subscription to green, as statements:
// created disabled, with no copy and no slot (the slot comes after the
// drain); connect = true proves blue reaches green now. The connection
// string is a Secret bind parameter, sent with statement logging off.
func (r *run) reverseSubscription() []pg.Stmt {
	to := r.greenForBlue()
	rev := r.p.Reverse
	conninfo := fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=", pg.QuoteConninfoValue(to.Host), to.Port,
		pg.QuoteConninfoValue(to.DBName), pg.QuoteConninfoValue(r.p.ReplicationRole))
	return pg.SubscriptionParams{On: "blue", Name: rev, Publication: rev, Slot: rev,
		Conninfo: conninfo + pg.QuoteConninfoValue(r.p.ReplicationPassword), ShownConninfo: conninfo + "********"}.Statements()
}

// advanceStep moves blue's forward slots past what the reverse feed wrote
// (a rollback's; blue is its target).
func (r *run) advanceStep(name string) subStep {
	d, f := r.d, r.f
	return subStep{name: name, target: d.to.name,
		plan: func() []pg.PlanLine {
			out := pg.Lines(pg.FlushStmts(d.to.name)...)
			for _, s := range f.startSlots {
				out = append(out, pg.Lines(pg.AdvanceSlotStmt(d.to.name, s, pg.Later("the LSN of the message just flushed")))...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			lsn, err := pg.AdvanceSlots(ctx, r.e.to, d.to.name, f.startSlots)
			return "to " + lsn, err
		}}
}

// drainSteps wait, writes stopped, until the target has applied
// everything the source wrote before (and flushed it), then stop nothing:
// the feed stays on until after the switch (swapSteps).
func (r *run) drainSteps() []subStep {
	p, d, f := r.p, r.d, r.f
	drainLSN := pg.Later("the drain LSN: " + d.from.name + "'s WAL insert position once writes stopped")
	return []subStep{
		{name: "drain target", target: d.from.name,
			plan: func() []pg.PlanLine {
				flush := pg.FlushStmts(d.from.name)
				flush[0] = flush[0].With("only when the WAL is not flushed up to that position (an asynchronous commit): then the drain target is the LSN of this message")
				out := pg.Lines(pg.WrittenStmt(d.from.name).With("the drain target, after every commit made before writes stopped"))
				return append(out, pg.Lines(append(flush, pg.DrainTargetStmt(d.from.name, f.drainSlots))...)...)
			},
			run: func(ctx context.Context) (string, error) {
				// Every commit acknowledged before the PAUSE is before the
				// insert position; when that is flushed, the walsender
				// reads up to it and then sends the keepalive the drain
				// waits for. Otherwise a record of our own, flushed, marks
				// the end (and the drain's polls flush one now and then, so
				// a keepalive comes however the WAL ends).
				var ins string
				var flushed bool
				if err := pg.WrittenStmt(d.from.name).QueryRow(ctx, r.e.from, &ins, &flushed); err != nil {
					return "", fmt.Errorf("read the drain target: %w", err)
				}
				at, err := pg.ParseLSN(ins)
				if err != nil {
					return "", fmt.Errorf("read the drain target: %w", err)
				}
				r.drainLSN = pg.LastRecordEnd(at).String()
				if !flushed {
					if r.drainLSN, err = pg.FlushWAL(ctx, r.e.from, d.from.name); err != nil {
						return "", err
					}
				}
				var lag int64
				var n int
				if err := pg.DrainTargetStmt(d.from.name, f.drainSlots).QueryRow(ctx, r.e.from, &lag, &n); err != nil {
					return "", fmt.Errorf("read the drain target: %w", err)
				}
				if n != len(f.drainSlots) {
					return "", fmt.Errorf("found %d of the slots %s", n, strings.Join(f.drainSlots, ", "))
				}
				r.rep.LagAtPause, r.rep.DrainLSN = lag, r.drainLSN
				return fmt.Sprintf("%s, lag %d bytes", r.drainLSN, lag), nil
			}},
		{name: "drain", target: d.from.name + " -> " + d.to.name, own: true,
			plan: func() []pg.PlanLine {
				out := pg.Lines(pg.AppliedStmt(d.to.name, f.drainSubs, drainLSN), pg.InsertLSNStmt(d.to.name))
				return append(out, pg.Note(d.from.name, "past %s: abort, everything put back", p.DrainTimeout))
			},
			run: func(ctx context.Context) (string, error) {
				ctx, cancel := context.WithTimeout(ctx, p.DrainTimeout)
				defer cancel()
				at, polls, err := pg.WaitApplied(ctx, r.e.from, r.e.to, d.from.name, d.to.name, f.drainSubs, r.drainLSN)
				if err != nil {
					return "", fmt.Errorf("drain (timeout %s): %w", p.DrainTimeout, err)
				}
				r.toLSN = at
				return fmt.Sprintf("%s applied everything up to %s after %d polls; its position then %s", d.to.name, r.drainLSN, polls, at), nil
			}},
	}
}

// flushTargetStep flushes the target's WAL once the drain is done: its
// apply workers commit asynchronously, and what they applied must be
// durable before any client writes there. When the WAL is flushed past
// the drain's position already (the WAL writer, another commit), nothing
// is written.
func (r *run) flushTargetStep() subStep {
	d := r.d
	at := pg.Later(d.to.name + "'s WAL insert position once the drain is done")
	return subStep{name: "flush " + d.to.name + "'s WAL", target: d.to.name,
		plan: func() []pg.PlanLine {
			return append(pg.Lines(pg.FlushedStmt(d.to.name, at)), pg.Lines(pg.FlushStmts(d.to.name)...)...)
		},
		run: func(ctx context.Context) (string, error) {
			if r.toLSN != "" {
				var done bool
				if err := pg.FlushedStmt(d.to.name, r.toLSN).QueryRow(ctx, r.e.to, &done); err != nil {
					return "", err
				}
				if done {
					return "flushed past " + r.toLSN + " already", nil
				}
			}
			lsn, err := pg.FlushWAL(ctx, r.e.to, d.to.name)
			return "flushed at " + lsn, err
		}}
}

// anchorSteps set, writes still stopped and once the drain is done, where
// the opposite feed will start: past everything the drained feed brought
// to the target, and before anything the application writes there. A
// cutover sets blue's reverse subscription's origin to green's position
// (its slot and subscription made first when missing: a way out after an
// earlier version's attempt); a rollback moves blue's slots past what the
// reverse feed wrote. Nothing when the opposite feed runs already.
func (r *run) anchorSteps(pos position) []subStep {
	d := r.d
	if pos.oppositeOn {
		return []subStep{r.flushTargetStep()}
	}
	if d.rollback {
		// It flushes blue (the target) first.
		return []subStep{r.advanceStep("advance blue's slots")}
	}
	var out []subStep
	if !pos.oppositeSlot || !pos.oppositeSub {
		out = append(out, r.prepareReverseStep())
	}
	rev := r.p.Reverse
	at := pg.Later("green's WAL insert position once the drain is done")
	set := subStep{name: "set where the reverse feed starts", target: "blue",
		plan: func() []pg.PlanLine {
			return pg.Lines(pg.AnchorStmt("blue", rev, at))
		},
		run: func(ctx context.Context) (string, error) {
			lsn := r.toLSN
			if lsn == "" {
				// The drain ran in an earlier process: writes are still
				// stopped, so green's position now is as good.
				// (A pool session: the held ones are busy with the flush
				// and the logins.)
				if err := pg.InsertLSNStmt(d.to.name).QueryRow(ctx, d.to.pool, &lsn); err != nil {
					return "", err
				}
			}
			origin, err := pg.Anchor(ctx, r.e.from, "blue", rev, lsn)
			return fmt.Sprintf("origin %s of subscription %s at green's %s", origin, rev, lsn), err
		}}
	return append(out, r.together("flush green, set where the reverse feed starts", r.flushTargetStep(), set))
}

// swapSteps stop the drained feed (nothing more is applied once it
// returns), then start the opposite one, each only when pos says it is
// still to do. A cutover's reverse subscription is enabled only once its
// start is set (anchorSteps): from the slot's own start it would send blue
// back what blue sent green.
func (r *run) swapSteps(pos position) []subStep {
	d, f := r.d, r.f
	var out []subStep
	if pos.drainedOn {
		out = append(out, subStep{name: "stop " + d.from.name + " -> " + d.to.name + " replication", target: d.to.name,
			plan: func() []pg.PlanLine { return pg.Lines(pg.DisableSubscriptionStmts(d.to.name, f.drainSubs)...) },
			run: func(ctx context.Context) (string, error) {
				return "disabled " + strings.Join(f.drainSubs, ", "), pg.DisableSubscriptions(ctx, r.e.to, d.to.name, f.drainSubs)
			}})
	}
	if !pos.oppositeOn {
		out = append(out, subStep{name: "enable " + d.to.name + " -> " + d.from.name + " replication", target: d.from.name,
			plan: func() []pg.PlanLine {
				var out []pg.PlanLine
				if !d.rollback {
					out = pg.Lines(pg.FlushStmts(d.from.name)...)
					out = append(out, pg.Note("blue", "the start set inside the pause is now durable; the subscription must have one"))
				}
				return append(out, pg.Lines(pg.EnableParams{On: d.from.name, Names: f.startSubs}.Statements()...)...)
			},
			run: func(ctx context.Context) (string, error) {
				if !d.rollback {
					if _, err := pg.FlushWAL(ctx, r.e.from, d.from.name); err != nil {
						return "", err
					}
					ok, err := pg.Anchored(ctx, r.e.from, r.p.Reverse)
					if err != nil {
						return "", err
					}
					if !ok {
						return "", fmt.Errorf("subscription %s on blue has no start set on green: enabled, it would send blue back what blue sent, or skip green's writes; rebuild the reverse feed (run rollback only once it exists)", r.p.Reverse)
					}
				}
				return "enabled " + strings.Join(f.startSubs, ", "), pg.EnableParams{On: d.from.name, Names: f.startSubs}.Exec(ctx, r.e.from)
			}})
	}
	return out
}

// dropReverseStep removes the reverse subscription (on blue), then its slot
// and publication (on green).
func (r *run) dropReverseStep() subStep {
	rev := r.p.Reverse
	return subStep{name: "drop reverse replication", target: "blue, green",
		plan: func() []pg.PlanLine {
			out := pg.Lines(pg.DropSubscriptionStmts("blue", rev)...)
			return append(out, pg.Lines(pg.DropSlotStmt("green", rev), pg.DropPublicationStmt("green", rev))...)
		},
		run: func(ctx context.Context) (string, error) {
			blue, green := r.e.conn("blue"), r.e.conn("green")
			if err := dropReverseFeed(ctx, blue, green, rev); err != nil {
				return "", err
			}
			return "", pg.DropPublicationStmt("green", rev).Exec(ctx, green)
		}}
}

// dropReverseFeed drops the reverse subscription on blue when it exists,
// then its slot on green (DropSlotParams does nothing where there is none).
func dropReverseFeed(ctx context.Context, blue, green *pgxpool.Conn, rev string) error {
	if exists, err := pg.SubscriptionExists(ctx, blue, rev); err != nil {
		return err
	} else if exists {
		if err := pg.DropSubscription(ctx, blue, "blue", rev); err != nil {
			return err
		}
	}
	_, err := pg.DropSlotParams{On: "green", Name: rev}.Exec(ctx, green)
	return err
}

func subscriptionExists(ctx context.Context, c *pgxpool.Conn, name string) (bool, error) {
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look for subscription %s: %w", name, err)
	}
	return exists, nil
}
