package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// enableWorkerWait is how long enable-subscriptions waits for each
// subscription's apply worker before it enables the next: the launcher
// starts one within a second when a worker slot is free.
var enableWorkerWait = 30 * time.Second

// enableOps is what enable-subscriptions does now: for the copy strategy,
// max_sync_workers_per_subscription raised on green to the planned number
// when it is lower (nil otherwise), then ALTER SUBSCRIPTION ... ENABLE for
// each subscription not enabled yet, the one with the most to copy first.
type enableOps struct {
	workers *pg.SyncWorkersParams
	// notes say why (the plan of workers) or what the operator must set.
	notes []string
	order []string
}

func (o enableOps) statements() []pg.Stmt {
	var out []pg.Stmt
	if o.workers != nil {
		out = append(out, o.workers.Statements()...)
	}
	for _, n := range o.order {
		s := pg.EnableParams{On: "green", Names: []string{n}}.Statements()[0]
		s.Note = fmt.Sprintf("then up to %s for its apply worker in pg_stat_subscription", enableWorkerWait)
		out = append(out, s)
	}
	return out
}

func enableOpsFor(ctx context.Context, e *Env) (enableOps, error) {
	var o enableOps
	op, err := enableOp(ctx, e)
	if err != nil {
		return o, err
	}
	o.order = op.Names
	if e.Green == nil || e.Blue == nil {
		if e.Config.CopyData() {
			o.notes = append(o.notes, "copy strategy: max_sync_workers_per_subscription is raised on green to the planned number (3 per core of green, as many as green's worker slots hold with one apply worker per subscription) when it is lower; the subscription with the most to copy is enabled first")
		}
		return o, nil
	}
	if len(o.order) == 0 {
		return o, nil
	}
	sizes, err := pg.PublicationSizes(ctx, e.Blue, o.order)
	if err != nil {
		return o, err
	}
	o.order = pg.LargestFirst(o.order, sizes)
	if !e.Config.CopyData() {
		return o, nil
	}
	if len(e.Config.SlotPublications()) == 0 {
		o.notes = append(o.notes, "every publication was copied in its slot's snapshot (copy-data): no table sync")
		return o, nil
	}
	set, err := pg.ReadSyncSettings(ctx, e.Green)
	if err != nil {
		return o, err
	}
	slots, senders, err := pg.FreeReplicationCapacity(ctx, e.Blue)
	if err != nil {
		return o, err
	}
	all, err := pg.PublicationSizes(ctx, e.Blue, e.Config.PublicationNames())
	if err != nil {
		return o, err
	}
	var tables []int
	for _, p := range e.Config.Publications {
		if e.Config.BySnapshot(p) {
			tables = append(tables, 0) // copied by copy-data: no table sync
			continue
		}
		tables = append(tables, all[p.Name].Tables)
	}
	plan := pg.PlanSyncWorkers(pg.SyncWorkerInputs{GreenCores: e.Config.GreenCores(), Green: set,
		Subscriptions: len(e.Config.Publications), Tables: tables, BlueFreeSlots: slots, BlueFreeWALSenders: senders})
	o.notes = append(o.notes, plan.Why)
	switch {
	case !plan.Raise:
		o.notes = append(o.notes, fmt.Sprintf("green's max_sync_workers_per_subscription = %d already", set.MaxSyncWorkersPerSubscription))
	case set.Superuser:
		o.workers = &pg.SyncWorkersParams{On: "green", PerSubscription: plan.PerSubscription}
	default:
		o.notes = append(o.notes, fmt.Sprintf("not a superuser on green: set max_sync_workers_per_subscription = %d there (a reload), or the sync runs with %d", plan.PerSubscription, set.MaxSyncWorkersPerSubscription))
	}
	return o, nil
}

// waitApplyWorker waits until sub's apply worker shows in
// pg_stat_subscription, up to enableWorkerWait; one not launched by then
// is reported as that (wait-catch-up follows it), never as a failure to
// connect.
func (e *Env) waitApplyWorker(ctx context.Context, sub string) error {
	deadline := time.Now().Add(enableWorkerWait)
	for {
		qctx, cancel := e.bounded(ctx)
		w, err := pg.ReadWorkerState(qctx, e.Green, sub)
		cancel()
		if err != nil {
			return err
		}
		if w.Running {
			e.Logf("the apply worker of subscription %s runs (%d of %d logical replication workers in use on green)", sub, w.InUse, w.Max)
			return nil
		}
		if time.Now().After(deadline) {
			e.Warnf("%s; wait-catch-up follows it", w.NotLaunched(sub))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// plannedTables is how many tables publication p will publish, of the
// schemas' all: its list, or, with none, every table the other
// publications do not list.
func plannedTables(p config.Publication, pubs []config.Publication, all int) int {
	if len(p.Tables) > 0 {
		return len(p.Tables)
	}
	for _, o := range pubs {
		all -= len(o.Tables)
	}
	return max(all, 0)
}

// syncWorkerAdvice is preflight's line about the initial sync's workers
// (copy strategy): the plan, and warn when green's settings hold it below
// what its cores would take. It reads green's settings and blue's spare
// slots itself.
func (e *Env) syncWorkerAdvice(ctx context.Context) (line string, warn bool, err error) {
	if !e.Config.CopyData() || e.Green == nil || e.Blue == nil {
		return "", false, nil
	}
	var snap []string
	for _, p := range e.Config.SnapshotPublications() {
		snap = append(snap, p.Name)
	}
	bySnapshot := ""
	if len(snap) > 0 {
		bySnapshot = fmt.Sprintf("copy-data copies %s in its slot's snapshot, on %d sessions each side", strings.Join(snap, ", "), e.Config.CopyJobs())
	}
	if len(e.Config.SlotPublications()) == 0 {
		return "initial sync: " + bySnapshot + "; no table sync", false, nil
	}
	set, err := pg.ReadSyncSettings(ctx, e.Green)
	if err != nil {
		return "", false, err
	}
	slots, senders, err := pg.FreeReplicationCapacity(ctx, e.Blue)
	if err != nil {
		return "", false, err
	}
	// The run's own slots are not made yet at preflight: leave them room.
	n := len(e.Config.Publications)
	all, err := pg.PublicationSizes(ctx, e.Blue, e.Config.PublicationNames())
	if err != nil {
		return "", false, err
	}
	largest, total, count, err := pg.LargestTables(ctx, e.Blue, e.Config.Schemas, 1)
	if err != nil {
		return "", false, err
	}
	tables := make([]int, n)
	for i, p := range e.Config.Publications {
		tables[i] = all[p.Name].Tables
		if e.Config.BySnapshot(p) {
			tables[i] = 0
		} else if tables[i] == 0 {
			// Not made yet (preflight comes first): what it will publish.
			tables[i] = plannedTables(p, e.Config.Publications, count)
		}
	}
	plan := pg.PlanSyncWorkers(pg.SyncWorkerInputs{GreenCores: e.Config.GreenCores(), Green: set,
		Subscriptions: n, Tables: tables, BlueFreeSlots: slots - n, BlueFreeWALSenders: senders - n})
	line = "initial sync: " + plan.Why
	warn = len(plan.Limits) > 0
	if n == 1 {
		if advice := pg.DedicatedPublicationAdvice(largest, total, tables[0]); advice != "" {
			line, warn = line+"; "+advice, true
		}
	}
	if bySnapshot != "" {
		line += "; " + bySnapshot
	}
	if plan.Raise {
		line += fmt.Sprintf("; enable-subscriptions raises max_sync_workers_per_subscription from %d (a reload)", set.MaxSyncWorkersPerSubscription)
		if !set.Superuser {
			line += fmt.Sprintf(", which needs a superuser: set it to %d on green yourself", plan.PerSubscription)
		}
	}
	return line, warn, nil
}
