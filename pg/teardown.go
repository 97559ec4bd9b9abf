package pg

import (
	"context"
	"fmt"
	"time"
)

// The operations that take replication down at cleanup: subscriptions,
// publications and slots dropped, each as statements a plan shows and Exec
// runs.

// DropSubscriptionParams drops one subscription. Plain, DROP SUBSCRIPTION
// also drops its slot on the publisher, so the subscriber must reach it.
// Detached is PostgreSQL's documented path for a publisher it cannot reach:
// DISABLE, slot_name = NONE, DROP; the slot then stays on the publisher and
// must be dropped there (DropSlotParams), or it keeps WAL until that
// server's disk fills.
type DropSubscriptionParams struct {
	// On is the subscriber: "green", or "blue" for the reverse feed.
	On       string
	Name     string
	Detached bool
}

// Statements are what Exec runs. DROP SUBSCRIPTION with a slot cannot run in
// a transaction block: each runs on its own.
func (p DropSubscriptionParams) Statements() []Stmt {
	if !p.Detached {
		return []Stmt{DropSubscriptionStmt(p.On, p.Name, true)}
	}
	return []Stmt{
		DisableSubscriptionStmt(p.On, p.Name),
		DetachSubscriptionStmt(p.On, p.Name),
		DropSubscriptionStmt(p.On, p.Name, false),
	}
}

// Exec runs the statements on db (autocommit), journaling each.
func (p DropSubscriptionParams) Exec(ctx context.Context, db Execer) error {
	if err := ExecAll(ctx, db, p.Statements()); err != nil {
		return fmt.Errorf("drop subscription %s: %w", p.Name, err)
	}
	return nil
}

// DropPublicationsParams drops publications on one server.
type DropPublicationsParams struct {
	// On is the server: "blue", or "green" for the reverse publication.
	On    string
	Names []string
}

// Statements are what Exec runs: DROP PUBLICATION IF EXISTS each.
func (p DropPublicationsParams) Statements() []Stmt {
	return eachStmt(p.On, p.Names, DropPublicationStmt)
}

// Exec runs the statements on db in order, journaling each.
func (p DropPublicationsParams) Exec(ctx context.Context, db Execer) error {
	return ExecAll(ctx, db, p.Statements())
}

// DropSlotParams drops one replication slot.
type DropSlotParams struct {
	// On is the server holding the slot.
	On   string
	Name string
}

// Statements are what Exec runs: pg_drop_replication_slot.
func (p DropSlotParams) Statements() []Stmt {
	return []Stmt{DropSlotStmt(p.On, p.Name)}
}

// slotStateQuery says whether a slot exists and is in use. Columns: exists, active.
const slotStateQuery = `SELECT count(*) > 0, coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = $1`

// Exec drops the slot when it exists and reports whether it did. A slot
// still active (its walsender going away after the subscriber stopped) is
// waited for until ctx ends; only the drop itself is journaled. db is a
// pool, or one connection of it (the cutover's).
func (p DropSlotParams) Exec(ctx context.Context, db interface {
	Execer
	RowQuerier
}) (bool, error) {
	for {
		var exists, active bool
		if err := db.QueryRow(ctx, slotStateQuery, p.Name).Scan(&exists, &active); err != nil {
			return false, fmt.Errorf("look for slot %s: %w", p.Name, err)
		}
		if !exists {
			return false, nil
		}
		if !active {
			if err := p.Statements()[0].Exec(ctx, db); err == nil {
				return true, nil
			}
			// Taken again (or dropped) between the look and the drop: look again.
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("drop slot %s: still in use (a subscriber is still streaming from it: stop it first): %w", p.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
