package pg

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
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
		plan: func() []PlanLine {
			out := []PlanLine{noteLine("blue", "what an earlier attempt left is dropped first, when there:")}
			out = append(out, stmtLines(dropSubscriptionStmts("blue", rev)...)...)
			out = append(out, stmtLines(DropSlotStmt("green", rev), CreatePublicationStmt("green", PublicationSpec{Name: rev, AllTables: true}),
				CreateSlotStmt("green", rev).with("its start is set inside the pause, once the drain is done"))...)
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
				if err := CreatePublicationStmt("green", PublicationSpec{Name: rev, AllTables: true}).Exec(ctx, green); err != nil {
					return "", fmt.Errorf("create publication %s on green: %w", rev, err)
				}
			}
			var lsn string
			if err := CreateSlotStmt("green", rev).QueryRow(ctx, green, &lsn); err != nil {
				return "", fmt.Errorf("create slot %s on green: %w", rev, err)
			}
			if err := ExecTx(ctx, blue, r.reverseSubscription()); err != nil {
				return "", fmt.Errorf("create subscription %s on blue: %w", rev, scrubPassword(err, p.ReplicationPassword))
			}
			return fmt.Sprintf("publication %s and slot %s (at %s) on green, subscription %s on blue (disabled, connected to %s)", rev, rev, lsn, rev, r.greenForBlue()), nil
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

// drainSteps wait, writes stopped, until the target has applied
// everything the source wrote before (and flushed it), then stop nothing:
// the feed stays on until after the switch (swapSteps).
func (r *run) drainSteps() []subStep {
	p, d, f := r.p, r.d, r.f
	drainLSN := Later("the drain LSN: " + d.from.name + "'s WAL insert position once writes stopped")
	return []subStep{
		{name: "drain target", target: d.from.name,
			plan: func() []PlanLine {
				flush := flushStmts(d.from.name)
				flush[0] = flush[0].with("only when the WAL is not flushed up to that position (an asynchronous commit): then the drain target is the LSN of this message")
				out := stmtLines(writtenStmt(d.from.name).with("the drain target, after every commit made before writes stopped"))
				return append(out, stmtLines(append(flush, drainTargetStmt(d.from.name, f.drainSlots))...)...)
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
				if err := writtenStmt(d.from.name).QueryRow(ctx, r.e.from, &ins, &flushed); err != nil {
					return "", fmt.Errorf("read the drain target: %w", err)
				}
				at, err := ParseLSN(ins)
				if err != nil {
					return "", fmt.Errorf("read the drain target: %w", err)
				}
				r.drainLSN = lastRecordEnd(at).String()
				if !flushed {
					if r.drainLSN, err = flushWAL(ctx, r.e.from, d.from.name); err != nil {
						return "", err
					}
				}
				var lag int64
				var n int
				if err := drainTargetStmt(d.from.name, f.drainSlots).QueryRow(ctx, r.e.from, &lag, &n); err != nil {
					return "", fmt.Errorf("read the drain target: %w", err)
				}
				if n != len(f.drainSlots) {
					return "", fmt.Errorf("found %d of the slots %s", n, strings.Join(f.drainSlots, ", "))
				}
				r.rep.LagAtPause, r.rep.DrainLSN = lag, r.drainLSN
				return fmt.Sprintf("%s, lag %d bytes", r.drainLSN, lag), nil
			}},
		{name: "drain", target: d.from.name + " -> " + d.to.name, own: true,
			plan: func() []PlanLine {
				out := stmtLines(appliedStmt(d.to.name, f.drainSubs, drainLSN), insertLSNStmt(d.to.name))
				return append(out, noteLine(d.from.name, "past %s: abort, everything put back", p.DrainTimeout))
			},
			run: func(ctx context.Context) (string, error) {
				ctx, cancel := context.WithTimeout(ctx, p.DrainTimeout)
				defer cancel()
				at, polls, err := waitApplied(ctx, r.e.from, r.e.to, d.from.name, d.to.name, f.drainSubs, r.drainLSN)
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
	at := Later(d.to.name + "'s WAL insert position once the drain is done")
	return subStep{name: "flush " + d.to.name + "'s WAL", target: d.to.name,
		plan: func() []PlanLine {
			return append(stmtLines(flushedStmt(d.to.name, at)), stmtLines(flushStmts(d.to.name)...)...)
		},
		run: func(ctx context.Context) (string, error) {
			if r.toLSN != "" {
				var done bool
				if err := flushedStmt(d.to.name, r.toLSN).QueryRow(ctx, r.e.to, &done); err != nil {
					return "", err
				}
				if done {
					return "flushed past " + r.toLSN + " already", nil
				}
			}
			lsn, err := flushWAL(ctx, r.e.to, d.to.name)
			return "flushed at " + lsn, err
		}}
}

// flushedStmt asks whether the WAL is flushed up to at.
func flushedStmt(on string, at any) Stmt {
	return Stmt{On: on, Args: []any{at}, SQL: "SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn", Note: "when true, nothing more is flushed"}
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
	at := Later("green's WAL insert position once the drain is done")
	set := subStep{name: "set where the reverse feed starts", target: "blue",
		plan: func() []PlanLine {
			return stmtLines(anchorStmt("blue", rev, at))
		},
		run: func(ctx context.Context) (string, error) {
			lsn := r.toLSN
			if lsn == "" {
				// The drain ran in an earlier process: writes are still
				// stopped, so green's position now is as good.
				// (A pool session: the held ones are busy with the flush
				// and the logins.)
				if err := insertLSNStmt(d.to.name).QueryRow(ctx, d.to.pool, &lsn); err != nil {
					return "", err
				}
			}
			origin, err := anchor(ctx, r.e.from, "blue", rev, lsn)
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
			plan: func() []PlanLine { return stmtLines(disableSubscriptionStmts(d.to.name, f.drainSubs)...) },
			run: func(ctx context.Context) (string, error) {
				return "disabled " + strings.Join(f.drainSubs, ", "), disableSubscriptions(ctx, r.e.to, d.to.name, f.drainSubs)
			}})
	}
	if !pos.oppositeOn {
		out = append(out, subStep{name: "enable " + d.to.name + " -> " + d.from.name + " replication", target: d.from.name,
			plan: func() []PlanLine {
				var out []PlanLine
				if !d.rollback {
					out = stmtLines(flushStmts(d.from.name)...)
					out = append(out, noteLine("blue", "the start set inside the pause is now durable; the subscription must have one"))
				}
				return append(out, stmtLines(EnableParams{On: d.from.name, Names: f.startSubs}.Statements()...)...)
			},
			run: func(ctx context.Context) (string, error) {
				if !d.rollback {
					if _, err := flushWAL(ctx, r.e.from, d.from.name); err != nil {
						return "", err
					}
					ok, err := anchored(ctx, r.e.from, r.p.Reverse)
					if err != nil {
						return "", err
					}
					if !ok {
						return "", fmt.Errorf("subscription %s on blue has no start set on green: enabled, it would send blue back what blue sent, or skip green's writes; rebuild the reverse feed (run rollback only once it exists)", r.p.Reverse)
					}
				}
				return "enabled " + strings.Join(f.startSubs, ", "), EnableParams{On: d.from.name, Names: f.startSubs}.Exec(ctx, r.e.from)
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
			return append(out, stmtLines(DropSlotStmt("green", rev), DropPublicationStmt("green", rev))...)
		},
		run: func(ctx context.Context) (string, error) {
			blue, green := r.e.conn("blue"), r.e.conn("green")
			if err := dropReverseFeed(ctx, blue, green, rev); err != nil {
				return "", err
			}
			return "", DropPublicationStmt("green", rev).Exec(ctx, green)
		}}
}

// dropReverseFeed drops the reverse subscription on blue when it exists,
// then its slot on green (DropSlotParams does nothing where there is none).
func dropReverseFeed(ctx context.Context, blue, green *pgxpool.Conn, rev string) error {
	if exists, err := subscriptionExists(ctx, blue, rev); err != nil {
		return err
	} else if exists {
		if err := dropSubscription(ctx, blue, "blue", rev); err != nil {
			return err
		}
	}
	_, err := DropSlotParams{On: "green", Name: rev}.Exec(ctx, green)
	return err
}

func subscriptionExists(ctx context.Context, c *pgxpool.Conn, name string) (bool, error) {
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look for subscription %s: %w", name, err)
	}
	return exists, nil
}
