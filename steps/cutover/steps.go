package cutover

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// The sub-steps of a cutover in their order: what is prepared before
// writes stop, the stop, and everything forward from a position (the same
// list finishes an interrupted attempt), down to the fence.

// prepareSteps run before writes stop: what can be prepared is, so the
// pause stays short. Each database's part runs beside the others'.
func (r *run) prepareSteps() []subStep {
	p, d := r.p, r.d
	var out []subStep
	if !d.rollback {
		out = append(out, r.each("prepare reverse replication", "blue, green", func(db *dbRun) []subStep {
			return []subStep{r.prepareReverseStep(db)}
		})...)
	} else {
		// Most of the WAL the reverse feed wrote on blue is skipped now;
		// the rest inside the pause.
		out = append(out, r.each("advance blue's slots, first pass", d.to.name, func(db *dbRun) []subStep {
			return []subStep{r.advanceStep("advance blue's slots, first pass", db)}
		})...)
	}
	// Sequences are set once before writes stop, so the sync inside the
	// pause finds warm caches and pages already logged, and sets only what
	// moved since.
	out = append(out, r.each("sync sequences, first pass", d.to.name, func(db *dbRun) []subStep {
		return []subStep{{name: r.label("sync sequences, first pass", db), target: d.to.name,
			plan: func() []pg.PlanLine {
				return append([]pg.PlanLine{pg.Note(d.from.name, "read every sequence of %s's %s (two sessions)", d.from.name, db.Name)},
					pg.Lines(pg.ApplySequencesStmts(d.to.name, nil, p.SequenceMargin)...)...)
			},
			run: func(ctx context.Context) (string, error) {
				var err error
				if db.preSeqs, err = pg.ReadSequencesParallel(ctx, db.from, pg.SequenceSessions); err != nil {
					return "", err
				}
				res, err := pg.ApplySequencesParallel(ctx, db.to, d.to.name, db.preSeqs, p.SequenceMargin, pg.SequenceSessions)
				return fmt.Sprintf("%d sequences", res.Synced), err
			}}}
	})...)
	out = append(out, r.each("large objects, first pass", d.from.name+" -> "+d.to.name, func(db *dbRun) []subStep {
		return []subStep{r.largeObjectsFirstPass(db)}
	})...)
	if p.Method == MethodPgBouncer && slices.ContainsFunc(p.Bouncers, func(b pg.BouncerParams) bool {
		_, ok := b.NewIniStore().(pg.IniStager)
		return ok
	}) {
		out = append(out, r.stageIniStep(d.to))
	}
	return out
}

// stageIniStep writes each remote ini's new text beside it before the
// pause (IniStager), so the rewrite inside the pause is a rename; the
// others are rewritten inside it, as they are quick.
func (r *run) stageIniStep(s side) subStep {
	p := r.p
	change := func(b pg.BouncerParams) pg.IniChange {
		return r.iniChange(slices.Index(p.Bouncers, b), s, false)
	}
	return subStep{name: "stage the ini", target: "pgbouncer",
		plan: func() []pg.PlanLine {
			var out []pg.PlanLine
			for _, b := range p.Bouncers {
				if st, ok := b.NewIniStore().(pg.IniStager); ok {
					fc := st.StageChange(change(b))
					out = append(out, pg.PlanLine{On: fc.On, Kind: "file", Text: fc.String()})
				}
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			var n atomic.Int32 // the PgBouncers are staged at once
			err := r.eachBouncer(ctx, func(ctx context.Context, _ *pg.Console, b pg.BouncerParams) error {
				st, ok := r.ini(b).(pg.IniStager)
				if !ok {
					return nil
				}
				n.Add(1)
				return st.Stage(ctx, change(b))
			})
			return fmt.Sprintf("%d ini(s) staged beside, to be renamed inside the pause", n.Load()), err
		}}
}

// stopSteps stop the application's writes on the source: the lag gate is
// checked once more right before (every database's feed), and the
// caller's guard starts.
func (r *run) stopSteps() []subStep {
	p, d := r.p, r.d
	var out []subStep
	if p.Guarded {
		out = append(out, subStep{name: "start the guard", target: "local",
			plan: func() []pg.PlanLine {
				return []pg.PlanLine{pg.Note("local", "a guard process starts: if this process dies or stops answering from here on, it undoes the %s (commits released, RESUME on %s, the ini put back)", d.name, d.from.name)}
			},
			run: func(ctx context.Context) (string, error) { return "running", p.Hooks.BeforePause(ctx) }})
	}
	if p.HoldCommits > 0 {
		out = append(out, r.holdStep())
	}
	slots := r.allDrainSlots()
	out = append(out, subStep{name: "lag gate", target: d.from.name,
		plan: func() []pg.PlanLine {
			return []pg.PlanLine{pg.Note(d.from.name, "the lag of %s is read again right before writes stop: above %d bytes, nothing is paused", strings.Join(slots, ", "), p.MaxLagBytes)}
		},
		run: func(ctx context.Context) (string, error) {
			return pg.CheckLag(ctx, r.e.from, slots, p.MaxLagBytes)
		}})
	return append(out, r.stopWritesSteps()...)
}

// forwardSteps take a cutover from pos to done. Writes stopped, at once:
// the drain to the one drain target and then the start of the opposite
// feeds set (the anchor), every database's at once; the sequences; the
// target opened to the application; PgBouncer's ini renamed. Then the
// switch. Only after it the feeds are swapped (the drained ones stopped,
// the opposite ones enabled): that changes nothing the application sees,
// so it is not waited for in the pause. Commits an interrupted attempt
// left held are released first. Each sub-step is there only when pos says
// it is still to do, so the same list finishes an attempt that was
// interrupted.
func (r *run) forwardSteps(pos position) []subStep {
	p, d := r.p, r.d
	var out []subStep
	bouncer := p.Method == MethodPgBouncer
	if !pos.atTarget {
		chain := func(db *dbRun) []subStep {
			dp := pos.db(db.k)
			var s []subStep
			if dp.drainedOn {
				s = append(s, r.drainStep(db))
			}
			s = append(s, r.anchorSteps(db, dp)...)
			if !bouncer {
				// The switch is the target's logins: the application may
				// write there at once, so the feeds are swapped before.
				s = append(s, r.swapSteps(db, dp, false)...)
			}
			return s
		}
		var feed []subStep
		if pos.anyDB(func(x dbPos) bool { return x.drainedOn }) {
			feed = append(feed, r.drainTargetStep())
		}
		if len(r.dbs) == 1 {
			feed = append(feed, chain(r.dbs[0])...)
		} else {
			feed = append(feed, r.each("drain each database", d.from.name+" -> "+d.to.name, chain)...)
		}
		at := r.each("sync sequences", d.to.name, func(db *dbRun) []subStep { return []subStep{r.sequencesStep(db)} })
		at = append(at, r.each("large objects", d.from.name+" -> "+d.to.name, func(db *dbRun) []subStep { return []subStep{r.largeObjectsStep(db)} })...)
		if len(feed) > 0 {
			at = append([]subStep{r.inOrder("drain, then where "+d.to.name+" -> "+d.from.name+" starts", d.from.name+" -> "+d.to.name, feed...)}, at...)
		}
		if bouncer {
			// Behind PgBouncer's pause nobody reaches the target yet: opening
			// it and renaming the ini now cost the pause nothing.
			if !pos.toOpen {
				at = append(at, r.openWritesStep())
			}
			if !pos.iniAtTarget() {
				at = append(at, r.rewriteIniStep(d.to))
			}
		}
		out = append(out, r.together("writes stopped", at...))
		if bouncer {
			out = append(out, r.switchBouncerSteps(pos)...)
		} else if !pos.toOpen {
			out = append(out, r.openWritesStep())
		}
	}
	if pos.held {
		out = append(out, r.releaseStep())
	}
	if bouncer || pos.atTarget {
		out = append(out, r.each("swap the feeds", d.to.name+", "+d.from.name, func(db *dbRun) []subStep { return r.swapSteps(db, pos.db(db.k), true) })...)
	} else if pos.anyDB(func(x dbPos) bool { return !x.oppositeOn }) {
		// Swapped inside the pause without waiting: the workers now.
		out = append(out, r.workersStep())
	}
	if bouncer {
		out = append(out, r.checkBouncerSteps()...)
	} else {
		out = append(out, subStep{name: "probe write on " + d.to.name, target: d.to.name,
			plan: func() []pg.PlanLine {
				var out []pg.PlanLine
				for _, db := range r.dbs {
					out = append(out, pg.Lines(pg.ProbeStmt(d.to.name).With("on a new session in "+db.Name+": must succeed"))...)
				}
				return out
			},
			run: func(ctx context.Context) (string, error) {
				r.endAt(d.to, r.e.toVersion)
				for _, db := range r.dbs {
					if err := pg.ProbeWrite(ctx, db.to, d.to.name); err != nil {
						return "", fmt.Errorf("%s: %w", db.Name, err)
					}
				}
				return fmt.Sprintf("a write on a new session succeeded in %s", strings.Join(r.names(), ", ")), nil
			}})
	}
	out = append(out, r.fenceStep())
	if d.rollback {
		// The reverse feeds are spent; their slots on green would hold WAL
		// forever.
		out = append(out, r.each("drop reverse replication", "blue, green", func(db *dbRun) []subStep { return []subStep{r.dropReverseStep(db)} })...)
	}
	return out
}

// sequencesStep sets database db's sequences on the target from the
// source's, read once writes stopped: only those that moved since the
// first pass. It needs nothing of the drain, so it runs beside it.
func (r *run) sequencesStep(db *dbRun) subStep {
	p, d := r.p, r.d
	return subStep{name: r.label("sync sequences", db), target: d.to.name,
		plan: func() []pg.PlanLine {
			return append([]pg.PlanLine{pg.Note(d.from.name, "every sequence of %s's %s read (two sessions), writes stopped; only those that moved since the first pass are set", d.from.name, db.Name)},
				pg.Lines(pg.ApplySequencesStmts(d.to.name, nil, p.SequenceMargin)...)...)
		},
		run: func(ctx context.Context) (string, error) {
			start := time.Now()
			seqs, err := pg.ReadSequencesParallel(ctx, db.from, pg.SequenceSessions)
			if err != nil {
				return "", err
			}
			changed := changedSequences(db.preSeqs, seqs)
			res, err := pg.ApplySequencesParallel(ctx, db.to, d.to.name, changed, p.SequenceMargin, pg.SequenceSessions)
			db.rep.Sequences, db.rep.SeqMissing = len(seqs)-len(changed)+res.Synced, res.Missing
			db.rep.SeqSyncMs = ms(time.Since(start))
			if err == nil && len(res.Missing) > 0 {
				err = fmt.Errorf("sequences missing on %s's %s: %s", d.to.name, db.Name, strings.Join(res.Missing, ", "))
			}
			return fmt.Sprintf("%d sequences, %d set since the first pass (margin %d)", db.rep.Sequences, res.Synced, p.SequenceMargin), err
		}}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none needed"
	}
	return strings.Join(s, ", ")
}

// changedSequences are the sequences of now that differ from before (or
// were not in it).
func changedSequences(before, now []pg.Sequence) []pg.Sequence {
	seen := make(map[[2]string]pg.Sequence, len(before))
	for _, s := range before {
		seen[[2]string{s.Schema, s.Name}] = s
	}
	var out []pg.Sequence
	for _, s := range now {
		if b, ok := seen[[2]string{s.Schema, s.Name}]; !ok || b != s {
			out = append(out, s)
		}
	}
	return out
}
