package pg

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// The sub-steps of a cutover in their order: what is prepared before
// writes stop, the stop, and everything forward from a position (the same
// list finishes an interrupted attempt), down to the fence.

// prepareSteps run before writes stop: what can be prepared is, so the
// pause stays short.
func (r *run) prepareSteps() []subStep {
	p, d, f := r.p, r.d, r.f
	var out []subStep
	if !d.rollback {
		out = append(out, r.prepareReverseStep())
	} else {
		// Most of the WAL the reverse feed wrote on blue is skipped now;
		// the rest inside the pause.
		out = append(out, r.advanceStep("advance blue's slots (first pass)"))
	}
	// Sequences are set once before writes stop, so the sync inside the
	// pause finds warm caches and pages already logged, and sets only what
	// moved since.
	out = append(out, subStep{name: "sync sequences (first pass)", target: d.to.name,
		plan: func() []PlanLine {
			return append([]PlanLine{noteLine(d.from.name, "read every sequence of %s (two sessions)", d.from.name)},
				stmtLines(ApplySequencesStmts(d.to.name, nil, p.SequenceMargin)...)...)
		},
		run: func(ctx context.Context) (string, error) {
			var err error
			if r.preSeqs, err = ReadSequencesParallel(ctx, d.from.pool, SequenceSessions); err != nil {
				return "", err
			}
			res, err := ApplySequencesParallel(ctx, d.to.pool, d.to.name, r.preSeqs, p.SequenceMargin, SequenceSessions)
			return fmt.Sprintf("%d sequences", res.Synced), err
		}})
	if p.Method == MethodPgBouncer && slices.ContainsFunc(p.Bouncers, func(b BouncerParams) bool {
		_, ok := b.NewIniStore().(IniStager)
		return ok
	}) {
		out = append(out, r.stageIniStep(d.to))
	}
	_ = f
	return out
}

// stageIniStep writes each remote ini's new text beside it before the
// pause (IniStager), so the rewrite inside the pause is a rename; the
// others are rewritten inside it, as they are quick.
func (r *run) stageIniStep(s side) subStep {
	p := r.p
	change := func(b BouncerParams) IniChange { return IniChange{Database: b.Database, Side: s.name, To: s.endpoint} }
	return subStep{name: "stage the ini", target: "pgbouncer",
		plan: func() []PlanLine {
			var out []PlanLine
			for _, b := range p.Bouncers {
				if st, ok := b.NewIniStore().(IniStager); ok {
					fc := st.StageChange(change(b))
					out = append(out, PlanLine{On: fc.On, Kind: "file", Text: fc.String()})
				}
			}
			return out
		},
		run: func(ctx context.Context) (string, error) {
			var n atomic.Int32 // the PgBouncers are staged at once
			err := r.eachBouncer(ctx, func(ctx context.Context, _ *Console, b BouncerParams) error {
				st, ok := r.ini(b).(IniStager)
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
// checked once more right before, and the caller's guard starts.
func (r *run) stopSteps() []subStep {
	p, d, f := r.p, r.d, r.f
	var out []subStep
	if p.BeforePause != nil {
		out = append(out, subStep{name: "start the guard", target: "local",
			plan: func() []PlanLine {
				return []PlanLine{noteLine("local", "a guard process starts: if this process dies or stops answering from here on, it undoes the %s (commits released, RESUME on %s, the ini put back)", d.name, d.from.name)}
			},
			run: func(ctx context.Context) (string, error) { return "running", p.BeforePause(ctx) }})
	}
	if p.HoldCommits > 0 {
		out = append(out, r.holdStep())
	}
	out = append(out, subStep{name: "lag gate", target: d.from.name,
		plan: func() []PlanLine {
			return []PlanLine{noteLine(d.from.name, "the lag of %s is read again right before writes stop: above %d bytes, nothing is paused", strings.Join(f.drainSlots, ", "), p.MaxLagBytes)}
		},
		run: func(ctx context.Context) (string, error) {
			return checkLag(ctx, r.e.from, f.drainSlots, p.MaxLagBytes)
		}})
	return append(out, r.stopWritesSteps()...)
}

// forwardSteps take a cutover from pos to done. Writes stopped, at once:
// the drain and then the start of the opposite feed set (the anchor), the
// sequences, the target opened to the application, PgBouncer's ini
// renamed; then the switch. Only after it the feeds are swapped (the
// drained one stopped, the opposite one enabled): that changes nothing the
// application sees, so it is not waited for in the pause. Commits an
// interrupted attempt left held are released first. Each sub-step is there
// only when pos says it is still to do, so the same list finishes an
// attempt that was interrupted.
func (r *run) forwardSteps(pos position) []subStep {
	p, d := r.p, r.d
	var out []subStep
	bouncer := p.Method == MethodPgBouncer
	if !pos.atTarget {
		var feed []subStep
		if pos.drainedOn {
			feed = append(feed, r.drainSteps()...)
		}
		feed = append(feed, r.anchorSteps(pos)...)
		if !bouncer {
			// The switch is the target's logins: the application may
			// write there at once, so the feeds are swapped before.
			feed = append(feed, r.swapSteps(pos)...)
		}
		at := []subStep{r.sequencesStep()}
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
		if swap := r.swapSteps(pos); len(swap) > 0 {
			out = append(out, r.inOrder("swap the feeds", d.to.name+", "+d.from.name, swap...))
		}
	}
	if bouncer {
		out = append(out, r.checkBouncerSteps()...)
	} else {
		out = append(out, subStep{name: "probe write on " + d.to.name, target: d.to.name,
			plan: func() []PlanLine {
				return stmtLines(probeStmt(d.to.name).with("on a new session: must succeed"))
			},
			run: func(ctx context.Context) (string, error) {
				r.rep.FinalTarget, r.rep.FinalVersion = d.to.endpoint.String(), r.e.toVersion
				return "a write on a new session succeeded", probeWrite(ctx, d.to.pool, d.to.name)
			}})
	}
	out = append(out, r.fenceStep())
	if d.rollback {
		// The reverse feed is spent; its slot on green would hold WAL forever.
		out = append(out, r.dropReverseStep())
	}
	return out
}

// sequencesStep sets the target's sequences from the source's, read once
// writes stopped: only those that moved since the first pass. It needs
// nothing of the drain, so it runs beside it.
func (r *run) sequencesStep() subStep {
	p, d := r.p, r.d
	return subStep{name: "sync sequences", target: d.to.name,
		plan: func() []PlanLine {
			return append([]PlanLine{noteLine(d.from.name, "every sequence of %s read (two sessions), writes stopped; only those that moved since the first pass are set", d.from.name)},
				stmtLines(ApplySequencesStmts(d.to.name, nil, p.SequenceMargin)...)...)
		},
		run: func(ctx context.Context) (string, error) {
			start := time.Now()
			seqs, err := ReadSequencesParallel(ctx, d.from.pool, SequenceSessions)
			if err != nil {
				return "", err
			}
			changed := changedSequences(r.preSeqs, seqs)
			res, err := ApplySequencesParallel(ctx, d.to.pool, d.to.name, changed, p.SequenceMargin, SequenceSessions)
			r.rep.Sequences, r.rep.SeqMissing = len(seqs)-len(changed)+res.Synced, res.Missing
			r.rep.SeqSyncMs = ms(time.Since(start))
			if err == nil && len(res.Missing) > 0 {
				err = fmt.Errorf("sequences missing on %s: %s", d.to.name, strings.Join(res.Missing, ", "))
			}
			return fmt.Sprintf("%d sequences, %d set since the first pass (margin %d)", r.rep.Sequences, res.Synced, p.SequenceMargin), err
		}}
}

// openWritesStep lets the application write on the target: LOGIN for the
// fenced roles, and the read-only setting a readonly cutover left there
// removed.
func (r *run) openWritesStep() subStep {
	d := r.d
	roles := r.p.FenceRoles
	return subStep{name: "allow writes on " + d.to.name, target: d.to.name,
		plan: func() []PlanLine {
			out := stmtLines(LoginStmts(d.to.name, roles, true)...)
			out = append(out, stmtLines(readOnlyStmt(d.to.name, d.to.endpoint.DBName, false).with("only where a readonly cutover set it"))...)
			return append([]PlanLine{noteLine(d.to.name, "only the roles that cannot log in on %s now", d.to.name)}, out...)
		},
		run: func(ctx context.Context) (string, error) {
			// A connection of its own: the feeds' swap holds the cutover's
			// at the same time.
			c := r.e.toSide
			var done []string
			changed, err := setLogin(ctx, c, d.to.name, roles, true)
			if err != nil {
				return "", err
			}
			if len(changed) > 0 {
				done = append(done, "LOGIN: "+strings.Join(changed, ", "))
			}
			ro, err := isReadOnly(ctx, c)
			if err != nil {
				return "", err
			}
			if ro {
				if err := readOnlyStmt(d.to.name, r.e.toDB, false).Exec(ctx, c); err != nil {
					return "", err
				}
				done = append(done, "default_transaction_read_only reset")
			}
			if r.p.Method != MethodPgBouncer {
				r.rep.FinalTarget, r.rep.FinalVersion = d.to.endpoint.String(), r.e.toVersion
			}
			if len(done) == 0 {
				return "nothing to change", nil
			}
			return strings.Join(done, "; "), nil
		},
		// Without PgBouncer, writes reach the target once its roles log in.
		switches: r.p.Method != MethodPgBouncer}
}

// fenceStep makes the side left behind refuse the application's writes:
// the fence roles lose LOGIN there and their sessions end. The reverse
// subscription applies as pgbluegreen's own role, which is never fenced.
func (r *run) fenceStep() subStep {
	d := r.d
	roles := r.p.FenceRoles
	return subStep{name: "fence " + d.from.name, target: d.from.name,
		plan: func() []PlanLine {
			out := stmtLines(LoginStmts(d.from.name, roles, false)...)
			return append(out, stmtLines(terminateSessionsStmt(d.from.name, roles, Later("the pid of pgbluegreen's session")).with("the fenced roles' sessions, except pgbluegreen's own"))...)
		},
		run: func(ctx context.Context) (string, error) {
			if len(roles) == 0 {
				return "no role to fence", nil
			}
			changed, err := setLogin(ctx, r.e.from, d.from.name, roles, false)
			if err != nil {
				return "", err
			}
			n, err := terminateAndWait(ctx, r.e.from, terminateSessionsStmt(d.from.name, roles, r.e.pids()))
			return fmt.Sprintf("NOLOGIN: %s; %d sessions ended", orNone(changed), n), err
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
func changedSequences(before, now []Sequence) []Sequence {
	seen := make(map[[2]string]Sequence, len(before))
	for _, s := range before {
		seen[[2]string{s.Schema, s.Name}] = s
	}
	var out []Sequence
	for _, s := range now {
		if b, ok := seen[[2]string{s.Schema, s.Name}]; !ok || b != s {
			out = append(out, s)
		}
	}
	return out
}
