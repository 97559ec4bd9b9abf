package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Cleanup: drop-subscriptions, drop-publications, revert-replica-identity.

func dropSubscriptions() *Step {
	return &Step{ID: "drop-subscriptions", Phase: PhaseCleanup, Target: BlueGreen, Title: "Drop subscriptions",
		Why:    "After this, a rollback is no longer possible: the reverse subscription on blue goes (with its slot on green, the primary now), then the subscriptions on green (with their slots on blue). A forgotten slot fills its server's disk with WAL. Refused while a cutover is paused or interrupted.",
		Source: "000", Destructive: true,
		Plan: offline(func(e *Env) []Action {
			rev := ident(reverseReplication)
			out := []Action{
				sql(Blue, "DROP SUBSCRIPTION IF EXISTS %s  -- the reverse feed; drops slot %s on green too", rev, quoteLiteral(reverseReplication)),
				note(Blue, "if blue cannot reach green: %s", strings.Join(pg.DropSubscriptionDetachedSQL(reverseReplication), "; ")),
				sql(Green, "SELECT pg_drop_replication_slot(%s)  -- only if it is still there", quoteLiteral(reverseReplication)),
			}
			for _, p := range e.Config.Publications {
				out = append(out, sql(Green, "DROP SUBSCRIPTION IF EXISTS %s  -- drops slot %s on blue too", ident(p.Name), quoteLiteral(slotName(p.Name))))
			}
			return out
		}),
		Check: checkSubscriptionsGone,
		Run:   runDropSubscriptions,
	}
}

func dropPublications() *Step {
	return &Step{ID: "drop-publications", Phase: PhaseCleanup, Target: BlueGreen, Title: "Drop publications",
		Why:    "The publications on blue and the reverse one on green go; then no logical slot may be left on blue or green. After this, a rollback is no longer possible.",
		Source: "000", Destructive: true,
		Plan: offline(func(e *Env) []Action {
			var out []Action
			for _, p := range e.Config.Publications {
				out = append(out, sql(Blue, "DROP PUBLICATION IF EXISTS %s", ident(p.Name)))
			}
			return append(out,
				sql(Green, "DROP PUBLICATION IF EXISTS %s", ident(reverseReplication)),
				sql(Blue, "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'  -- must be empty"),
				sql(Green, "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'  -- must be empty"))
		}),
		Check: checkPublicationsGone,
		Run:   runDropPublications,
	}
}

func revertReplicaIdentity() *Step {
	return &Step{ID: "revert-replica-identity", Phase: PhaseCleanup, Target: Green, Title: "Revert replica identity",
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
		s, err := pg.ReadSubscription(ctx, e.Green, p.Name)
		if err != nil {
			return CheckResult{}, err
		}
		if s.Exists {
			left = append(left, p.Name)
		}
	}
	rev, err := pg.ReadSubscription(ctx, e.Blue, reverseReplication)
	if err != nil {
		return CheckResult{}, err
	}
	revSlot, err := slotExists(ctx, e.Green, reverseReplication)
	if err != nil {
		return CheckResult{}, err
	}
	var detail []string
	if len(left) > 0 {
		detail = append(detail, "subscriptions on green: "+strings.Join(left, ", "))
	}
	if rev.Exists {
		detail = append(detail, "reverse subscription on blue: "+reverseReplication)
	}
	if revSlot {
		detail = append(detail, "reverse slot on green: "+reverseReplication)
	}
	if len(detail) > 0 {
		return CheckResult{Detail: strings.Join(detail, "; ")}, nil
	}
	return CheckResult{Done: true, Detail: "no subscription of this run left on green, and no reverse subscription on blue"}, nil
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
	if err := e.dropReverseSubscription(ctx); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	for _, p := range e.Config.Publications {
		e.Logf("DROP SUBSCRIPTION IF EXISTS %s  (drops slot %s on blue too)", ident(p.Name), slotName(p.Name))
		if _, err := pg.DropSubscriptionIfExists(ctx, e.Green, p.Name); err != nil {
			return fmt.Errorf("%w; if green cannot reach blue: on green %s; then on blue SELECT pg_drop_replication_slot(%s)",
				err, strings.Join(pg.DropSubscriptionDetachedSQL(p.Name), "; "), quoteLiteral(slotName(p.Name)))
		}
	}
	return nil
}

// dropReverseSubscription drops blue's reverse subscription, which drops its
// slot on green when blue reaches green. When it cannot, the documented path
// runs instead (DISABLE, slot_name = NONE, DROP) and the slot is dropped on
// green directly. Either way no reverse slot is left on green.
func (e *Env) dropReverseSubscription(ctx context.Context) error {
	rev := reverseReplication
	dctx, cancel := e.bounded(ctx)
	s, err := pg.ReadSubscription(dctx, e.Blue, rev)
	if err == nil && s.Exists {
		if _, _, inForce := cutoverState(e); inForce {
			e.Warnf("the cutover is in force: once blue's reverse subscription %s is dropped, a rollback is no longer possible", rev)
		}
		e.Logf("on blue: DROP SUBSCRIPTION IF EXISTS %s  (drops slot %s on green too)", ident(rev), rev)
		_, err = pg.DropSubscriptionIfExists(dctx, e.Blue, rev)
		if err != nil {
			// Usually blue cannot reach green: detach the slot instead.
			e.Warnf("%v; blue cannot drop the slot on green itself: detaching the subscription and dropping the slot on green directly", err)
			cancel()
			dctx, cancel = e.bounded(ctx)
			for _, stmt := range pg.DropSubscriptionDetachedSQL(rev) {
				e.Logf("on blue: %s", stmt)
			}
			_, err = pg.DropSubscriptionDetached(dctx, e.Blue, rev)
		}
	}
	cancel()
	if err != nil {
		return fmt.Errorf("drop the reverse subscription on blue: %w", err)
	}
	dctx, cancel = e.bounded(ctx)
	defer cancel()
	dropped, err := pg.DropSlotIfExists(dctx, e.Green, rev)
	if err != nil {
		return fmt.Errorf("drop the reverse slot on green: %w; on blue, SELECT subname FROM pg_subscription must not show %s, then on green SELECT pg_drop_replication_slot(%s)", err, rev, quoteLiteral(rev))
	}
	if dropped {
		e.Logf("on green: SELECT pg_drop_replication_slot(%s)", quoteLiteral(rev))
	}
	return nil
}

// refuseWhileCutoverUnfinished refuses while a cutover is stopped half way,
// in its pause or interrupted: PgBouncer paused, or blue's reverse feed on
// (or its slot made) while the cutover is not recorded and traffic did not
// move. Dropping replication then would leave writes with no way forward
// and no way back.
func (e *Env) refuseWhileCutoverUnfinished(ctx context.Context) error {
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	if e.Config.Cutover.Method == "pgbouncer" {
		for _, b := range e.Config.Cutover.PgBouncer {
			name := orPlaceholder(b.Name, b.Ini)
			c, err := pg.ConnectConsole(ctx, name, b.AdminConninfo, 0)
			if err != nil {
				e.Warnf("could not ask PgBouncer %s whether it is paused: %v", name, err)
				continue
			}
			d, err := c.Database(ctx, b.Database)
			c.Close()
			if err != nil {
				e.Warnf("could not ask PgBouncer %s whether it is paused: %v", name, err)
				continue
			}
			if d.Paused {
				return e.refuse("PgBouncer %s has %s paused: a cutover or rollback is in its pause; let it finish, or inspect and RESUME on the console, before dropping the replication", name, b.Database)
			}
		}
	}
	_, rolledAt, inForce := cutoverState(e)
	if inForce {
		return nil
	}
	rev, err := pg.ReadSubscription(ctx, e.Blue, reverseReplication)
	if err != nil {
		return err
	}
	if rev.Exists && rev.Enabled {
		if why := e.switchIncomplete(ctx); why != "" {
			return e.refuse("a cutover was interrupted: blue's reverse subscription %s is on but %s; finish the cutover or roll back before cleanup", reverseReplication, why)
		}
		return nil // the cutover went through; only its record was lost
	}
	if rev.Exists && rolledAt.IsZero() {
		slot, err := slotExists(ctx, e.Green, reverseReplication)
		if err != nil {
			return err
		}
		if slot {
			return e.refuse("a cutover stopped inside its pause: the reverse slot %s exists on green but blue's subscription is not enabled and no cutover is recorded; inspect PgBouncer (SHOW DATABASES, RESUME), then finish the cutover or roll back before cleanup", reverseReplication)
		}
	}
	return nil
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
func logicalSlotsLeft(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	slots, err := pg.LogicalSlots(ctx, pool)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range slots {
		out = append(out, s.Name)
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
	rev, err := pg.ReadPublication(ctx, e.Green, reverseReplication)
	if err != nil {
		return nil, nil, err
	}
	slots := map[string][]string{}
	for side, pool := range map[string]*pgxpool.Pool{"blue": e.Blue, "green": e.Green} {
		if slots[side], err = logicalSlotsLeft(ctx, pool); err != nil {
			return nil, nil, fmt.Errorf("on %s: %w", side, err)
		}
	}
	var out []string
	if len(pubs) > 0 {
		out = append(out, "publications on blue: "+strings.Join(pubs, ", "))
	}
	if rev.Exists {
		out = append(out, "reverse publication on green: "+reverseReplication)
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
	for _, p := range e.Config.Publications {
		e.Logf("on blue: DROP PUBLICATION IF EXISTS %s", ident(p.Name))
		if _, err := pg.DropPublicationIfExists(ctx, e.Blue, p.Name); err != nil {
			return err
		}
	}
	e.Logf("on green: DROP PUBLICATION IF EXISTS %s", ident(reverseReplication))
	if _, err := pg.DropPublicationIfExists(ctx, e.Green, reverseReplication); err != nil {
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
			drop = append(drop, "on "+side+" SELECT pg_drop_replication_slot("+quoteLiteral(s)+")")
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
	tables := parseRelList(e.Values["replica_identity_full_tables"])
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
	tables := parseRelList(e.Values["replica_identity_full_tables"])
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
