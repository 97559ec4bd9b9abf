package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// copy-data (copy strategy): the tables of each publication with
// `copy: snapshot`, copied by pgbluegreen in the snapshot its slot exports,
// as pgcopydb copies; create-subscriptions then subscribes on that slot
// with copy_data = false.

const copyDataID = "copy-data"

// CopyDataHold is the kill tests' point (testhook.HoldEnv): after the
// first table's data has committed on green, or, when indexes are built
// after the data of a table this run copies, the first such table's,
// before its indexes are built.
const CopyDataHold = "copy-data: a table copied"

func copyData() *Step {
	return &Step{ID: copyDataID, PerDatabase: true, Phase: PhaseReplicate, Target: BlueGreen, Title: "Copy data in the slot's snapshot",
		Why: "For each publication with copy: snapshot: its slot is made now, exporting its snapshot, and a few sessions copy every table in it, largest first. " +
			"One slot and one snapshot for all its tables, where the table sync makes a worker, a walsender, a slot and a snapshot per table.",
		Source: "issue 15 (pgcopydb's clone)", Records: []string{"slot_lsn.<slot>", "snapshot_copy.<publication>"},
		Plan:  planCopyData,
		Check: checkCopyData,
		Run:   runCopyData,
		Again: copyDataAgain,
	}
}

// copyDataAgain allows copying again once a copied publication's slot is
// gone from blue before its subscription was made: without the slot, the
// copy has no stream to continue from.
func copyDataAgain(ctx context.Context, e *Env) string {
	if e.Blue == nil || e.Green == nil {
		return "blue and green must be reachable"
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	slots, err := pg.LogicalSlots(ctx, e.Blue)
	if err != nil {
		return err.Error()
	}
	for _, p := range e.Config.SnapshotPublications() {
		if _, ok := pg.FindSlot(slots, e.Config.Feed(p.Name)); ok {
			continue
		}
		sub, err := pg.ReadSubscription(ctx, e.Green, e.Config.Feed(p.Name))
		if err != nil {
			return err.Error()
		}
		if !sub.Exists {
			return ""
		}
	}
	return "every snapshot publication's slot is on blue, or its subscription exists: the copy stands"
}

// snapshotCopyRestartBytes is the size of a snapshot publication above
// which preflight warns that a copy stopped half way starts over (a
// variable: a test lowers it).
var snapshotCopyRestartBytes int64 = 10 << 30

// snapshotCopyAdvice is preflight's word on copy-data (copy: snapshot):
// whether each server has a connection free for each of its sessions, and
// which snapshot publications are large enough that a copy stopped half
// way costs much (the table sync goes on inside green instead).
func (e *Env) snapshotCopyAdvice(ctx context.Context) ([]string, error) {
	pubs := e.Config.SnapshotPublications()
	if len(pubs) == 0 || e.Green == nil || e.Blue == nil {
		return nil, nil
	}
	var out []string
	jobs := e.Config.CopyJobs()
	for _, side := range []struct {
		name string
		pool *pgxpool.Pool
	}{{"blue", e.Blue}, {"green", e.Green}} {
		free, err := pg.FreeConnections(ctx, side.pool, side.name)
		if err != nil {
			return out, err
		}
		if free < jobs+2 {
			out = append(out, fmt.Sprintf("copy-data opens %d sessions on %s, which has %d connections free (max_connections less those in use and reserved): lower sync.copy_jobs or raise max_connections", jobs, side.name, free))
		}
	}
	names := make([]string, len(pubs))
	for i, p := range pubs {
		names[i] = p.Name
	}
	sizes, err := pg.PublicationSizes(ctx, e.Blue, names)
	if err != nil {
		return out, err
	}
	for i, n := range names {
		if b := sizes[n].Bytes; b >= snapshotCopyRestartBytes {
			out = append(out, fmt.Sprintf("publication %s (copy: %s) holds %s: a copy of it that loses its snapshot (blue restarted, or copy-data not run again within %s of a kill) starts over from a new one; its largest tables are better in a publication of their own by table sync, which goes on inside green", n, copyLabel(pubs[i]), pg.Bytes(b), SnapshotHoldIdle))
		}
	}
	return out, nil
}

// snapshotCopiedKey records, once a publication's copy is complete, the
// position its subscription streams from.
func snapshotCopiedKey(pub string) string { return "snapshot_copy." + pub }

func checkCopyData(ctx context.Context, e *Env) (CheckResult, error) {
	pubs := e.Config.SnapshotPublications()
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
		_, slot := pg.FindSlot(slots, e.Config.Feed(p.Name))
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
	// leftover is a slot on blue that no subscription uses: one an
	// interrupted copy left, or create-slots' from when the publication
	// was copied by table sync. Dropped first.
	leftover *pg.DropSlotParams
	// resume is the hold of a copy stopped half way whose snapshot lives:
	// the copy goes on in it. staleHold is a hold file whose snapshot is
	// gone, removed first.
	resume    *SnapshotHold
	staleHold string
	refusal   string
}

// copyDataOps are the ops for the publications not copied yet (or whose
// copy lost its slot). Offline, a plan shows each with its tables as a
// placeholder.
func copyDataOps(ctx context.Context, e *Env) ([]copyDataOp, error) {
	var out []copyDataOp
	var slots []pg.SlotInfo
	if e.Blue != nil {
		var err error
		if slots, err = pg.LogicalSlots(ctx, e.Blue); err != nil {
			return nil, err
		}
	}
	for _, p := range e.Config.SnapshotPublications() {
		op := copyDataOp{params: pg.SnapshotCopyParams{Publication: p.Name, Slot: e.Config.Feed(p.Name), Jobs: e.Config.CopyJobs()}}
		_, copied := e.Value(snapshotCopiedKey(p.Name))
		s, slotThere := pg.FindSlot(slots, op.params.Slot)
		if copied && (slotThere || e.Blue == nil) {
			continue
		}
		if e.Blue == nil || e.Green == nil {
			op.params.TablesUnknown = true
			out = append(out, op)
			continue
		}
		sub, err := pg.ReadSubscription(ctx, e.Green, e.Config.Feed(p.Name))
		if err != nil {
			return nil, err
		}
		pub, err := pg.ReadPublication(ctx, e.Blue, p.Name)
		if err != nil {
			return nil, err
		}
		switch {
		case sub.Exists:
			op.refusal = fmt.Sprintf("subscription %s exists on green already: its tables cannot be copied again under it; drop it (cleanup) to start over", e.Config.Feed(p.Name))
		case !pub.Exists:
			op.refusal = fmt.Sprintf("publication %s does not exist on blue: run create-publications first", p.Name)
		case slotThere && s.Active:
			op.refusal = fmt.Sprintf("slot %s is in use on blue: something consumes it; stop that first", s.Name)
		}
		if op.refusal != "" {
			out = append(out, op)
			continue
		}
		if op.params.Tables, err = pg.SnapshotTables(ctx, e.Blue, p.Name); err != nil {
			return nil, err
		}
		if err := e.findHold(ctx, &op, slotThere); err != nil {
			return nil, err
		}
		if slotThere && op.resume == nil {
			op.leftover = &pg.DropSlotParams{On: "blue", Name: s.Name}
		}
		records, err := pg.CopiedRanges(ctx, e.Green, p.Name, "")
		if err != nil {
			return nil, err
		}
		if op.params.Deferred, err = pg.DeferrableIndexes(ctx, e.Green, p.Name, op.params.Tables, 0); err != nil {
			return nil, err
		}
		if op.resume != nil {
			op.params.Deferred = stillToCopy(op.params)
		}
		missing, err := pg.MissingOnGreen(ctx, e.Green, op.params.Tables)
		if err != nil {
			return nil, err
		}
		if len(missing) > 0 {
			op.refusal = fmt.Sprintf("green lacks %s: its schema is not blue's; run copy-schema, and compare-schema to see what differs", strings.Join(missing, "; "))
			out = append(out, op)
			continue
		}
		full, err := pg.NonEmptyTables(ctx, e.Green, op.params.Tables)
		if err != nil {
			return nil, err
		}
		// Rows on green are an earlier copy's when its slot is still there
		// (a killed run), its copy was recorded (its slot lost since), or
		// it recorded pieces: emptied, unless the copy goes on in their
		// snapshot. Any other rows are not ours to remove.
		switch {
		case len(full) == 0:
		case op.resume != nil && len(op.params.Done) > 0:
		case slotThere || copied || len(records) > 0:
			op.params.Truncate = true
		default:
			op.refusal = fmt.Sprintf("%s on green hold rows, and no copy of %s is half way (no slot %s on blue): the copy goes into empty tables; if the rows are an earlier copy's, empty them (%s), else check green.conninfo",
				relNames(full, 3), p.Name, op.params.Slot, pg.TruncateStmt("green", full))
		}
		out = append(out, op)
	}
	return out, nil
}

// relNames names up to n tables, and how many more.
func relNames(rs []pg.Rel, n int) string {
	if len(rs) > n {
		return fmt.Sprintf("%s, %d more", relList(rs[:n]), len(rs)-n)
	}
	return relList(rs)
}

// findHold looks for the holder of a copy of op's publication stopped
// half way: when its snapshot still lives and its slot is on blue, op goes
// on in it from the pieces recorded on green.
func (e *Env) findHold(ctx context.Context, op *copyDataOp, slotThere bool) error {
	path := SnapshotHoldPath(e.StateDir, op.params.Slot)
	h, held, err := ReadSnapshotHold(path)
	if err != nil || !held {
		return err
	}
	lives := false
	if slotThere && h.Snapshot != "" {
		if lives, err = pg.SnapshotLives(ctx, e.Blue, h.Snapshot); err != nil {
			return fmt.Errorf("read whether the snapshot of the copy stopped half way lives on blue: %w", err)
		}
	}
	if !lives {
		op.staleHold = path
		return nil
	}
	op.resume = &h
	op.params.Snapshot, op.params.SlotLSN, op.params.Keep = h.Snapshot, h.LSN, true
	op.params.Done, err = pg.CopiedRanges(ctx, e.Green, op.params.Publication, h.Snapshot)
	return err
}

func planCopyData(ctx context.Context, e *Env) ([]Action, error) {
	if len(e.Config.SnapshotPublications()) == 0 {
		return []Action{note(BlueGreen, "no publication has copy: snapshot: the table sync copies every table (create-subscriptions)")}, nil
	}
	ops, err := copyDataOps(ctx, e)
	if err != nil {
		return nil, err
	}
	out := []Action{note(BlueGreen, "refused while a publication's subscription exists on green, while its slot is in use, while green lacks a table or column, or while its tables on green hold rows that are not an earlier copy's; a slot no subscription uses is dropped, and what an earlier copy left emptied")}
	for _, op := range ops {
		if op.refusal != "" {
			out = append(out, note(BlueGreen, "refused now: %s", op.refusal))
			continue
		}
		if op.params.TablesUnknown {
			out = append(out, note(BlueGreen, "publication %s: every table it publishes (read on blue), on %d sessions each side", op.params.Publication, op.params.Jobs))
		} else {
			out = append(out, note(BlueGreen, "publication %s: %d tables, %s, on %d sessions each side", op.params.Publication, len(op.params.Tables), pg.Bytes(totalBytes(op.params.Tables)), op.params.Sessions()))
		}
		if op.resume != nil {
			out = append(out, note(BlueGreen, "goes on in snapshot %s, held on blue since %s (pid %d): %d pieces are in, %d left", op.resume.Snapshot, op.resume.Since.UTC().Format(time.RFC3339), op.resume.PID, len(op.params.Done), len(op.params.Pieces())))
		} else if e.holder != nil {
			out = append(out, note(BlueGreen, "the slot is made by a process of its own (pgbluegreen hold-snapshot) that holds its snapshot: killed half way, copy-data run again within %s goes on in it; untouched that long, the holder runs %s on its own session and lets the snapshot go", SnapshotHoldIdle, pg.HeldSnapshot{}.DropSlotStmt(op.params.Slot).SQL))
		}
		if op.leftover != nil {
			out = append(out, stmts(op.leftover.Statements()...)...)
		}
		out = append(out, stmts(op.params.Statements()...)...)
		out = append(out, note(BlueGreen, "recorded once every table is copied: slot_lsn.%s and %s, the slot's consistent point", op.params.Slot, snapshotCopiedKey(op.params.Publication)))
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
	if len(e.Config.SnapshotPublications()) == 0 {
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
	holdPath := SnapshotHoldPath(e.StateDir, p.Slot)
	if op.staleHold != "" {
		e.Warnf("the snapshot of a copy of %s stopped half way is gone (blue restarted, or its holder): the copy starts over from a new one", p.Publication)
		if err := os.Remove(op.staleHold); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if op.leftover != nil {
		e.Warnf("slot %s is on blue and no subscription uses it (left by an interrupted copy, or made by create-slots for a table sync): dropping it to make one that exports its snapshot", p.Slot)
		dctx, cancel := e.bounded(ctx)
		_, err := op.leftover.Exec(dctx, e.Blue)
		cancel()
		if err != nil {
			return err
		}
	}
	if p.Truncate {
		e.Warnf("%s's tables on green hold an earlier copy's rows: emptied first", p.Publication)
	}
	start := time.Now()
	last := start
	slotMade := func(lsn string) {
		e.Logf("slot %s created at %s, exporting its snapshot; copying %d tables (%s) in %d pieces on %d sessions%s", p.Slot, lsn, len(p.Tables), pg.Bytes(totalBytes(p.Tables)), len(p.Pieces()), p.Sessions(), deferredLine(p.Deferred))
	}
	switch {
	case op.resume != nil:
		e.Logf("going on with the copy of %s in snapshot %s (slot %s at %s), held on blue by pid %d since %s: %d pieces are in, %d left (%s)",
			p.Publication, p.Snapshot, p.Slot, p.SlotLSN, op.resume.PID, op.resume.Since.UTC().Format(time.RFC3339), len(p.Done), len(p.Pieces()), pg.Bytes(piecesBytes(p.Pieces())))
	case e.holder != nil:
		slot := p.SlotStmt()
		h, err := e.holder(ctx, e.DB, p.Slot)
		slot.Ran(ctx, time.Since(start), err)
		if err != nil {
			return err
		}
		p.Snapshot, p.SlotLSN, p.Keep = h.Snapshot, h.LSN, true
		e.Logf("its snapshot is held by pid %d: killed half way, copy-data run again within %s goes on in it", h.PID, SnapshotHoldIdle)
		slotMade(h.LSN)
	default:
		p.OnSlot = slotMade
	}
	if p.Keep {
		defer beatHold(holdPath)()
	}
	p.Note = func(s string) { e.Warnf("%s", s) }
	p.Progress = func(pr pg.SnapshotCopyProgress) {
		if time.Since(last) < copyDataLogEvery {
			return
		}
		last = time.Now()
		e.Logf("%s", snapshotCopyLine(pr, time.Since(start)))
	}
	if holdPoint() == CopyDataHold {
		h := attemptHooks{e: e, hold: CopyDataHold}
		var once sync.Once
		// After the first table in, or the first whose indexes wait to be
		// built when any of those is copied now: a kill there leaves them
		// recorded.
		copying := map[pg.Rel]bool{}
		for _, c := range p.Pieces() {
			copying[c.Table.Rel] = true
		}
		waits := map[pg.Rel]bool{}
		for _, d := range p.Deferred {
			if copying[d.Table] {
				waits[d.Table] = true
			}
		}
		p.AfterTable = func(ctx context.Context, rel pg.Rel) {
			if len(waits) == 0 || waits[rel] {
				once.Do(func() { h.BeforeSubStep(ctx, CopyDataHold) })
			}
		}
	}
	moved := piecesBytes(p.Pieces())
	lsn, err := p.Exec(ctx, e.Blue, e.Green)
	if err != nil && p.Keep {
		return e.keepOrUndo(ctx, p, holdPath, err)
	}
	if err != nil {
		return fmt.Errorf("copy publication %s: %w; nothing is recorded: run copy-data again once both servers answer (it starts over from a new snapshot)", p.Publication, err)
	}
	took := time.Since(start)
	total, now := totalBytes(p.Tables), pg.Bytes(totalBytes(p.Tables))
	if op.resume != nil {
		// What this run copied: the pieces an earlier run left.
		total = moved
		now = pg.Bytes(moved) + " of its " + now + " now"
	}
	e.Logf("copied %d tables of %s (%s) in %s, %s/s; its subscription streams from %s", len(p.Tables), p.Publication, now, took.Round(time.Millisecond), pg.Bytes(int64(float64(total)/max(took.Seconds(), 0.001))), lsn)
	if err := e.Record("slot_lsn."+p.Slot, lsn); err != nil {
		return err
	}
	if err := e.Record(snapshotCopiedKey(p.Publication), lsn); err != nil {
		return err
	}
	if err := os.Remove(holdPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		e.Warnf("remove %s (its holder lets the snapshot go within %s): %v", holdPath, SnapshotHoldIdle, err)
	}
	return nil
}

// keepOrUndo, after a copy in a held snapshot failed, keeps what it
// copied while the snapshot lives (copy-data run again goes on from
// there); else it lets the holder go and undoes the copy.
func (e *Env) keepOrUndo(ctx context.Context, p pg.SnapshotCopyParams, holdPath string, cause error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if lives, _ := pg.SnapshotLives(rctx, e.Blue, p.Snapshot); lives {
		done, _ := pg.CopiedRanges(rctx, e.Green, p.Publication, p.Snapshot)
		return fmt.Errorf("copy publication %s: %w; %d pieces are in, in snapshot %s, which stays held for %s: run copy-data again within that time to go on from there", p.Publication, cause, len(done), p.Snapshot, SnapshotHoldIdle)
	}
	if err := os.Remove(holdPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		cause = errors.Join(cause, err)
	}
	return fmt.Errorf("copy publication %s: %w; nothing is recorded: run copy-data again once both servers answer (it starts over from a new snapshot)", p.Publication, p.Undo(rctx, e.Blue, e.Green, cause))
}

// stillToCopy are the deferred indexes a copy going on keeps: those
// recorded, and those of the tables it has pieces of left. A table an
// earlier run finished has its indexes built, or recorded.
func stillToCopy(p pg.SnapshotCopyParams) []pg.DeferredIndex {
	left := map[pg.Rel]bool{}
	for _, c := range p.Pieces() {
		left[c.Table.Rel] = true
	}
	var out []pg.DeferredIndex
	for _, d := range p.Deferred {
		if d.Recorded || left[d.Table] {
			out = append(out, d)
		}
	}
	return out
}

// piecesBytes is the size of pieces on blue.
func piecesBytes(cs []pg.Piece) int64 {
	var n int64
	for _, c := range cs {
		n += c.Bytes
	}
	return n
}

// deferredLine says which indexes are built after the data.
func deferredLine(ds []pg.DeferredIndex) string {
	if len(ds) == 0 {
		return ""
	}
	return fmt.Sprintf("; %d indexes of the largest tables built after the data", len(ds))
}

// snapshotCopyLine says how far a snapshot copy is, as the table sync's
// progress does.
func snapshotCopyLine(pr pg.SnapshotCopyProgress, took time.Duration) string {
	l := fmt.Sprintf("copying in the snapshot: %d/%d tables, %s of %s", pr.TablesDone, pr.TablesTotal, pg.Bytes(pr.BytesDone), pg.Bytes(pr.BytesTotal))
	if pr.IndexesTotal > 0 {
		l += fmt.Sprintf(", %d/%d indexes built after their table", pr.IndexesDone, pr.IndexesTotal)
	}
	if took > time.Second && pr.BytesDone > 0 {
		rate := float64(pr.BytesDone) / took.Seconds()
		eta := time.Duration(float64(pr.BytesTotal-pr.BytesDone) / rate * float64(time.Second))
		l += fmt.Sprintf(", %s/s, ETA %s", pg.Bytes(int64(rate)), eta.Round(time.Second))
	}
	if len(pr.InFlight) > 0 {
		names := make([]string, 0, 3)
		for _, t := range pr.InFlight[:min(3, len(pr.InFlight))] {
			names = append(names, fmt.Sprintf("%s (%s streamed)", t.Piece, pg.Bytes(t.Streamed)))
		}
		l += "; in flight: " + strings.Join(names, ", ")
	}
	return l
}

// readRateSample is how much of blue's largest table preflight reads
// through this machine to measure the way a snapshot copy takes.
const readRateSample = 16 << 20

// copyFlowAdvice says, for each publication of blue.conninfo's database,
// where its initial copy's bytes flow: by table sync from blue to green
// directly; by snapshot through this machine, read from blue here at a
// rate measured now on its largest table, and what a copy stopped half
// way costs again at that rate (warn: more than restartWarn).
func (e *Env) copyFlowAdvice(ctx context.Context) (lines []string, warn []bool, err error) {
	if !e.Config.CopyData() || e.Blue == nil {
		return nil, nil, nil
	}
	tables, err := pg.TableSizes(ctx, e.Blue, e.Config.Schemas)
	if err != nil {
		return nil, nil, err
	}
	dedicated := map[pg.Rel]string{}
	for _, p := range e.Config.Publications {
		for _, t := range p.Tables {
			dedicated[configRel(t)] = p.Name
		}
	}
	var rate float64 // bytes a second through here, measured once
	for _, p := range e.Config.Publications {
		if p.Database != "" && p.Database != e.Config.PrimaryDatabase() {
			continue
		}
		var bytes int64
		var largest *pg.SizedTable
		for i, t := range tables {
			if in := dedicated[t.Rel]; (len(p.Tables) > 0 && in == p.Name) || (len(p.Tables) == 0 && in == "") {
				bytes += t.Bytes
				if largest == nil {
					largest = &tables[i]
				}
			}
		}
		undecided := e.Config.IsUndecided(p)
		if rate == 0 && largest != nil && (e.Config.BySnapshot(p) || undecided) {
			if rate, err = e.readRate(ctx, *largest); err != nil {
				return nil, nil, err
			}
		}
		mode := "copy: " + copyLabel(p)
		if undecided && bytes >= autoSmallBytes && rate < config.AutoSnapshotFloor {
			mode += fmt.Sprintf(", blue read here at %s/s just now, under %s/s: create-slots would choose the table sync", pg.Bytes(int64(rate)), pg.Bytes(config.AutoSnapshotFloor))
		} else if e.Config.BySnapshot(p) {
			l := fmt.Sprintf("initial copy of %s (%s, %s) by snapshot: every byte passes through this machine (blue -> here -> green)", p.Name, pg.Bytes(bytes), mode)
			var again time.Duration
			if rate > 0 {
				again = time.Duration(float64(bytes) / rate * float64(time.Second))
				l += fmt.Sprintf(", read from blue here at %s/s just now; killed, copy-data run again within %s goes on from the pieces copied; with blue restarted or its snapshot lost it starts over: %s again, %s at that rate",
					pg.Bytes(int64(rate)), SnapshotHoldIdle, pg.Bytes(bytes), roundMinutes(again))
			}
			lines = append(lines, l)
			warn = append(warn, again > restartWarn)
			continue
		}
		lines = append(lines, fmt.Sprintf("initial copy of %s (%s, %s) by table sync: from blue to green directly, none of it through this machine; stopped half way, it goes on inside green", p.Name, pg.Bytes(bytes), mode))
		warn = append(warn, false)
	}
	return lines, warn, nil
}

// restartWarn is how long a snapshot copy's restart may cost before
// preflight warns of it.
const restartWarn = 30 * time.Minute

// roundMinutes says about how many minutes d is.
func roundMinutes(d time.Duration) string {
	if d < time.Minute {
		return "under a minute"
	}
	return fmt.Sprintf("about %.0f min", d.Minutes())
}
