package steps

import (
	"context"
	"fmt"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/cutover"
)

// copy-large-objects: logical replication carries no large object. Each
// of blue's is made on green with its OID, owner, privileges and comment,
// and compared; the digest recorded lets a later reading (the cutover's)
// tell cheaply whether blue's changed since (pg.LargeObjectsChanged).

// copyLargeObjectsID and the value it records.
const (
	copyLargeObjectsID = "copy-large-objects"
	// LargeObjectsDigestKey is the digest of blue's large objects in the
	// snapshot copy-large-objects read (pg.LargeObjectsDigest.String), per
	// database.
	LargeObjectsDigestKey = "large_objects_digest"
	// LargeObjectsGreenKey is green's large objects as a cutover left them,
	// writes stopped and equal to blue's, per database: the rollback tells
	// by it what was written on green since.
	LargeObjectsGreenKey = "large_objects_digest_green"
)

// largeObjectsProgressEvery is how often copy-large-objects says how far it is.
const largeObjectsProgressEvery = 5 * time.Second

func copyLargeObjects() *Step {
	return &Step{ID: copyLargeObjectsID, PerDatabase: true, Phase: PhaseReplicate, Target: BlueGreen, Title: "Copy large objects to green",
		Why: "Replication carries no large object. Each of blue's is made on green with its OID, owner, privileges and comment, its content sent a chunk at a time; " +
			"those on green and not on blue are removed; objects of equal size are compared by an md5 computed on each server. " +
			"A digest is recorded so the cutover can tell cheaply whether any changed since; its check reads whether green's still match blue's now.",
		Source: "issue 23", Records: []string{LargeObjectsDigestKey},
		// Blue's large objects keep changing: a done copy is done while they
		// have not, which the check reads from the servers.
		Recheck: true,
		Plan:    planCopyLargeObjects,
		Check:   checkLargeObjects,
		Run:     runCopyLargeObjects,
		Again:   againLargeObjects,
	}
}

// againLargeObjects: a done copy is asked its check each time it is run
// (Recheck), and runs when blue's large objects changed: --again adds
// nothing.
func againLargeObjects(context.Context, *Env) string {
	return "its check reads blue and green each time it is run: `run copy-large-objects` copies again when they differ or blue's were written since"
}

// checkLargeObjects is done when green's large objects are blue's now:
// the same OIDs, sizes, owners, privileges and comments on both sides
// (read now, no content), and none written on blue since the copy that
// compared their contents (the recorded digest's count of writes).
func checkLargeObjects(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBoth(); err != nil {
		return CheckResult{}, err
	}
	blue, err := pg.LargeObjectsShape(ctx, e.Blue)
	if err != nil {
		return CheckResult{}, fmt.Errorf("blue: %w", err)
	}
	green, err := pg.LargeObjectsShape(ctx, e.Green)
	if err != nil {
		return CheckResult{}, fmt.Errorf("green: %w", err)
	}
	if blue.Count == 0 && green.Count == 0 {
		return CheckResult{Done: true, Detail: "no large object on blue or green"}, nil
	}
	if green.Count != blue.Count || green.Bytes != blue.Bytes || green.Shape != blue.Shape {
		return CheckResult{Detail: fmt.Sprintf("blue has %s, green %s: their OIDs, sizes, owners, privileges or comments differ", blue.Summary(), green.Summary())}, nil
	}
	v, ok := e.ownValue(LargeObjectsDigestKey)
	if !ok {
		return CheckResult{Detail: fmt.Sprintf("%s on both sides, never compared by content: not copied by this step", blue.Summary())}, nil
	}
	rec, err := pg.ParseLargeObjectsDigest(v)
	if err != nil {
		return CheckResult{}, fmt.Errorf("recorded %s: %w", LargeObjectsDigestKey, err)
	}
	if ch := pg.DigestChange(blue, rec); ch.Changed {
		return CheckResult{Detail: "blue's large objects changed since they were copied: " + ch.Why}, nil
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("green's %s are blue's: same OIDs, sizes, owners, privileges and comments now, contents compared by the copy and not written since", green.Summary())}, nil
}

// statsSettle is how long after a copy began blue's statistics are read
// again: a session reports its writes when it next goes idle, up to 10 s
// later when it reported less than a second before (PostgreSQL's
// PGSTAT_IDLE_INTERVAL), so a write committed just before the copy's
// snapshot may reach them after the count the digest keeps was read.
const statsSettle = 11 * time.Second

// copyPasses is how many times copy-large-objects compares while blue's
// large objects change under it.
const copyPasses = 3

// runCopyLargeObjects copies and compares, waits for blue's statistics to
// settle, and reads blue again (no content): when anything moved since
// the copy's snapshot, it compares again, up to copyPasses times. Then it
// records blue's digest.
func runCopyLargeObjects(ctx context.Context, e *Env) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	e.Logf("copying blue's large objects to green, %s at a time, compared by md5 on each server", pg.Bytes(int64(pg.DefaultLargeObjectChunk)))
	for pass := 1; ; pass++ {
		start := time.Now()
		last := start
		op := pg.CopyLargeObjectsParams{Progress: func(p pg.LargeObjectsProgress) {
			if time.Since(last) < largeObjectsProgressEvery {
				return
			}
			last = time.Now()
			e.Logf("%s", largeObjectsLine(p, time.Since(start)))
		}}
		res, err := op.Exec(ctx, e.Blue, e.Green)
		if err != nil {
			return err
		}
		took := time.Since(start)
		e.Logf("%s in %s; blue has %s", largeObjectsLine(res.LargeObjectsProgress, took), took.Round(time.Millisecond), res.Digest.Summary())
		if wait := statsSettle - took; wait > 0 {
			e.Logf("reading blue's large objects again in %s, once its statistics count every write made before the copy began", wait.Round(time.Second))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		now, err := pg.LargeObjectsShape(ctx, e.Blue)
		if err != nil {
			return fmt.Errorf("blue: %w", err)
		}
		ch := pg.DigestChange(now, res.Digest)
		if !ch.Changed {
			e.Logf("blue's large objects are as the copy read them")
			return e.Record(LargeObjectsDigestKey, res.Digest.String())
		}
		if pass == copyPasses {
			e.Warnf("blue's large objects keep changing (%s): the digest recorded is that of the last copy's snapshot, and the cutover will find them changed; run copy-large-objects again when they are quiet", ch.Why)
			return e.Record(LargeObjectsDigestKey, res.Digest.String())
		}
		e.Logf("blue's large objects changed during the copy, or just before it (%s): comparing again", ch.Why)
	}
}

// largeObjectsLine says how far a copy is.
func largeObjectsLine(p pg.LargeObjectsProgress, took time.Duration) string {
	s := fmt.Sprintf("%d/%d large objects read: %d copied (%s", p.Objects, p.Total, p.Copied, pg.Bytes(p.CopiedBytes))
	if secs := took.Seconds(); secs > 0 && p.CopiedBytes > 0 {
		s += fmt.Sprintf(", %s/s", pg.Bytes(int64(float64(p.CopiedBytes)/secs)))
	}
	s += fmt.Sprintf("), %d compared by md5 on both sides (%s), %d removed from green, %d given their owner, privileges or comment", p.Compared, pg.Bytes(p.ComparedBytes), p.Removed, p.Fixed)
	if p.Current != 0 {
		s += fmt.Sprintf("; copying large object %d: %s of %s", p.Current, pg.Bytes(p.CurrentDone), pg.Bytes(p.CurrentSize))
	}
	return s
}

func planCopyLargeObjects(ctx context.Context, e *Env) ([]Action, error) {
	out := []Action{
		note(BlueGreen, "blue is read in one snapshot, a page of %d objects at a time beside green's, in OID order; no content is held beyond a few chunks of %s", 1000, pg.Bytes(int64(pg.DefaultLargeObjectChunk))),
		note(Green, "created as their owners (SET LOCAL ROLE): the program's role must be a superuser or a member of each owner on green, and read each on blue"),
	}
	if e.Blue != nil && e.Green != nil {
		blue, err := pg.LargeObjectsShape(ctx, e.Blue)
		if err != nil {
			return nil, fmt.Errorf("blue: %w", err)
		}
		green, err := pg.LargeObjectsShape(ctx, e.Green)
		if err != nil {
			return nil, fmt.Errorf("green: %w", err)
		}
		same := "they differ: copied, removed or fixed below"
		if blue.Shape == green.Shape {
			same = "the same OIDs, sizes, owners, privileges and comments: contents compared below"
		}
		out = append(out, note(BlueGreen, "now: blue has %s, green %s; %s", blue.Summary(), green.Summary(), same))
		if blue.Count == 0 && green.Count == 0 {
			return append(out, note(BlueGreen, "no large object on either side: nothing to copy")), nil
		}
	}
	return append(out, stmts(pg.CopyLargeObjectsParams{}.Statements()...)...), nil
}

// largeObjectsAdvice is preflight's line on blue's large objects: what
// copy-large-objects will do, and, warn, when the user may lack what it
// needs (reading each on blue, creating them as their owners on green;
// green nil: not reachable yet, as for a clone).
func largeObjectsAdvice(n int64, blue pg.Privileges, green *pg.Privileges) (warn bool, line string) {
	if n == 0 {
		return false, ""
	}
	line = plural(int(n), "large object") + ": replication does not carry them; copy-large-objects copies them to green after the catch-up and compares them"
	var need []string
	if !blue.Superuser {
		need = append(need, fmt.Sprintf("on blue, user %s is not a superuser: it reads each large object, which needs SELECT on it", blue.User))
	}
	if green != nil && !green.Superuser {
		need = append(need, fmt.Sprintf("on green, user %s is not a superuser: it creates them as their owners (SET ROLE), which needs membership in each", green.User))
	}
	for _, s := range need {
		line += "; " + s
	}
	return len(need) > 0, line
}

// largeObjectsSince is, for each database, the reading of the direction's
// source's large objects the last copy left equal on both sides:
// copy-large-objects's, or the last rollback's, of blue's for a cutover;
// the last cutover's of green's for a rollback.
func (e *Env) largeObjectsSince(db string, rollback bool) string {
	key := LargeObjectsDigestKey
	if rollback {
		key = LargeObjectsGreenKey
	}
	return e.forDatabase(Database{Name: db}).V0(key)
}

// recordLargeObjectsAfter records each database's large objects on side
// to, as a done cutover or rollback left them: the next direction's
// largeObjectsSince.
func (e *Env) recordLargeObjectsAfter(rep *cutover.Report, to string) error {
	key := LargeObjectsDigestKey
	if to == "green" {
		key = LargeObjectsGreenKey
	}
	for _, d := range rep.Databases {
		if d.LargeObjectsAfter == "" {
			continue
		}
		if err := e.forDatabase(Database{Name: d.Name}).Record(key, d.LargeObjectsAfter); err != nil {
			return err
		}
	}
	return nil
}
