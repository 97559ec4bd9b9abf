package cutover

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// The feeds around a switch, each database's own: the reverse feed
// prepared before writes stop, the drain of the feed being left to the
// one drain target, the opposite feed started after it, and the reverse
// feed dropped when an attempt is undone.

// prepareReverseStep creates, before writes stop, the database's
// publication and reverse slot on green and the disabled subscription on
// blue (its connection to green is proven now). The slot holds from now
// on what the forward feed applies on green too: inside the pause the
// subscription's start is set past all of it (anchorSteps), which costs a
// round trip where creating the slot there cost 13-32 ms. What an earlier
// attempt left is dropped first.
func (r *run) prepareReverseStep(db *dbRun) subStep {
	p := r.p
	rev := db.Reverse
	return subStep{name: r.label("prepare reverse replication", db), target: "blue, green",
		plan: func() []pg.PlanLine {
			out := []pg.PlanLine{pg.Note("blue", "what an earlier attempt left is dropped first, when there:")}
			out = append(out, pg.Lines(pg.DropSubscriptionStmts("blue", rev)...)...)
			out = append(out, pg.Lines(pg.DropSlotStmt("green", rev), pg.CreatePublicationStmt("green", pg.PublicationSpec{Name: rev, AllTables: true}),
				pg.CreateSlotStmt("green", rev).With("its start is set inside the pause, once the drain is done"))...)
			return append(out, pg.Lines(r.reverseSubscription(db)...)...)
		},
		run: func(ctx context.Context) (string, error) {
			blue, green := r.conn(db, "blue"), r.conn(db, "green")
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
			if err := pg.ExecTx(ctx, blue, r.reverseSubscription(db)); err != nil {
				return "", fmt.Errorf("create subscription %s on blue: %w", rev, pg.ScrubPassword(err, p.ReplicationPassword))
			}
			db.rep.ReverseFeed = "prepared, slot at " + lsn
			return fmt.Sprintf("publication %s and slot %s (at %s) on green, subscription %s on blue (disabled, connected to %s)", rev, rev, lsn, rev, r.greenForBlue(db)), nil
		}}
}

// conn is the session the run holds on database db of side name.
func (r *run) conn(db *dbRun, name string) *pgxpool.Conn {
	if r.d.from.name == name {
		return db.c.from
	}
	return db.c.to
}

// greenForBlue is how blue reaches database db on green.
func (r *run) greenForBlue(db *dbRun) pg.Endpoint {
	at := r.p.GreenEndpoint
	if r.p.GreenForBlue != nil {
		at = *r.p.GreenForBlue
	}
	return side{name: "green", endpoint: at, primary: r.primary()}.at(db.Name)
}

// reverseSubscription is blue's subscription to database db on green, as
// statements: created disabled, with no copy and no slot (the slot comes
// after the drain); connect = true proves blue reaches green now. The
// connection string is a Secret bind parameter, sent with statement
// logging off.
func (r *run) reverseSubscription(db *dbRun) []pg.Stmt {
	to := r.greenForBlue(db)
	rev := db.Reverse
	conninfo := fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=", pg.QuoteConninfoValue(to.Host), to.Port,
		pg.QuoteConninfoValue(to.DBName), pg.QuoteConninfoValue(r.p.ReplicationRole))
	return pg.SubscriptionParams{On: "blue", Name: rev, Publication: rev, Slot: rev,
		Conninfo: conninfo + pg.QuoteConninfoValue(r.p.ReplicationPassword), ShownConninfo: conninfo + "********"}.Statements()
}

// advanceStep moves blue's forward slots of database db past what the
// reverse feed wrote (a rollback's; blue is its target).
func (r *run) advanceStep(base string, db *dbRun) subStep {
	d := r.d
	return subStep{name: r.label(base, db), target: d.to.name,
		plan: func() []pg.PlanLine {
			out := pg.Lines(pg.FlushStmts(d.to.name)...)
			for _, s := range db.f.startSlots {
				out = append(out, pg.Lines(pg.AdvanceSlotStmt(d.to.name, s, pg.Later("the LSN of the message just flushed")))...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			lsn, err := pg.AdvanceSlots(ctx, db.c.to, d.to.name, db.f.startSlots)
			return "to " + lsn, err
		}}
}

// drainTargetStep reads, writes stopped, the one position every database's
// feed must be applied to: the source's WAL insert position (every commit
// acknowledged before the pause is before it), and each feed's lag then.
func (r *run) drainTargetStep() subStep {
	d := r.d
	return subStep{name: "drain target", target: d.from.name,
		plan: func() []pg.PlanLine {
			flush := pg.FlushStmts(d.from.name)
			flush[0] = flush[0].With("only when the WAL is not flushed up to that position (an asynchronous commit): then the drain target is the LSN of this message")
			out := pg.Lines(pg.WrittenStmt(d.from.name).With("the drain target, after every commit made before writes stopped, in every database: the WAL is the server's"))
			out = append(out, pg.Lines(flush...)...)
			for _, db := range r.dbs {
				out = append(out, pg.Lines(pg.DrainTargetStmt(d.from.name, db.f.drainSlots).With("the lag of "+db.Name+"'s feed at the pause"))...)
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			// Every commit acknowledged before the PAUSE is before the
			// insert position; when that is flushed, each walsender reads
			// up to it and then sends the keepalive the drain waits for.
			// Otherwise a record of our own, flushed, marks the end (and
			// the drain's polls flush one now and then, so a keepalive
			// comes however the WAL ends).
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
			r.drainAt = time.Now()
			var lags []string
			for _, db := range r.dbs {
				var lag int64
				var n int
				if err := pg.DrainTargetStmt(d.from.name, db.f.drainSlots).QueryRow(ctx, r.e.from, &lag, &n); err != nil {
					return "", fmt.Errorf("read the drain target: %w", err)
				}
				if n != len(db.f.drainSlots) {
					return "", fmt.Errorf("found %d of the slots %s", n, strings.Join(db.f.drainSlots, ", "))
				}
				db.rep.LagAtPause = lag
				lags = append(lags, fmt.Sprintf("%s %d bytes", db.Name, lag))
			}
			r.rep.DrainLSN = r.drainLSN
			if len(r.dbs) == 1 {
				return fmt.Sprintf("%s, lag %d bytes", r.drainLSN, r.dbs[0].rep.LagAtPause), nil
			}
			return fmt.Sprintf("%s, lag %s", r.drainLSN, strings.Join(lags, ", ")), nil
		}}
}

// drainStep waits, writes stopped, until the target has applied
// everything database db's feed brought from before the drain target,
// then stops nothing: the feed stays on until after the switch
// (swapSteps).
func (r *run) drainStep(db *dbRun) subStep {
	p, d, f := r.p, r.d, db.f
	drainLSN := pg.Later("the drain LSN: " + d.from.name + "'s WAL insert position once writes stopped")
	return subStep{name: r.label("drain", db), target: d.from.name + " -> " + d.to.name, own: true,
		plan: func() []pg.PlanLine {
			out := pg.Lines(pg.AppliedStmt(d.to.name, f.drainSubs, drainLSN), pg.InsertLSNStmt(d.to.name))
			return append(out, pg.Note(d.from.name, "past %s, or past the pause budget (%s since the PAUSE): abort, everything put back", p.DrainTimeout, p.PauseBudget))
		},
		run: func(ctx context.Context) (string, error) {
			bound := r.pauseLeft(p.DrainTimeout)
			ctx, cancel := context.WithTimeout(ctx, bound)
			defer cancel()
			at, polls, err := pg.WaitApplied(ctx, db.c.from, db.c.to, d.from.name, d.to.name, f.drainSubs, r.drainLSN)
			if err != nil {
				return "", fmt.Errorf("drain of %s (timeout %s, what the pause budget left): %w", db.Name, bound.Round(time.Millisecond), err)
			}
			if !r.drainAt.IsZero() {
				db.rep.DrainMs = since(r.drainAt)
			}
			db.toLSN = at
			return fmt.Sprintf("%s applied everything up to %s after %d polls; its position then %s", d.to.name, r.drainLSN, polls, at), nil
		}}
}

// flushTargetStep flushes the target's WAL once database db's drain is
// done: its apply workers commit asynchronously, and what they applied
// must be durable before any client writes there. When the WAL is flushed
// past the drain's position already (the WAL writer, another commit,
// another database's flush), nothing is written.
func (r *run) flushTargetStep(db *dbRun) subStep {
	d := r.d
	at := pg.Later(d.to.name + "'s WAL insert position once the drain is done")
	return subStep{name: r.label("flush "+d.to.name+"'s WAL", db), target: d.to.name,
		plan: func() []pg.PlanLine {
			return append(pg.Lines(pg.FlushedStmt(d.to.name, at)), pg.Lines(pg.FlushStmts(d.to.name)...)...)
		},
		run: func(ctx context.Context) (string, error) {
			if db.toLSN != "" {
				var done bool
				if err := pg.FlushedStmt(d.to.name, db.toLSN).QueryRow(ctx, db.c.to, &done); err != nil {
					return "", err
				}
				if done {
					return "flushed past " + db.toLSN + " already", nil
				}
			}
			lsn, err := pg.FlushWAL(ctx, db.c.to, d.to.name)
			return "flushed at " + lsn, err
		}}
}

// anchorSteps set, writes still stopped and once database db's drain is
// done, where its opposite feed will start: past everything the drained
// feed brought to the target, and before anything the application writes
// there. A cutover sets blue's reverse subscription's origin to green's
// position (its slot and subscription made first when missing: a way out
// after an earlier version's attempt); a rollback moves blue's slots past
// what the reverse feed wrote. Nothing when the opposite feed runs already.
func (r *run) anchorSteps(db *dbRun, pos dbPos) []subStep {
	d := r.d
	if pos.oppositeOn {
		return []subStep{r.flushTargetStep(db)}
	}
	if d.rollback {
		// It flushes blue (the target) first.
		return []subStep{r.advanceStep("advance blue's slots", db)}
	}
	var out []subStep
	if !pos.oppositeSlot || !pos.oppositeSub {
		out = append(out, r.prepareReverseStep(db))
	}
	rev := db.Reverse
	at := pg.Later("green's WAL insert position once the drain is done")
	set := subStep{name: r.label("set where the reverse feed starts", db), target: "blue",
		plan: func() []pg.PlanLine {
			return pg.Lines(pg.AnchorStmt("blue", rev, at))
		},
		run: func(ctx context.Context) (string, error) {
			lsn := db.toLSN
			if lsn == "" {
				// The drain ran in an earlier process: writes are still
				// stopped, so green's position now is as good.
				// (A pool session: the held ones are busy with the flush
				// and the logins.)
				if err := pg.InsertLSNStmt(d.to.name).QueryRow(ctx, db.to, &lsn); err != nil {
					return "", err
				}
			}
			origin, err := pg.Anchor(ctx, db.c.from, "blue", rev, lsn)
			if err == nil {
				db.rep.ReverseFeed = "starts at green's " + lsn
			}
			return fmt.Sprintf("origin %s of subscription %s at green's %s", origin, rev, lsn), err
		}}
	return append(out, r.together(r.label("flush green, set where the reverse feed starts", db), r.flushTargetStep(db), set))
}

// swapSteps stop database db's drained feed (nothing more is applied once
// it returns), then start its opposite one, each only when pos says it is
// still to do. A cutover's reverse subscription is enabled only once its
// start is set (anchorSteps): from the slot's own start it would send
// blue back what blue sent green.
//
// With wait (the swap comes after the switch), the opposite feed's apply
// workers are waited for (waitFeeds); inside a pause they are not.
func (r *run) swapSteps(db *dbRun, pos dbPos, wait bool) []subStep {
	d, f := r.d, db.f
	var out []subStep
	if pos.drainedOn {
		out = append(out, subStep{name: r.label("stop "+d.from.name+" -> "+d.to.name+" replication", db), target: d.to.name,
			plan: func() []pg.PlanLine { return pg.Lines(pg.DisableSubscriptionStmts(d.to.name, f.drainSubs)...) },
			run: func(ctx context.Context) (string, error) {
				return "disabled " + strings.Join(f.drainSubs, ", "), pg.DisableSubscriptions(ctx, db.c.to, d.to.name, f.drainSubs)
			}})
	}
	if !pos.oppositeOn {
		out = append(out, subStep{name: r.label("enable "+d.to.name+" -> "+d.from.name+" replication", db), target: d.from.name,
			plan: func() []pg.PlanLine {
				var out []pg.PlanLine
				if !d.rollback {
					out = pg.Lines(pg.FlushStmts(d.from.name)...)
					out = append(out, pg.Note("blue", "the start set inside the pause is now durable; the subscription must have one"))
				}
				out = append(out, pg.Lines(pg.EnableParams{On: d.from.name, Names: f.startSubs}.Statements()...)...)
				if wait {
					out = append(out, waitFeedsPlan(d.from.name))
				}
				return out
			},
			run: func(ctx context.Context) (string, error) {
				if !d.rollback {
					if _, err := pg.FlushWAL(ctx, db.c.from, d.from.name); err != nil {
						return "", err
					}
					ok, err := pg.Anchored(ctx, db.c.from, db.Reverse)
					if err != nil {
						return "", err
					}
					if !ok {
						return "", fmt.Errorf("subscription %s on blue has no start set on green: enabled, it would send blue back what blue sent, or skip green's writes; rebuild the reverse feed (run rollback only once it exists)", db.Reverse)
					}
				}
				detail, err := r.enableFeeds(ctx, db.c.from, d.from.name, f.startSubs, wait)
				if err == nil && !d.rollback {
					db.rep.ReverseFeed += ", enabled"
				}
				return detail, err
			},
			own: wait})
	}
	return out
}

// enableFeeds enables subs on c and, with wait, waits for their apply
// workers (waitFeeds).
func (r *run) enableFeeds(ctx context.Context, c *pgxpool.Conn, on string, subs []string, wait bool) (string, error) {
	if err := r.enable(ctx, c, on, subs); err != nil {
		return "", err
	}
	if !wait {
		return "enabled " + strings.Join(subs, ", "), nil
	}
	return r.waitFeeds(ctx, c, on, subs)
}

func (r *run) enable(ctx context.Context, c *pgxpool.Conn, on string, subs []string) error {
	ctx, cancel := context.WithTimeout(ctx, r.p.StatementTimeout)
	defer cancel()
	return pg.EnableParams{On: on, Names: subs}.Exec(ctx, c)
}

// waitFeeds waits (at most workerWait) until each of subs, enabled, has
// its apply worker. PostgreSQL's launcher was seen to miss the wake-up of
// a subscription enabled while it was starting another one's worker (two
// databases' feeds enabled at once, PostgreSQL 17.5: it resets its latch
// while it waits for the new worker to attach), and then to sleep its
// 3-minute nap: an ENABLE again, every second, wakes it. PostgreSQL 15's
// launcher starts one worker per wal_retrieve_retry_interval (5 s). A
// worker still missing at the end is a warning: the launcher starts it at
// its next round, and the next attempt's precheck waits for it.
func (r *run) waitFeeds(ctx context.Context, c *pgxpool.Conn, on string, subs []string) (string, error) {
	start := time.Now()
	for tries := 1; ; tries++ {
		missing, err := pg.WorkersMissing(pg.Quiet(ctx), c, subs)
		switch {
		case err != nil:
			return "", err
		case len(missing) == 0:
			return fmt.Sprintf("enabled %s, apply worker running after %s", strings.Join(subs, ", "), time.Since(start).Round(time.Millisecond)), nil
		case time.Since(start) > workerWait:
			r.rep.warn("subscription %s on %s enabled, but no apply worker after %s: PostgreSQL's launcher starts it at its next round (see %s's log)", strings.Join(missing, ", "), on, workerWait, on)
			return "enabled " + strings.Join(subs, ", ") + "; no worker yet for " + strings.Join(missing, ", "), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if tries%10 == 0 {
			if err := r.enable(ctx, c, on, missing); err != nil {
				return "", err
			}
		}
	}
}

// waitFeedsPlan is how a plan shows waitFeeds.
func waitFeedsPlan(on string) pg.PlanLine {
	return pg.Note(on, "then until each has its apply worker (at most %s), enabled again every second: it wakes PostgreSQL's launcher", workerWait)
}

// workersStep waits, after the switch, for the apply workers of the feeds
// the switch enabled inside the pause (the nologin and readonly methods
// swap the feeds before the target opens, where no wait belongs).
func (r *run) workersStep() subStep {
	d := r.d
	return subStep{name: "wait for " + d.to.name + " -> " + d.from.name + " workers", target: d.from.name, own: true,
		plan: func() []pg.PlanLine { return []pg.PlanLine{waitFeedsPlan(d.from.name)} },
		run: func(ctx context.Context) (string, error) {
			var out []string
			for _, db := range r.dbs {
				detail, err := r.waitFeeds(ctx, db.c.from, d.from.name, db.f.startSubs)
				if err != nil {
					return "", err
				}
				out = append(out, detail)
			}
			return strings.Join(out, "; "), nil
		}}
}

// dropReverseStep removes database db's reverse subscription (on blue),
// then its slot and publication (on green).
func (r *run) dropReverseStep(db *dbRun) subStep {
	rev := db.Reverse
	return subStep{name: r.label("drop reverse replication", db), target: "blue, green",
		plan: func() []pg.PlanLine {
			out := pg.Lines(pg.DropSubscriptionStmts("blue", rev)...)
			return append(out, pg.Lines(pg.DropSlotStmt("green", rev), pg.DropPublicationStmt("green", rev))...)
		},
		run: func(ctx context.Context) (string, error) {
			blue, green := r.conn(db, "blue"), r.conn(db, "green")
			if err := dropReverseFeed(ctx, blue, green, rev); err != nil {
				return "", err
			}
			db.rep.ReverseFeed = "dropped"
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
