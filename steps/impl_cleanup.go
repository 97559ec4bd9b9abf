package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Cleanup: drop-subscriptions, drop-publications, revert-replica-identity.

func init() {
	implementations["drop-subscriptions"] = func(s *Step) {
		s.Check = checkSubscriptionsGone
		s.Run = runDropSubscriptions
	}
	implementations["drop-publications"] = func(s *Step) {
		s.Check = checkPublicationsGone
		s.Run = runDropPublications
	}
	implementations["revert-replica-identity"] = func(s *Step) {
		s.Check = checkIdentityReverted
		s.Run = runRevertIdentity
	}
}

func checkSubscriptionsGone(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needGreen(); err != nil {
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
	if len(left) > 0 {
		return CheckResult{Detail: "subscriptions on green: " + strings.Join(left, ", ")}, nil
	}
	return CheckResult{Done: true, Detail: "no subscription of this run left on green"}, nil
}

// runDropSubscriptions drops each subscription; keeping its slot_name, the
// drop also drops the slot on blue (so green must reach blue).
func runDropSubscriptions(ctx context.Context, e *Env) error {
	if err := e.needGreen(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	for _, p := range e.Config.Publications {
		e.Logf("DROP SUBSCRIPTION IF EXISTS %s  (drops slot %s on blue too)", ident(p.Name), slotName(p.Name))
		if _, err := pg.DropSubscriptionIfExists(ctx, e.Green, p.Name); err != nil {
			return fmt.Errorf("%w; if blue is unreachable: ALTER SUBSCRIPTION %s DISABLE; ALTER SUBSCRIPTION %s SET (slot_name = NONE); DROP SUBSCRIPTION %s; then drop the slot on blue by hand",
				err, ident(p.Name), ident(p.Name), ident(p.Name))
		}
	}
	return nil
}

// logicalSlotsLeft lists the logical slots on blue: after cleanup none of
// them may stay (a forgotten slot keeps WAL until blue's disk is full).
func logicalSlotsLeft(ctx context.Context, e *Env) ([]string, error) {
	slots, err := pg.LogicalSlots(ctx, e.Blue)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range slots {
		out = append(out, s.Name)
	}
	return out, nil
}

func checkPublicationsGone(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBlue(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	var left []string
	for _, p := range e.Config.Publications {
		got, err := pg.ReadPublication(ctx, e.Blue, p.Name)
		if err != nil {
			return CheckResult{}, err
		}
		if got.Exists {
			left = append(left, p.Name)
		}
	}
	slots, err := logicalSlotsLeft(ctx, e)
	if err != nil {
		return CheckResult{}, err
	}
	if len(left)+len(slots) > 0 {
		return CheckResult{Detail: strings.TrimSpace(listIf("publications on blue: ", left) + " " + listIf("logical slots on blue: ", slots))}, nil
	}
	return CheckResult{Done: true, Detail: "no publication of this run and no logical slot left on blue"}, nil
}

func runDropPublications(ctx context.Context, e *Env) error {
	if err := e.needBlue(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	for _, p := range e.Config.Publications {
		e.Logf("DROP PUBLICATION IF EXISTS %s", ident(p.Name))
		if _, err := pg.DropPublicationIfExists(ctx, e.Blue, p.Name); err != nil {
			return err
		}
	}
	slots, err := logicalSlotsLeft(ctx, e)
	if err != nil {
		return err
	}
	if len(slots) > 0 {
		var drop []string
		for _, s := range slots {
			drop = append(drop, "SELECT pg_drop_replication_slot("+quoteLiteral(s)+")")
		}
		return fmt.Errorf("logical slot(s) still on blue: %s; each holds WAL until blue's disk fills: run drop-subscriptions first, or if nothing uses them, on blue: %s",
			strings.Join(slots, ", "), strings.Join(drop, "; "))
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

// runRevertIdentity puts REPLICA IDENTITY DEFAULT back on green, the new
// primary, for the tables replica-identity-full changed. Blue is left as it
// is: it is being retired, and the rollback path (reverse replication)
// still wants FULL there.
func runRevertIdentity(ctx context.Context, e *Env) error {
	if err := e.needGreen(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	tables := parseRelList(e.Values["replica_identity_full_tables"])
	full, err := pg.TablesWithIdentityFull(ctx, e.Green, tables)
	if err != nil {
		return err
	}
	for _, t := range full {
		e.Logf("ALTER TABLE %s REPLICA IDENTITY DEFAULT", t)
	}
	gone, err := pg.SetReplicaIdentity(ctx, e.Green, full, false)
	for _, t := range gone {
		e.Warnf("table %s no longer exists on green: nothing to revert", t)
	}
	return err
}
