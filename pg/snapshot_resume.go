package pg

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A snapshot copy goes on where it stopped as long as its snapshot lives.
// The snapshot is the slot's, exported by the replication session that
// made it, and lives as long as that session sits idle: held by a process
// of its own (pgbluegreen hold-snapshot), it outlives the copying program
// killed half way. Each piece's COPY on green commits in one transaction
// with its record in CopiedTable; a rerun in the same snapshot copies only
// what no record covers. Without the snapshot (blue restarted, the holder
// gone) the pieces copied cannot be joined to new ones: the copy starts
// over from a new slot, and preflight says what that costs.

// CopiedTable records, on green, the pieces a snapshot copy has committed.
const CopiedTable = RecorderSchema + ".copied_pieces"

// CopiedRange is a piece committed on green: a table's heap pages from
// From to To (0: to its end); a table copied whole is 0 to 0.
type CopiedRange struct {
	Rel      Rel
	From, To int64
}

// copiedTableStmts create the table of records.
func copiedTableStmts() []Stmt {
	return []Stmt{
		{On: "green", SQL: "CREATE SCHEMA IF NOT EXISTS " + Ident(RecorderSchema)},
		{On: "green", SQL: "CREATE TABLE IF NOT EXISTS " + CopiedTable + " (publication text NOT NULL, snapshot text NOT NULL, table_schema text NOT NULL, table_name text NOT NULL, from_page bigint NOT NULL, to_page bigint NOT NULL)"},
	}
}

// recordStmt records piece c of publication pub in the COPY's transaction.
func recordStmt(pub, snapshot string, c Piece) Stmt {
	return Stmt{On: "green", SQL: "INSERT INTO " + CopiedTable + " VALUES ($1, $2, $3, $4, $5, $6)",
		Args: []any{pub, snapshot, c.Table.Rel.Schema, c.Table.Rel.Name, c.From, c.To}}
}

// forgetCopiedStmt removes publication pub's records: a new snapshot's
// copy starts from empty tables, and a finished copy needs them no more.
func forgetCopiedStmt(pub string) Stmt {
	return Stmt{On: "green", SQL: fmt.Sprintf("DO $pgbg$ BEGIN IF to_regclass(%s) IS NOT NULL THEN DELETE FROM %s WHERE publication = %s; END IF; END $pgbg$",
		Literal(CopiedTable), CopiedTable, Literal(pub))}
}

// CopiedRanges reads what a copy of publication pub in snapshot has
// committed on green (every snapshot's when snapshot is "").
func CopiedRanges(ctx context.Context, green *pgxpool.Pool, pub, snapshot string) ([]CopiedRange, error) {
	var there bool
	if err := green.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", CopiedTable).Scan(&there); err != nil {
		return nil, fmt.Errorf("read %s on green: %w", CopiedTable, err)
	}
	if !there {
		return nil, nil
	}
	rows, err := green.Query(ctx, "SELECT table_schema, table_name, from_page, to_page FROM "+CopiedTable+" WHERE publication = $1 AND ($2 = '' OR snapshot = $2) ORDER BY 1, 2, 3", pub, snapshot)
	if err != nil {
		return nil, fmt.Errorf("read %s on green: %w", CopiedTable, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CopiedRange, error) {
		var c CopiedRange
		err := r.Scan(&c.Rel.Schema, &c.Rel.Name, &c.From, &c.To)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s on green: %w", CopiedTable, err)
	}
	return out, nil
}

// forgetCopiedStmts remove the publication's records once every piece is
// in, and the table of records, and the program's schema, once nothing is
// left in them. Killed after, a copy run again in the same snapshot finds
// rows and no record: it empties the tables and copies them all again.
func (p SnapshotCopyParams) forgetCopiedStmts() []Stmt {
	return append([]Stmt{forgetCopiedStmt(p.Publication)}, forgetStmts(CopiedTable)...)
}

// gaps are the ranges of t's heap that done does not cover, in order,
// each with its share of t's bytes: all of t when done is empty, nothing
// when a record covers it to its end.
func gaps(t SnapshotTable, done []CopiedRange) []Piece {
	if len(done) == 0 {
		return []Piece{whole(t)}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].From < done[j].From })
	var out []Piece
	at := int64(0)
	for _, d := range done {
		if d.From > at {
			out = append(out, Piece{Table: t, From: at, To: d.From})
		}
		if d.To == 0 {
			at = -1 // copied to the end
			break
		}
		at = max(at, d.To)
	}
	if at >= 0 {
		out = append(out, Piece{Table: t, From: at})
	}
	for i, c := range out {
		out[i].Bytes = t.Bytes / int64(len(out))
		if t.Pages > 0 {
			to := c.To
			if to == 0 {
				to = max(t.Pages, c.From)
			}
			out[i].Bytes = t.Bytes * (to - c.From) / t.Pages
		}
	}
	return out
}

// HeldSnapshot is a slot just made and the snapshot it exported, held by
// its replication session (Conn) until that session closes or runs
// anything else.
type HeldSnapshot struct {
	Conn          *pgconn.PgConn
	LSN, Snapshot string
}

// HoldSnapshot makes slot on a replication session to blue (cfg: a
// connection's settings, replication=database is added) exporting its
// snapshot, and returns the session holding it.
func HoldSnapshot(ctx context.Context, cfg *pgconn.Config, slot string) (HeldSnapshot, error) {
	cfg = cfg.Copy()
	cfg.RuntimeParams["replication"] = "database"
	repl, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return HeldSnapshot{}, fmt.Errorf("open a replication connection to blue (its role needs REPLICATION): %w", err)
	}
	s := SnapshotCopyParams{Slot: slot}.SlotStmt()
	res, err := repl.Exec(ctx, s.SQL).ReadAll()
	if err == nil && (len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 3) {
		err = errors.New("unexpected answer")
	}
	if err != nil {
		repl.Close(context.WithoutCancel(ctx))
		return HeldSnapshot{}, fmt.Errorf("create slot %s: %w", slot, err)
	}
	return HeldSnapshot{Conn: repl, LSN: string(res[0].Rows[0][1]), Snapshot: string(res[0].Rows[0][2])}, nil
}

// DropSlotStmt drops the slot on the session that holds its snapshot: a
// replication command, the snapshot let go with it.
func (h HeldSnapshot) DropSlotStmt(slot string) Stmt {
	return Stmt{On: "blue", SQL: "DROP_REPLICATION_SLOT " + Ident(slot), Note: "on the replication session that made it"}
}

// DropSlot runs DropSlotStmt.
func (h HeldSnapshot) DropSlot(ctx context.Context, slot string) error {
	_, err := h.Conn.Exec(ctx, h.DropSlotStmt(slot).SQL).ReadAll()
	return err
}

// SnapshotLives says whether blue can still import snapshot: its holder
// still holds it. An error other than the snapshot's absence is returned.
func SnapshotLives(ctx context.Context, blue *pgxpool.Pool, snapshot string) (bool, error) {
	tx, err := blue.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	_, err = tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+QuoteLiteral(snapshot))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "22023" { // invalid_parameter_value: no such snapshot
		return false, nil
	}
	return err == nil, err
}
