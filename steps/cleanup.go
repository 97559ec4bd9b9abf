package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// Cleanup: drop-subscriptions, drop-publications, revert-replica-identity.

func dropSubscriptions() *Step {
	return &Step{ID: "drop-subscriptions", PerDatabase: true, Phase: PhaseCleanup, Target: BlueGreen, Title: "Drop subscriptions",
		Why:    "After this, a rollback is no longer possible: the reverse subscription on blue goes (with its slot on green, the primary now), then the subscriptions on green (with their slots on blue). A forgotten slot fills its server's disk with WAL. Refused while a cutover is paused or interrupted.",
		Source: "000", Destructive: true,
		Plan:  planDropSubscriptions,
		Check: checkSubscriptionsGone,
		Run:   runDropSubscriptions,
	}
}

func dropPublications() *Step {
	return &Step{ID: "drop-publications", PerDatabase: true, Phase: PhaseCleanup, Target: BlueGreen, Title: "Drop publications",
		Why:    "The publications on blue and the reverse one on green go; then no logical slot may be left on blue or green. After this, a rollback is no longer possible.",
		Source: "000", Destructive: true,
		Plan:  planDropPublications,
		Check: checkPublicationsGone,
		Run:   runDropPublications,
	}
}

func revertReplicaIdentity() *Step {
	return &Step{ID: "revert-replica-identity", PerDatabase: true, Phase: PhaseCleanup, Target: Green, Title: "Revert replica identity",
		Why:    "REPLICA IDENTITY FULL makes every update log the whole row: put back the default on the tables it was set for.",
		Source: "000", Needs: []string{"replica_identity_full_tables"},
		Plan:  planRevertIdentity,
		Check: checkIdentityReverted,
		Run:   runRevertIdentity,
	}
}

func checkSubscriptionsGone(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBoth(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	var left []string
	for _, p := range e.Config.Publications {
		s, err := pg.ReadSubscription(ctx, e.Green, e.Config.Feed(p.Name))
		if err != nil {
			return CheckResult{}, err
		}
		if s.Exists {
			left = append(left, e.Config.Feed(p.Name))
		}
	}
	rev, err := pg.ReadSubscription(ctx, e.Blue, e.Config.ReverseName(e.DB))
	if err != nil {
		return CheckResult{}, err
	}
	revSlot, err := slotExists(ctx, e.Green, e.Config.ReverseName(e.DB))
	if err != nil {
		return CheckResult{}, err
	}
	var detail []string
	if len(left) > 0 {
		detail = append(detail, "subscriptions on green: "+strings.Join(left, ", "))
	}
	if rev.Exists {
		detail = append(detail, "reverse subscription on blue: "+e.Config.ReverseName(e.DB))
	}
	if revSlot {
		detail = append(detail, "reverse slot on green: "+e.Config.ReverseName(e.DB))
	}
	if len(detail) > 0 {
		return CheckResult{Detail: strings.Join(detail, "; ")}, nil
	}
	return CheckResult{Done: true, Detail: "no subscription of this run left on green, and no reverse subscription on blue"}, nil
}

// dropSubscriptionsPlan is what drop-subscriptions does now: blue's reverse
// subscription (and, should blue not reach green, the detached path), the
// reverse slot on green if still there, then green's subscriptions. Live,
// only what exists; offline, all of it.
type dropSubscriptionsPlan struct {
	reverse, reverseDetached *pg.DropSubscriptionParams
	reverseSlot              *pg.DropSlotParams
	forward                  []pg.DropSubscriptionParams
}

func dropSubscriptionsOp(ctx context.Context, e *Env) (dropSubscriptionsPlan, error) {
	var p dropSubscriptionsPlan
	rev := e.Config.ReverseName(e.DB)
	reverse, slot := e.Blue == nil, e.Green == nil
	var err error
	if e.Blue != nil {
		var s pg.SubscriptionInfo
		if s, err = pg.ReadSubscription(ctx, e.Blue, rev); err != nil {
			return p, err
		}
		reverse = s.Exists
	}
	if e.Green != nil {
		if slot, err = slotExists(ctx, e.Green, rev); err != nil {
			return p, err
		}
	}
	if reverse {
		p.reverse = &pg.DropSubscriptionParams{On: "blue", Name: rev}
		p.reverseDetached = &pg.DropSubscriptionParams{On: "blue", Name: rev, Detached: true}
	}
	if reverse || slot {
		p.reverseSlot = &pg.DropSlotParams{On: "green", Name: rev}
	}
	for _, pub := range e.Config.Publications {
		if e.Green != nil {
			s, err := pg.ReadSubscription(ctx, e.Green, e.Config.Feed(pub.Name))
			if err != nil {
				return p, err
			}
			if !s.Exists {
				continue
			}
		}
		p.forward = append(p.forward, pg.DropSubscriptionParams{On: "green", Name: e.Config.Feed(pub.Name)})
	}
	return p, nil
}

// withNote returns statements with a note each.
func withNote(ss []pg.Stmt, note string) []pg.Stmt {
	for i := range ss {
		ss[i].Note = note
	}
	return ss
}

func planDropSubscriptions(ctx context.Context, e *Env) ([]Action, error) {
	op, err := dropSubscriptionsOp(ctx, e)
	if err != nil {
		return nil, err
	}
	rev := e.Config.ReverseName(e.DB)
	var out []Action
	if op.reverse != nil {
		out = append(out, stmts(withNote(op.reverse.Statements(), "the reverse feed; drops slot "+rev+" on green too")...)...)
		out = append(out, stmts(withNote(op.reverseDetached.Statements(), "only if blue cannot reach green")...)...)
	}
	if op.reverseSlot != nil {
		out = append(out, stmts(withNote(op.reverseSlot.Statements(), "only if it is still there")...)...)
	}
	for _, f := range op.forward {
		out = append(out, stmts(withNote(f.Statements(), "drops slot "+f.Name+" on blue too")...)...)
	}
	if len(out) == 0 {
		out = append(out, note(BlueGreen, "no subscription of this run and no reverse slot left: nothing to drop"))
	}
	return out, nil
}

// runDropSubscriptions drops blue's reverse subscription (and its slot on
// green), then green's subscriptions (each drop also drops its slot on blue,
// so green must reach blue). After it, a rollback is no longer possible.
func runDropSubscriptions(ctx context.Context, e *Env) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	if err := e.refuseWhileCutoverUnfinished(ctx); err != nil {
		return err
	}
	bctx, cancel := e.bounded(ctx)
	op, err := dropSubscriptionsOp(bctx, e)
	cancel()
	if err != nil {
		return err
	}
	if err := e.dropReverseSubscription(ctx, op); err != nil {
		return err
	}
	ctx, cancel = e.bounded(ctx)
	defer cancel()
	for _, f := range op.forward {
		if err := f.Exec(ctx, e.Green); err != nil {
			var fix []string
			for _, s := range (pg.DropSubscriptionParams{On: "green", Name: f.Name, Detached: true}).Statements() {
				fix = append(fix, s.String())
			}
			return fmt.Errorf("%w; if green cannot reach blue: on green %s; then on blue %s",
				err, strings.Join(fix, "; "), pg.DropSlotParams{On: "blue", Name: f.Name}.Statements()[0])
		}
	}
	return nil
}

// dropReverseSubscription drops blue's reverse subscription, which drops its
// slot on green when blue reaches green. When it cannot, the documented path
// runs instead (DISABLE, slot_name = NONE, DROP) and the slot is dropped on
// green directly. Either way no reverse slot is left on green.
func (e *Env) dropReverseSubscription(ctx context.Context, op dropSubscriptionsPlan) error {
	rev := e.Config.ReverseName(e.DB)
	if op.reverse != nil {
		if _, _, inForce := cutoverState(e); inForce {
			e.Warnf("the cutover is in force: once blue's reverse subscription %s is dropped, a rollback is no longer possible", rev)
		}
		dctx, cancel := e.bounded(ctx)
		err := op.reverse.Exec(dctx, e.Blue)
		cancel()
		if err != nil {
			// Usually blue cannot reach green: detach the subscription instead.
			e.Warnf("%v; blue cannot drop the slot on green itself: detaching the subscription and dropping the slot on green directly", err)
			dctx, cancel := e.bounded(ctx)
			err = op.reverseDetached.Exec(dctx, e.Blue)
			cancel()
		}
		if err != nil {
			return fmt.Errorf("drop the reverse subscription on blue: %w", err)
		}
	}
	if op.reverseSlot == nil {
		return nil
	}
	dctx, cancel := e.bounded(ctx)
	defer cancel()
	dropped, err := op.reverseSlot.Exec(dctx, e.Green)
	if err != nil {
		return fmt.Errorf("drop the reverse slot on green: %w; blue's subscription %s must be gone first (pg_subscription), then on green %s", err, rev, op.reverseSlot.Statements()[0])
	}
	if dropped {
		e.Logf("on green: reverse slot %s dropped", rev)
	}
	return nil
}

// refuseWhileCutoverUnfinished refuses while a cutover or a rollback is in
// its pause or stopped half way, read from the servers: a PgBouncer paused,
// or writes going nowhere certain. Dropping the replication then would
// leave writes with no way forward and no way back.
func (e *Env) refuseWhileCutoverUnfinished(ctx context.Context) error {
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	t := monitor.ReadTraffic(ctx, e.Config, e.Blue, e.Green)
	if t.Settled {
		return nil
	}
	what := t.How
	if len(t.Warnings) > 0 {
		what = strings.Join(t.Warnings, "; ")
	}
	if t.Target == "paused" {
		return e.refuse("writes are paused (%s): a cutover or rollback is in its pause or was interrupted; let it finish, or take its way out (`pgbluegreen run cutover --finish|--undo --yes`), before dropping the replication", what)
	}
	return e.refuse("writes do not go to one side cleanly (%s): a cutover or rollback was interrupted half way; take its way out (`pgbluegreen status`, then `pgbluegreen run cutover --finish|--undo --yes`) before dropping the replication", what)
}

// slotExists reports whether a replication slot of that name exists.
func slotExists(ctx context.Context, pool *pgxpool.Pool, name string) (bool, error) {
	slots, err := pg.LogicalSlots(ctx, pool)
	if err != nil {
		return false, err
	}
	_, ok := pg.FindSlot(slots, name)
	return ok, nil
}

// logicalSlotsLeft lists the logical slots on one server: after cleanup none
// may stay on either side (a forgotten slot keeps WAL until the disk fills).
func logicalSlotsLeft(ctx context.Context, pool *pgxpool.Pool, db string) ([]string, error) {
	slots, err := pg.LogicalSlots(ctx, pool)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range slots {
		if s.Database == db { // another database's slots are its own cleanup's
			out = append(out, s.Name)
		}
	}
	return out, nil
}

// leftovers reads what drop-publications must leave behind: nothing. It
// returns one readable line per kind of object left, empty when clean.
func leftovers(ctx context.Context, e *Env) ([]string, map[string][]string, error) {
	var pubs []string
	for _, p := range e.Config.Publications {
		got, err := pg.ReadPublication(ctx, e.Blue, p.Name)
		if err != nil {
			return nil, nil, err
		}
		if got.Exists {
			pubs = append(pubs, p.Name)
		}
	}
	rev, err := pg.ReadPublication(ctx, e.Green, e.Config.ReverseName(e.DB))
	if err != nil {
		return nil, nil, err
	}
	slots := map[string][]string{}
	for side, pool := range map[string]*pgxpool.Pool{"blue": e.Blue, "green": e.Green} {
		if slots[side], err = logicalSlotsLeft(ctx, pool, e.database()); err != nil {
			return nil, nil, fmt.Errorf("on %s: %w", side, err)
		}
	}
	var out []string
	if len(pubs) > 0 {
		out = append(out, "publications on blue: "+strings.Join(pubs, ", "))
	}
	if rev.Exists {
		out = append(out, "reverse publication on green: "+e.Config.ReverseName(e.DB))
	}
	for _, side := range []string{"blue", "green"} {
		if len(slots[side]) > 0 {
			out = append(out, "logical slots on "+side+": "+strings.Join(slots[side], ", "))
		}
	}
	return out, slots, nil
}

func checkPublicationsGone(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBoth(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	left, _, err := leftovers(ctx, e)
	if err != nil {
		return CheckResult{}, err
	}
	if len(left) > 0 {
		return CheckResult{Detail: strings.Join(left, "; ")}, nil
	}
	return CheckResult{Done: true, Detail: "no publication of this run and no logical slot left on blue or green"}, nil
}

// dropPublicationsOp is what drop-publications does now: the
// configured publications on blue and the reverse one on green; live, only
// those that exist.
func dropPublicationsOp(ctx context.Context, e *Env) (blue, green pg.DropPublicationsParams, err error) {
	blue.On, green.On = "blue", "green"
	for _, p := range e.Config.Publications {
		if e.Blue != nil {
			got, err := pg.ReadPublication(ctx, e.Blue, p.Name)
			if err != nil {
				return blue, green, err
			}
			if !got.Exists {
				continue
			}
		}
		blue.Names = append(blue.Names, p.Name)
	}
	rev := e.Green == nil
	if e.Green != nil {
		got, err := pg.ReadPublication(ctx, e.Green, e.Config.ReverseName(e.DB))
		if err != nil {
			return blue, green, fmt.Errorf("on green: %w", err)
		}
		rev = got.Exists
	}
	if rev {
		green.Names = []string{e.Config.ReverseName(e.DB)}
	}
	return blue, green, nil
}

func planDropPublications(ctx context.Context, e *Env) ([]Action, error) {
	blue, green, err := dropPublicationsOp(ctx, e)
	if err != nil {
		return nil, err
	}
	out := append(stmts(blue.Statements()...), stmts(green.Statements()...)...)
	if len(out) == 0 {
		out = append(out, note(BlueGreen, "no publication of this run left: nothing to drop"))
	}
	return append(out, note(BlueGreen, "then no logical replication slot may be left on blue or green (pg_replication_slots): the step fails naming any, with the statement that drops it")), nil
}

// runDropPublications drops the publications on blue and the reverse one on
// green, then fails naming any logical slot still on either side.
func runDropPublications(ctx context.Context, e *Env) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	if err := e.refuseWhileCutoverUnfinished(ctx); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	blue, green, err := dropPublicationsOp(ctx, e)
	if err != nil {
		return err
	}
	if err := blue.Exec(ctx, e.Blue); err != nil {
		return err
	}
	if err := green.Exec(ctx, e.Green); err != nil {
		return fmt.Errorf("on green: %w", err)
	}
	_, slots, err := leftovers(ctx, e)
	if err != nil {
		return err
	}
	var left, drop []string
	for _, side := range []string{"blue", "green"} {
		for _, s := range slots[side] {
			left = append(left, s+" on "+side)
			drop = append(drop, "on "+side+" "+pg.DropSlotParams{On: side, Name: s}.Statements()[0].String())
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("logical slot(s) still there: %s; each holds WAL until its server's disk fills: run drop-subscriptions first, or if nothing uses them: %s",
			strings.Join(left, ", "), strings.Join(drop, "; "))
	}
	return nil
}

// checkIdentityReverted is done when none of the recorded tables still has
// REPLICA IDENTITY FULL on green.
func checkIdentityReverted(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needGreen(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	tables := parseRelList(e.V0("replica_identity_full_tables"))
	full, err := pg.TablesWithIdentityFull(ctx, e.Green, tables)
	if err != nil {
		return CheckResult{}, err
	}
	if len(full) > 0 {
		return CheckResult{Detail: "REPLICA IDENTITY FULL on green: " + relList(full)}, nil
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("replica identity back to DEFAULT on green for %d table(s)", len(tables))}, nil
}

// revertIdentityOp is what revert-replica-identity does now: REPLICA
// IDENTITY DEFAULT on green, the new primary, for the recorded tables that
// still have FULL there (offline: all the recorded ones). Blue is left as it
// is: it is being retired, and the rollback path (reverse replication)
// still wants FULL there.
func revertIdentityOp(ctx context.Context, e *Env) (pg.ReplicaIdentityParams, error) {
	op := pg.ReplicaIdentityParams{On: "green"}
	tables := parseRelList(e.V0("replica_identity_full_tables"))
	if e.Green == nil {
		op.Tables = tables
		if _, ok := e.Value("replica_identity_full_tables"); !ok {
			op.Tables = []pg.Rel{pg.PlaceholderRel("each table of replica_identity_full_tables")}
		}
		return op, nil
	}
	var err error
	op.Tables, err = pg.TablesWithIdentityFull(ctx, e.Green, tables)
	return op, err
}

func planRevertIdentity(ctx context.Context, e *Env) ([]Action, error) {
	op, err := revertIdentityOp(ctx, e)
	if err != nil {
		return nil, err
	}
	if len(op.Tables) == 0 {
		return []Action{note(Green, "no recorded table has REPLICA IDENTITY FULL on green: nothing to change")}, nil
	}
	return stmts(op.Statements()...), nil
}

func runRevertIdentity(ctx context.Context, e *Env) error {
	if err := e.needGreen(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	op, err := revertIdentityOp(ctx, e)
	if err != nil {
		return err
	}
	return op.Exec(ctx, e.Green)
}
