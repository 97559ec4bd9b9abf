package cutover

import (
	"context"
	"fmt"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Logical replication carries no large object. Each database's are made
// the target's twice, as its sequences are: once before writes stop (the
// first pass copies what changed since the last copy), and inside the
// pause, where only the source's objects are read, without content, and
// copied again only if they changed since the first pass. The target's
// reading once they match is reported (LargeObjectsAfter), so the next
// direction can tell what was written on it since.

// largeObjectsFirstPass makes the target's large objects the source's
// before writes stop: both sides read without content, and the source's
// compared with what the last copy recorded (Database.LargeObjects).
func (r *run) largeObjectsFirstPass(db *dbRun) subStep {
	d := r.d
	// Unbounded but by the run's context, as copy-large-objects: what it
	// copies, it copies before writes stop.
	return subStep{name: r.label("large objects, first pass", db), target: d.from.name + " -> " + d.to.name, own: true,
		plan: func() []pg.PlanLine {
			return append(r.largeObjectsReadPlan(db, true), r.largeObjectsCopyPlan("when they differ, or when the source's were written since "+r.lastCopy())...)
		},
		run: func(ctx context.Context) (string, error) { return r.syncLargeObjects(ctx, db, true) }}
}

// largeObjectsStep is the pause's: the source's large objects read again
// without content, and copied only if they changed since the first pass.
// Finishing an attempt that stopped, with no first pass in this process,
// it reads both sides as the first pass does.
func (r *run) largeObjectsStep(db *dbRun) subStep {
	d := r.d
	return subStep{name: r.label("large objects", db), target: d.from.name + " -> " + d.to.name,
		plan: func() []pg.PlanLine {
			return append(r.largeObjectsReadPlan(db, false), r.largeObjectsCopyPlan("only when they changed since the first pass")...)
		},
		run: func(ctx context.Context) (string, error) {
			detail, err := r.syncLargeObjects(ctx, db, db.loSource == nil)
			if err == nil {
				// What the target holds now, for the next direction's check.
				var after pg.LargeObjectsDigest
				if after, err = pg.LargeObjectsShape(ctx, db.to); err == nil {
					db.rep.LargeObjectsAfter = after.String()
				}
			}
			return detail, err
		}}
}

// lastCopy says what the first pass compares the source's large objects
// with.
func (r *run) lastCopy() string {
	if r.d.rollback {
		return "the cutover left them equal (its report's reading of green)"
	}
	return "copy-large-objects compared them"
}

func (r *run) largeObjectsReadPlan(db *dbRun, both bool) []pg.PlanLine {
	d := r.d
	out := sideLines(d, pg.LargeObjectReads("blue"))
	if both {
		out = append(out, sideLines(d, pg.LargeObjectReads("green"))...)
		return append([]pg.PlanLine{pg.Note(d.from.name, "%s's large objects in %s and %s's, without content: OIDs, sizes, owners, privileges, comments, and the statistics' count of writes", d.from.name, db.Name, d.to.name)}, out...)
	}
	return append([]pg.PlanLine{pg.Note(d.from.name, "%s's large objects in %s, without content, writes stopped, against the first pass's reading", d.from.name, db.Name)}, out...)
}

// largeObjectsCopyPlan is the copy a large objects sub-step runs when.
// A change says nothing of which object changed (a rewrite in place of
// the same size moves only the count of writes), so the copy compares
// every object of equal size by md5, computed on each server.
func (r *run) largeObjectsCopyPlan(when string) []pg.PlanLine {
	return append([]pg.PlanLine{pg.Note(r.d.to.name, "the copy, %s: objects of equal size compared by md5 on each server, the others copied", when)},
		sideLines(r.d, pg.CopyLargeObjectsParams{}.Statements())...)
}

// sideLines are statements written for blue -> green, each on the side
// it runs on in direction d.
func sideLines(d direction, stmts []pg.Stmt) []pg.PlanLine {
	out := pg.Lines(stmts...)
	if d.rollback {
		for i := range out {
			switch out[i].On {
			case "blue":
				out[i].On = "green"
			case "green":
				out[i].On = "blue"
			}
		}
	}
	return out
}

// syncLargeObjects makes the target's large objects the source's: the
// source's are read without content, and compared with the last reading
// both sides matched at (the first pass's, else what the last copy
// recorded); with both, the target's are read and compared too. When
// anything differs they are copied, every object of equal size compared
// by md5: a count of writes that moved does not say which object.
func (r *run) syncLargeObjects(ctx context.Context, db *dbRun, both bool) (string, error) {
	d := r.d
	now, err := pg.LargeObjectsShape(ctx, db.from)
	if err != nil {
		return "", fmt.Errorf("%s's large objects: %w", d.from.name, err)
	}
	var why string
	since := db.loSource
	if since == nil && db.LargeObjects != "" {
		rec, err := pg.ParseLargeObjectsDigest(db.LargeObjects)
		if err != nil {
			return "", fmt.Errorf("the recorded reading of %s's large objects: %w", d.from.name, err)
		}
		since = &rec
	}
	if since != nil {
		if ch := pg.DigestChange(now, *since); ch.Changed {
			why = ch.Why
		}
	}
	if both && why == "" {
		to, err := pg.LargeObjectsShape(ctx, db.to)
		if err != nil {
			return "", fmt.Errorf("%s's large objects: %w", d.to.name, err)
		}
		if to.Count != now.Count || to.Bytes != now.Bytes || to.Shape != now.Shape {
			why = fmt.Sprintf("%s has %s, %s %s", d.from.name, now.Summary(), d.to.name, to.Summary())
		}
	}
	if why == "" {
		db.loSource = &now
		if now.Count == 0 {
			return "no large object", nil
		}
		return fmt.Sprintf("%s, as on %s", now.Summary(), d.to.name), nil
	}
	res, err := pg.CopyLargeObjectsParams{}.Exec(ctx, db.from, db.to)
	db.rep.LargeObjectsCopied += int(res.Copied)
	if err != nil {
		return "", fmt.Errorf("copying %s's large objects to %s (%s): %w", d.from.name, d.to.name, why, err)
	}
	db.loSource = &res.Digest
	return fmt.Sprintf("%s: %d copied (%s), %d compared by md5 (%s), %d removed, %d given their owner, privileges or comment",
		why, res.Copied, pg.Bytes(res.CopiedBytes), res.Compared, pg.Bytes(res.ComparedBytes), res.Removed, res.Fixed), nil
}
