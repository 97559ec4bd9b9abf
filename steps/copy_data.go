package steps

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// copy-data (copy strategy): the tables of each publication with
// `copy: snapshot`, copied by pgbluegreen in the snapshot its slot exports,
// as pgcopydb copies; create-subscriptions then subscribes on that slot
// with copy_data = false.

const copyDataID = "copy-data"

// CopyDataHold is the test hook's point (HoldEnv): after the first table's
// copy has committed on green.
const CopyDataHold = "copy-data: a table copied"

func copyData() *Step {
	return &Step{ID: copyDataID, Phase: PhaseReplicate, Target: BlueGreen, Title: "Copy data in the slot's snapshot",
		Why: "For each publication with copy: snapshot: its slot is made now, exporting its snapshot, and a few sessions copy every table in it, largest first. " +
			"One slot and one snapshot for all its tables, where the table sync makes a worker, a walsender, a slot and a snapshot per table.",
		Source: "issue 15 (pgcopydb's clone)", Records: []string{"slot_lsn.<slot>", "snapshot_copy.<publication>"},
		Plan:  planCopyData,
		Check: checkCopyData,
		Run:   runCopyData,
	}
}

// snapshotPublications are the publications copy-data copies.
func (c *Config) snapshotPublications() []Publication {
	var out []Publication
	for _, p := range c.Publications {
		if p.Copy == copySnapshot {
			out = append(out, p)
		}
	}
	return out
}

// slotPublications are the publications whose slot create-slots makes:
// all but the snapshot ones.
func (c *Config) slotPublications() []Publication {
	var out []Publication
	for _, p := range c.Publications {
		if p.Copy != copySnapshot {
			out = append(out, p)
		}
	}
	return out
}

// copyJobs is how many sessions copy at once on each side: sync.copy_jobs,
// or two per core of green (a small table's copy mostly waits on round
// trips), at most 6.
func (c *Config) copyJobs() int {
	if c.Sync.CopyJobs > 0 {
		return c.Sync.CopyJobs
	}
	return min(2*c.greenCores(), 6)
}

// snapshotCopiedKey records, once a publication's copy is complete, the
// position its subscription streams from.
func snapshotCopiedKey(pub string) string { return "snapshot_copy." + pub }

func checkCopyData(ctx context.Context, e *Env) (CheckResult, error) {
	pubs := e.Config.snapshotPublications()
	if len(pubs) == 0 {
		return CheckResult{Done: true, Detail: "no publication has copy: snapshot: the table sync copies every table"}, nil
	}
	if err := e.needBoth(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	slots, err := pg.LogicalSlots(ctx, e.Blue)
	if err != nil {
		return CheckResult{}, err
	}
	var todo, done []string
	for _, p := range pubs {
		lsn, copied := e.Value(snapshotCopiedKey(p.Name))
		_, slot := pg.FindSlot(slots, slotName(p.Name))
		if !copied || !slot {
			todo = append(todo, p.Name)
			continue
		}
		done = append(done, fmt.Sprintf("%s at %s", p.Name, lsn))
	}
	if len(todo) > 0 {
		return CheckResult{Detail: "not copied: " + strings.Join(todo, ", ")}, nil
	}
	return CheckResult{Done: true, Detail: "copied in the slot's snapshot: " + strings.Join(done, ", ")}, nil
}

// copyDataOp is what copy-data does now for one publication; refusal says
// why it would not ("" when it would).
type copyDataOp struct {
	params pg.SnapshotCopyParams
	// leftover is a slot an interrupted copy left on blue: dropped first.
	leftover *pg.DropSlotParams
	refusal  string
}

// copyDataOps are the ops for the publications not copied yet. Offline, a
// plan shows each with its tables as a placeholder.
func copyDataOps(ctx context.Context, e *Env) ([]copyDataOp, error) {
	var out []copyDataOp
	var slots []pg.SlotInfo
	if e.Blue != nil {
		var err error
		if slots, err = pg.LogicalSlots(ctx, e.Blue); err != nil {
			return nil, err
		}
	}
	for _, p := range e.Config.snapshotPublications() {
		op := copyDataOp{params: pg.SnapshotCopyParams{Publication: p.Name, Slot: slotName(p.Name), Jobs: e.Config.copyJobs()}}
		if _, copied := e.Value(snapshotCopiedKey(p.Name)); copied {
			if _, ok := pg.FindSlot(slots, op.params.Slot); ok || e.Blue == nil {
				continue
			}
		}
		if e.Blue == nil || e.Green == nil {
			op.params.TablesUnknown = true
			out = append(out, op)
			continue
		}
		if s, ok := pg.FindSlot(slots, op.params.Slot); ok {
			if s.Active {
				op.refusal = fmt.Sprintf("slot %s is in use on blue: something consumes it; stop that first", s.Name)
			}
			op.leftover = &pg.DropSlotParams{On: "blue", Name: s.Name}
		}
		sub, err := pg.ReadSubscription(ctx, e.Green, p.Name)
		if err != nil {
			return nil, err
		}
		if sub.Exists {
			op.refusal = fmt.Sprintf("subscription %s exists on green already: its copy cannot be made again under it; drop it (cleanup) to start over", p.Name)
		}
		pub, err := pg.ReadPublication(ctx, e.Blue, p.Name)
		if err != nil {
			return nil, err
		}
		if !pub.Exists {
			op.refusal = fmt.Sprintf("publication %s does not exist on blue: run create-publications first", p.Name)
			out = append(out, op)
			continue
		}
		if op.params.Tables, err = pg.SnapshotTables(ctx, e.Blue, p.Name); err != nil {
			return nil, err
		}
		if op.params.NonEmpty, err = pg.NonEmptyTables(ctx, e.Green, op.params.Tables); err != nil {
			return nil, err
		}
		out = append(out, op)
	}
	return out, nil
}

func planCopyData(ctx context.Context, e *Env) ([]Action, error) {
	if len(e.Config.snapshotPublications()) == 0 {
		return []Action{note(BlueGreen, "no publication has copy: snapshot: the table sync copies every table (create-subscriptions)")}, nil
	}
	ops, err := copyDataOps(ctx, e)
	if err != nil {
		return nil, err
	}
	out := []Action{note(BlueGreen, "refused while a publication's subscription exists on green, or while its slot is in use; a slot left by an interrupted copy is dropped and the copy made again from the start")}
	for _, op := range ops {
		if op.refusal != "" {
			out = append(out, note(BlueGreen, "refused now: %s", op.refusal))
			continue
		}
		if op.params.TablesUnknown {
			out = append(out, note(BlueGreen, "publication %s: every table it publishes (read on blue), on %d sessions each side", op.params.Publication, op.params.Jobs))
		} else {
			out = append(out, note(BlueGreen, "publication %s: %d tables, %s, on %d sessions each side", op.params.Publication, len(op.params.Tables), pg.Bytes(totalBytes(op.params.Tables)), min(op.params.Jobs, len(op.params.Tables))))
		}
		if op.leftover != nil {
			out = append(out, stmts(op.leftover.Statements()...)...)
		}
		out = append(out, stmts(op.params.Statements()...)...)
		out = append(out, note(BlueGreen, "recorded: slot_lsn.%s (the slot's consistent point) once it exists; %s once every table is copied", op.params.Slot, snapshotCopiedKey(op.params.Publication)))
	}
	if len(ops) == 0 {
		out = append(out, note(BlueGreen, "every snapshot publication is copied: nothing to do"))
	}
	return out, nil
}

func totalBytes(ts []pg.SnapshotTable) int64 {
	var n int64
	for _, t := range ts {
		n += t.Bytes
	}
	return n
}

// runCopyData copies each snapshot publication not copied yet. The copy
// is recorded only once every table is in: a run stopped half way (a
// kill, a lost session) leaves the slot and some tables, and the next run
// drops that slot, empties those tables and copies again from a new
// snapshot.
func runCopyData(ctx context.Context, e *Env) error {
	if len(e.Config.snapshotPublications()) == 0 {
		return nil
	}
	if err := e.needBoth(); err != nil {
		return err
	}
	rctx, cancel := e.bounded(ctx)
	ops, err := copyDataOps(rctx, e)
	cancel()
	if err != nil {
		return err
	}
	for _, op := range ops {
		if op.refusal != "" {
			return e.refuse("%s", op.refusal)
		}
	}
	for _, op := range ops {
		if err := e.copyPublication(ctx, op); err != nil {
			return err
		}
	}
	return nil
}

// copyDataLogEvery is how often the copy says how far it is.
const copyDataLogEvery = 5 * time.Second

func (e *Env) copyPublication(ctx context.Context, op copyDataOp) error {
	p := op.params
	if op.leftover != nil {
		e.Warnf("slot %s was left by an interrupted copy (its snapshot is gone with its session): dropping it to copy again from a new one", p.Slot)
		dctx, cancel := e.bounded(ctx)
		_, err := op.leftover.Exec(dctx, e.Blue)
		cancel()
		if err != nil {
			return err
		}
	}
	if len(p.NonEmpty) > 0 {
		e.Warnf("%d tables of %s on green hold rows from an interrupted copy: emptied first", len(p.NonEmpty), p.Publication)
	}
	start := time.Now()
	last := start
	p.OnSlot = func(lsn string) error {
		e.Logf("slot %s created at %s, exporting its snapshot; copying %d tables (%s) on %d sessions", p.Slot, lsn, len(p.Tables), pg.Bytes(totalBytes(p.Tables)), p.Jobs)
		return e.Record("slot_lsn."+p.Slot, lsn)
	}
	p.Progress = func(pr pg.SnapshotCopyProgress) {
		if time.Since(last) < copyDataLogEvery {
			return
		}
		last = time.Now()
		e.Logf("%s", snapshotCopyLine(pr, time.Since(start)))
	}
	if hold := os.Getenv(HoldEnv); hold == CopyDataHold {
		h := e.holdAt(hold)
		var once sync.Once
		p.AfterTable = func(ctx context.Context, _ pg.Rel) { once.Do(func() { h(ctx, CopyDataHold) }) }
	}
	lsn, err := p.Exec(ctx, e.Blue, e.Green)
	if err != nil {
		return fmt.Errorf("copy publication %s: %w", p.Publication, err)
	}
	took := time.Since(start)
	total := totalBytes(p.Tables)
	e.Logf("copied %d tables of %s (%s) in %s, %s/s; its subscription streams from %s", len(p.Tables), p.Publication, pg.Bytes(total), took.Round(time.Millisecond), pg.Bytes(int64(float64(total)/max(took.Seconds(), 0.001))), lsn)
	return e.Record(snapshotCopiedKey(p.Publication), lsn)
}

// snapshotCopyLine says how far a snapshot copy is, as the table sync's
// progress does.
func snapshotCopyLine(pr pg.SnapshotCopyProgress, took time.Duration) string {
	l := fmt.Sprintf("copying in the snapshot: %d/%d tables, %s of %s", pr.TablesDone, pr.TablesTotal, pg.Bytes(pr.BytesDone), pg.Bytes(pr.BytesTotal))
	if took > time.Second && pr.BytesDone > 0 {
		rate := float64(pr.BytesDone) / took.Seconds()
		eta := time.Duration(float64(pr.BytesTotal-pr.BytesDone) / rate * float64(time.Second))
		l += fmt.Sprintf(", %s/s, ETA %s", pg.Bytes(int64(rate)), eta.Round(time.Second))
	}
	if len(pr.InFlight) > 0 {
		names := make([]string, 0, 3)
		for _, r := range pr.InFlight[:min(3, len(pr.InFlight))] {
			names = append(names, r.String())
		}
		l += "; in flight: " + strings.Join(names, ", ")
	}
	return l
}
