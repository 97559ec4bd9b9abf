package pg

import "strings"

// The statements that make, switch and remove replication objects (slots,
// publications, subscriptions), each built by one function here: the
// operations of the steps (create-slots, create-publications, cleanup, a
// clone's relics), the cutover's feeds and the AWS stand-in all call them,
// so each statement has one text wherever it is shown or run.

// CreateSlotStmt creates logical slot name for pgoutput and returns the LSN
// it starts at. It waits for the transactions running when it starts, so
// it runs on its own, never inside a transaction of the caller's.
func CreateSlotStmt(on, name string) Stmt {
	return Stmt{On: on, SQL: "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", Args: []any{name}}
}

// DropSlotStmt drops slot name. It fails while a walsender still uses the
// slot: DropSlotParams waits for that.
func DropSlotStmt(on, name string) Stmt {
	return Stmt{On: on, SQL: "SELECT pg_drop_replication_slot($1)", Args: []any{name}}
}

// CreatePublicationStmt creates publication p: FOR ALL TABLES, or FOR TABLE
// its tables.
func CreatePublicationStmt(on string, p PublicationSpec) Stmt {
	if p.AllTables {
		return Stmt{On: on, SQL: "CREATE PUBLICATION " + Ident(p.Name) + " FOR ALL TABLES"}
	}
	q := make([]string, len(p.Tables))
	for i, t := range p.Tables {
		q[i] = t.String()
	}
	return Stmt{On: on, SQL: "CREATE PUBLICATION " + Ident(p.Name) + " FOR TABLE " + strings.Join(q, ", ")}
}

// DropPublicationStmt drops publication name when it exists.
func DropPublicationStmt(on, name string) Stmt {
	return Stmt{On: on, SQL: "DROP PUBLICATION IF EXISTS " + Ident(name)}
}

// EnableSubscriptionStmt enables subscription name: its apply worker
// starts and streams from the slot's position (or the origin's, once set).
func EnableSubscriptionStmt(on, name string) Stmt {
	return Stmt{On: on, SQL: "ALTER SUBSCRIPTION " + Ident(name) + " ENABLE"}
}

// DisableSubscriptionStmt disables subscription name. Its apply worker
// notices on its next wake-up; the cutover ends it at once besides.
func DisableSubscriptionStmt(on, name string) Stmt {
	return Stmt{On: on, SQL: "ALTER SUBSCRIPTION " + Ident(name) + " DISABLE"}
}

// DetachSubscriptionStmt detaches disabled subscription name from its slot
// (slot_name = NONE), so that dropping it leaves the slot on the publisher
// alone: PostgreSQL's path where the publisher cannot be reached, or where
// the slot is dropped there separately.
func DetachSubscriptionStmt(on, name string) Stmt {
	return Stmt{On: on, SQL: "ALTER SUBSCRIPTION " + Ident(name) + " SET (slot_name = NONE)"}
}

// DropSubscriptionStmt drops subscription name; with ifExists, one that is
// not there is no error. A subscription still attached to its slot drops
// the slot on the publisher too, so it must reach it, and it cannot run in
// a transaction block.
func DropSubscriptionStmt(on, name string, ifExists bool) Stmt {
	if ifExists {
		return Stmt{On: on, SQL: "DROP SUBSCRIPTION IF EXISTS " + Ident(name)}
	}
	return Stmt{On: on, SQL: "DROP SUBSCRIPTION " + Ident(name)}
}
