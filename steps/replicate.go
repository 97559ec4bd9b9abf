package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// Replicate: create-subscriptions, advance-origins (clone strategies),
// enable-subscriptions, wait-catch-up.

func createSubscriptions() *Step {
	return &Step{ID: "create-subscriptions", PerDatabase: true, Phase: PhaseReplicate, Target: Green, Title: "Create subscriptions (disabled)",
		Why:    "One subscription per publication, on the existing slot, disabled until its origin is set; the password never reaches green's log.",
		Source: "000, 001 §5.1, 002",
		Plan:   planCreateSubscriptions,
		Check:  checkSubscriptionsExist,
		Run:    runCreateSubscriptions,
	}
}

// The steps whose state others read.
const (
	advanceOriginsID      = "advance-origins"
	enableSubscriptionsID = "enable-subscriptions"
)

// againBeforeReplication lets a step whose value the subscriptions start
// from (green_start_lsn) run again until they are enabled: after that,
// replication has started from the recorded value, and a new one would
// skip or repeat blue's changes.
func againBeforeReplication(_ context.Context, e *Env) string {
	if e.store != nil && e.store.Snapshot().Step(enableSubscriptionsID).Status == state.Done {
		return "enable-subscriptions is done: replication started from the recorded green_start_lsn, and a new value now would skip or repeat blue's changes; make green again (a new clone) instead"
	}
	return ""
}

func advanceOrigins() *Step {
	return &Step{ID: advanceOriginsID, PerDatabase: true, Phase: PhaseReplicate, Target: Green, Title: "Advance replication origins to the seed",
		Why:    "Green already holds blue's data up to the seed: start each subscription exactly there, or rows are duplicated or lost.",
		Source: "000, 001 §8, 002", Needs: []string{"green_start_lsn"},
		Plan:  planAdvanceOrigins,
		Check: checkOrigins,
		Run:   runAdvanceOrigins,
	}
}

func enableSubscriptions() *Step {
	return &Step{ID: enableSubscriptionsID, PerDatabase: true, Phase: PhaseReplicate, Target: Green, Title: "Enable subscriptions",
		Why:    "Replication starts: green consumes the slots and catches up.",
		Source: "000, 001 §8, 002",
		Plan:   planEnableSubscriptions,
		Check:  checkSubscriptionsEnabled,
		Run:    runEnableSubscriptions,
	}
}

func waitCatchUp() *Step {
	return &Step{ID: "wait-catch-up", PerDatabase: true, Phase: PhaseReplicate, Target: BlueGreen, Title: "Wait for green to catch up",
		Why:    "Every slot drained to a target LSN, every table's initial copy ready, and no apply errors.",
		Source: "000, 001 §9.1, 002",
		Plan:   planWaitCatchUp,
		Check:  checkCaughtUp,
		Run:    runWaitCatchUp,
	}
}

func checkSubscriptionsExist(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needGreen(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	var missing []string
	for _, p := range e.Config.Publications {
		s, err := pg.ReadSubscription(ctx, e.Green, e.Config.Feed(p.Name))
		if err != nil {
			return CheckResult{}, err
		}
		if !s.Exists {
			missing = append(missing, e.Config.Feed(p.Name))
		}
	}
	if len(missing) > 0 {
		return CheckResult{Detail: "subscriptions missing on green: " + strings.Join(missing, ", ")}, nil
	}
	return CheckResult{Done: true, Detail: "subscriptions on green: " + strings.Join(e.Config.FeedNames(), ", ")}, nil
}

// runCreateSubscriptions creates each missing subscription on its slot,
// disabled. It refuses when a slot is missing on blue: create_slot = false
// subscribes to an existing slot, and one made by CREATE SUBSCRIPTION would
// start at "now", after the clone or the schema copy.
func runCreateSubscriptions(ctx context.Context, e *Env) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	conninfo, err := e.Config.SubscriptionConninfoSecret()
	if err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	slots, err := pg.LogicalSlots(ctx, e.Blue)
	if err != nil {
		return err
	}
	for _, p := range e.Config.Publications {
		if e.Config.BySnapshot(p) {
			if _, ok := e.Value(snapshotCopiedKey(p.Name)); !ok {
				return e.refuse("publication %s is copied in its slot's snapshot, and that copy is not complete: run copy-data first", p.Name)
			}
		}
		if _, ok := pg.FindSlot(slots, e.Config.Feed(p.Name)); !ok {
			if e.Config.BySnapshot(p) {
				return e.refuse("slot %s does not exist on blue: the copy made in its snapshot has no stream to follow without it; copy again: run copy-data --again REASON", e.Config.Feed(p.Name))
			}
			return e.refuse("slot %s does not exist on blue: run create-slots first", e.Config.Feed(p.Name))
		}
	}
	if left, err := pg.DeferredLeft(ctx, e.Green); err != nil {
		return err
	} else if left != "" {
		return e.refuse("indexes a snapshot copy dropped on green are not built again yet (%s, in %s): run copy-data, which builds them", left, pg.DeferredTable)
	}
	if e.Config.IsCloneStrategy() {
		// Trap 4: a clone carries blue's publications (and on Aurora its
		// slots); they must be gone before green subscribes.
		relics, err := pg.RelicReplication(ctx, e.Green)
		if err != nil {
			return err
		}
		if len(relics) > 0 {
			return e.refuse("green still holds replication objects inherited from blue (%s): run drop-cloned-replication first", strings.Join(relics, ", "))
		}
	}
	ops, err := subscriptionOps(ctx, e, conninfo)
	if err != nil {
		return err
	}
	for _, op := range ops {
		if err := e.refuseCopyOverRows(ctx, op); err != nil {
			return err
		}
	}
	for _, op := range ops {
		e.Logf("%s  -- statement logging off", op.Equivalent())
		err := op.Exec(ctx, e.Green)
		if err != nil && !pg.IsConnectError(err) {
			return err
		}
		if err != nil {
			return fmt.Errorf("%w; check that green can reach blue at %s as %s (pg_hba.conf on blue, the password source %s)",
				err, e.Config.SubscriptionConninfo(), e.Config.Replication.Role, e.Config.Replication.Password.Describe())
		}
	}
	return nil
}

// refuseCopyOverRows refuses a subscription that copies (the table sync)
// into tables that hold rows on green already: they would be copied again,
// doubled where no key stops it. So after copy-data copied the
// publication (its copy: setting changed since), or when rows are there.
func (e *Env) refuseCopyOverRows(ctx context.Context, op pg.SubscriptionParams) error {
	if !op.CopyData {
		return nil
	}
	if _, ok := e.Value(snapshotCopiedKey(op.Publication)); ok {
		return e.refuse("publication %s was copied in its slot's snapshot by copy-data (copy: snapshot then): a table sync now would copy its tables again; set copy: snapshot back for it", op.Publication)
	}
	tables, err := pg.SnapshotTables(ctx, e.Blue, op.Publication)
	if err != nil {
		return err
	}
	full, err := pg.NonEmptyTables(ctx, e.Green, tables)
	if err != nil {
		return err
	}
	if len(full) > 0 {
		return e.refuse("%s on green hold rows already: the table sync of %s would copy them again (doubled, or stopped on duplicate keys); empty them (%s), or copy the publication by copy: snapshot", relNames(full, 3), op.Publication, pg.TruncateStmt("green", full))
	}
	return nil
}

// subscriptionOps are what create-subscriptions does now: one subscription
// per publication that has none on green yet (offline: every one), on its
// slot, disabled. conninfo holds the password; plans pass "" (a Secret
// renders as '********' either way).
func subscriptionOps(ctx context.Context, e *Env, conninfo string) ([]pg.SubscriptionParams, error) {
	var out []pg.SubscriptionParams
	for _, p := range e.Config.Publications {
		if e.Green != nil {
			s, err := pg.ReadSubscription(ctx, e.Green, e.Config.Feed(p.Name))
			if err != nil {
				return nil, err
			}
			if s.Exists {
				continue
			}
		}
		out = append(out, pg.SubscriptionParams{On: "green", Name: e.Config.Feed(p.Name), Publication: p.Name, Slot: e.Config.Feed(p.Name),
			Conninfo: conninfo, ShownConninfo: e.Config.SubscriptionConninfo(), CopyData: e.Config.CopyData() && !e.Config.BySnapshot(p)})
	}
	return out, nil
}

func planCreateSubscriptions(ctx context.Context, e *Env) ([]Action, error) {
	ops, err := subscriptionOps(ctx, e, "")
	if err != nil {
		return nil, err
	}
	why := "refused while a slot is missing on blue"
	if e.Config.IsCloneStrategy() {
		why += ", or while green holds replication objects inherited from blue"
	}
	out := []Action{note(Green, "%s", why)}
	for _, op := range ops {
		out = append(out, stmts(op.Statements()...)...)
	}
	if len(ops) == 0 {
		out = append(out, note(Green, "every subscription exists on green: nothing to create"))
	}
	return out, nil
}

// enableOp is what enable-subscriptions does now: ALTER SUBSCRIPTION ...
// ENABLE for each subscription not enabled yet (offline: every one).
func enableOp(ctx context.Context, e *Env) (pg.EnableParams, error) {
	op := pg.EnableParams{On: "green"}
	for _, p := range e.Config.Publications {
		if e.Green != nil {
			s, err := pg.ReadSubscription(ctx, e.Green, e.Config.Feed(p.Name))
			if err != nil {
				return op, err
			}
			if s.Enabled {
				continue
			}
		}
		op.Names = append(op.Names, e.Config.Feed(p.Name))
	}
	return op, nil
}

func planEnableSubscriptions(ctx context.Context, e *Env) ([]Action, error) {
	o, err := enableOpsFor(ctx, e)
	if err != nil {
		return nil, err
	}
	var out []Action
	if e.Config.IsCloneStrategy() {
		out = append(out, note(Green, "refused unless each origin was advanced to the seed %s, and each slot on blue is inactive, not lost, created before the seed and not confirmed beyond it", e.V("green_start_lsn")))
	}
	for _, n := range o.notes {
		out = append(out, note(Green, "%s", n))
	}
	out = append(out, stmts(o.statements()...)...)
	if len(o.order) == 0 {
		out = append(out, note(Green, "every subscription is enabled: nothing to change"))
	}
	return out, nil
}

func checkSubscriptionsEnabled(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needGreen(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	var off []string
	for _, p := range e.Config.Publications {
		s, err := pg.ReadSubscription(ctx, e.Green, e.Config.Feed(p.Name))
		if err != nil {
			return CheckResult{}, err
		}
		if !s.Exists || !s.Enabled {
			off = append(off, e.Config.Feed(p.Name))
		}
	}
	if len(off) > 0 {
		return CheckResult{Detail: "not enabled: " + strings.Join(off, ", ")}, nil
	}
	return CheckResult{Done: true, Detail: "subscriptions enabled: " + strings.Join(e.Config.FeedNames(), ", ")}, nil
}

// runEnableSubscriptions refuses, for the clone strategies, unless the seed
// is validated (trap 5): green_start_lsn recorded, each subscription's
// origin advanced to it, and each slot on blue inactive, not lost, created
// before the seed and not confirmed beyond it. Enabling without that sends
// green rows it already has (duplicates) or skips rows (loss).
func runEnableSubscriptions(ctx context.Context, e *Env) error {
	if err := e.needGreen(); err != nil {
		return err
	}
	run := ctx // the waits for each worker are bounded by enableWorkerWait
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	subs := map[string]pg.SubscriptionInfo{}
	for _, p := range e.Config.Publications {
		s, err := pg.ReadSubscription(ctx, e.Green, e.Config.Feed(p.Name))
		if err != nil {
			return err
		}
		if !s.Exists {
			return e.refuse("subscription %s does not exist on green: run create-subscriptions first", e.Config.Feed(p.Name))
		}
		subs[p.Name] = s
	}
	if e.Config.IsCloneStrategy() {
		if err := e.validateSeed(ctx, subs); err != nil {
			return err
		}
	}
	o, err := enableOpsFor(ctx, e)
	if err != nil {
		return err
	}
	for _, n := range o.notes {
		e.Logf("%s", n)
	}
	if o.workers != nil {
		if err := o.workers.Exec(ctx, e.Green); err != nil {
			return fmt.Errorf("raise max_sync_workers_per_subscription on green: %w", err)
		}
	}
	// One at a time, each waiting for its worker: a subscription enabled
	// while another's table syncs fill green's worker slots would wait for
	// a slot with nothing to say so.
	for _, n := range o.order {
		if err := (pg.EnableParams{On: "green", Names: []string{n}}).Exec(run, e.Green); err != nil {
			return fmt.Errorf("enable subscription %s: %w", n, err)
		}
		if err := e.waitApplyWorker(run, n); err != nil {
			return err
		}
	}
	return nil
}

// validateSeed is trap 5's refusal.
func (e *Env) validateSeed(ctx context.Context, subs map[string]pg.SubscriptionInfo) error {
	seed, ok := e.Value("green_start_lsn")
	if !ok {
		return e.refuse("green_start_lsn is not recorded: green's start point is unknown, enabling would lose or duplicate rows; run green-start-lsn and advance-origins first")
	}
	if err := e.needBlue(); err != nil {
		return err
	}
	slots, err := pg.LogicalSlots(ctx, e.Blue)
	if err != nil {
		return err
	}
	for _, p := range e.Config.Publications {
		s := subs[p.Name]
		if s.Enabled {
			continue // already streaming: its origin has moved on, nothing to validate
		}
		origin, err := pg.OriginProgress(ctx, e.Green, s.OID)
		if err != nil {
			return err
		}
		if origin == "" {
			return e.refuse("the origin of subscription %s (pg_%d) was never advanced: run advance-origins (seed %s) first", p.Name, s.OID, seed)
		}
		if ok, err := pg.LSNAtLeast(ctx, e.Green, origin, seed); err != nil {
			return err
		} else if !ok {
			return e.refuse("the origin of subscription %s is at %s, below the seed %s: run advance-origins again", p.Name, origin, seed)
		}
		slot, found := pg.FindSlot(slots, e.Config.Feed(p.Name))
		switch {
		case !found:
			return e.refuse("slot %s is missing on blue: the run must start over from create-slots", e.Config.Feed(p.Name))
		case slot.Active:
			return e.refuse("slot %s is in use by another consumer on blue: stop it first", slot.Name)
		case slot.WALStatus == "lost":
			return e.refuse("slot %s on blue is lost (its WAL was removed): the run must start over", slot.Name)
		}
		if created, ok := e.Value("slot_lsn." + slot.Name); ok {
			if after, err := pg.LSNAtLeast(ctx, e.Blue, created, seed); err != nil {
				return err
			} else if after {
				return e.refuse("the seed %s is not after slot %s's creation LSN %s: the clone predates the slot, rows would be lost; start over", seed, slot.Name, created)
			}
		}
		if slot.ConfirmedFlushLSN != "" {
			if ok, err := pg.LSNAtLeast(ctx, e.Blue, seed, slot.ConfirmedFlushLSN); err != nil {
				return err
			} else if !ok {
				return e.refuse("slot %s is confirmed up to %s, beyond the seed %s: the server would silently start there; start over", slot.Name, slot.ConfirmedFlushLSN, seed)
			}
		}
	}
	return nil
}

func checkOrigins(ctx context.Context, e *Env) (CheckResult, error) {
	if e.Green == nil {
		return CheckResult{}, fmt.Errorf("no connection to green: check green.conninfo in the configuration")
	}
	v, ok := e.Value("green_start_lsn")
	if !ok {
		return CheckResult{Detail: "green_start_lsn not recorded"}, nil
	}
	seed, err := pg.ParseLSN(v)
	if err != nil {
		return CheckResult{}, fmt.Errorf("recorded green_start_lsn: %w", err)
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	var off []string
	streaming := 0
	for _, p := range e.Config.Publications {
		st, err := pg.ReadOrigin(ctx, e.Green, e.Config.Feed(p.Name))
		if err != nil {
			return CheckResult{}, err
		}
		switch {
		case st.Exists && st.Progressed && st.RemoteLSN == seed:
		case st.Exists && st.Enabled && st.Progressed && st.RemoteLSN > seed:
			streaming++ // advanced to the seed, then enabled: it moved on from there
		default:
			off = append(off, e.Config.Feed(p.Name))
		}
	}
	if len(off) > 0 {
		return CheckResult{Detail: "origin not at the seed " + seed.String() + ": " + strings.Join(off, ", ")}, nil
	}
	if streaming > 0 {
		return CheckResult{Done: true, Detail: "origins advanced to the seed " + seed.String() + "; streaming from it"}, nil
	}
	return CheckResult{Done: true, Detail: "every origin at the seed " + seed.String()}, nil
}

// runAdvanceOrigins re-validates the seed (trap 5) and moves each disabled
// subscription's origin to it. It never moves an origin back: one past the
// seed has applied changes that would be applied twice.
func runAdvanceOrigins(ctx context.Context, e *Env) error {
	if e.Green == nil {
		return fmt.Errorf("no connection to green: check green.conninfo in the configuration")
	}
	seed, err := e.recordedSeed()
	if err != nil {
		return err
	}
	qctx, cancel := e.bounded(ctx)
	defer cancel()
	states := make([]pg.OriginState, 0, len(e.Config.Publications))
	for _, p := range e.Config.Publications {
		st, err := pg.ReadOrigin(qctx, e.Green, e.Config.Feed(p.Name))
		if err != nil {
			return err
		}
		switch {
		case !st.Exists:
			return e.refuse("subscription %s does not exist on green: run create-subscriptions first", e.Config.Feed(p.Name))
		case st.Enabled:
			return e.refuse("subscription %s is enabled: its origin cannot be moved while it streams; it was enabled before its seed was set, so green may hold duplicates: start over", e.Config.Feed(p.Name))
		case st.Progressed && st.RemoteLSN > seed:
			return e.refuse("the origin of subscription %s is at %s, past the seed %s: it applied changes; moving it back would apply them twice", p.Name, st.RemoteLSN, seed)
		}
		states = append(states, st)
	}
	problems, err := e.seedProblems(ctx, seed)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return e.seedRefusal(seed, problems)
	}
	op := pg.OriginAdvanceParams{On: "green", LSN: seed}
	for _, st := range states {
		if st.Progressed && st.RemoteLSN == seed {
			e.Logf("origin %s of subscription %s is at the seed already", st.Origin, st.Subscription)
			continue
		}
		op.Origins = append(op.Origins, st.Origin)
	}
	return op.Exec(qctx, e.Green)
}

// originsOp is what advance-origins does now: each subscription's origin
// not at the seed yet, read live (offline: every subscription's, by name).
func originsOp(ctx context.Context, e *Env) (pg.OriginAdvanceParams, error) {
	op := pg.OriginAdvanceParams{On: "green"}
	if v, ok := e.Value("green_start_lsn"); ok {
		seed, err := pg.ParseLSN(v)
		if err != nil {
			return op, fmt.Errorf("recorded green_start_lsn: %w", err)
		}
		op.LSN = seed
	}
	for _, p := range e.Config.Publications {
		if e.Green == nil {
			op.Origins = append(op.Origins, pg.Later("the origin of subscription "+p.Name+": 'pg_' || its oid"))
			continue
		}
		st, err := pg.ReadOrigin(ctx, e.Green, e.Config.Feed(p.Name))
		if err != nil {
			return op, err
		}
		switch {
		case !st.Exists:
			op.Origins = append(op.Origins, pg.Later("the origin of subscription "+p.Name+", once created"))
		case st.Progressed && st.RemoteLSN == op.LSN && op.LSN != 0:
		default:
			op.Origins = append(op.Origins, st.Origin)
		}
	}
	return op, nil
}

func planAdvanceOrigins(ctx context.Context, e *Env) ([]Action, error) {
	op, err := originsOp(ctx, e)
	if err != nil {
		return nil, err
	}
	out := []Action{note(Green, "refused unless the seed still holds against blue's slots (exists, inactive, not lost, seed > slot_lsn, confirmed_flush_lsn <= seed) and each subscription exists, is disabled and its origin is not past the seed")}
	out = append(out, stmts(op.Statements()...)...)
	if len(op.Origins) == 0 {
		out = append(out, note(Green, "every origin is at the seed already: nothing to change"))
	}
	return out, nil
}
