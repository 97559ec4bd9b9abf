package pg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A publication's initial copy made by pgbluegreen, as pgcopydb makes it,
// instead of PostgreSQL's table sync: the publication's slot is created on
// a replication connection that exports the slot's snapshot; a few
// sessions on blue import that snapshot and copy every table of the
// publication into green, largest first; the subscription is then created
// on the slot with copy_data = false, and streams from exactly the
// position the snapshot shows. One slot, one snapshot and a few sessions
// for any number of tables, where the table sync starts a worker on green,
// a walsender on blue, a slot and a snapshot for each table (measured on
// the lab: 476 small tables took 44 s of both cores that way).

// SnapshotTable is one table of a snapshot copy.
type SnapshotTable struct {
	Rel Rel
	// Columns are the published columns blue has and green can take (no
	// generated columns), in blue's order.
	Columns []string
	// Filter is the publication's row filter for the table (PG15+), "" when none.
	Filter string
	// Partitioned is a partitioned table published through its root: it is
	// read through a SELECT, and green routes the rows to its partitions.
	Partitioned bool
	// Bytes is its size on blue (its partitions' for a partitioned table).
	Bytes int64
	// Binary: every column copied is of a type built into PostgreSQL,
	// whose binary form every version reads as every other writes it; the
	// COPY goes in binary, which neither side has to print or parse.
	Binary bool
	// Pages is its heap's length in pages on blue, read where blue scans a
	// range of a heap without reading the rest (TID range scans, PG14):
	// such a table is split (Pieces). 0: copied in one piece.
	Pages int64
}

// snapshotTablesSQL lists a publication's tables on blue, largest first.
// The %s slots take what the server's version has: generated columns
// (PG12), partition trees (PG12; a publication holds a partitioned table
// from PG13), a publication's column list and row filter (PG15), a
// heap's pages where a range of them can be scanned alone (PG14).
// Columns: schema, table, partitioned, columns, filter, bytes, pages,
// binary (no column of a type made in the database: 16384 is
// FirstNormalObjectId).
const snapshotTablesSQL = `
SELECT t.schemaname::text, t.tablename::text, c.relkind = 'p',
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped %s %s
             ORDER BY a.attnum),
       %s,
       CASE WHEN c.relkind = 'p' THEN %s
            ELSE pg_table_size(c.oid) END::bigint,
       %s,
       NOT EXISTS (SELECT 1 FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid >= 16384)
FROM pg_publication_tables t
JOIN pg_namespace n ON n.nspname = t.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename
WHERE t.pubname = $1
ORDER BY 6 DESC, 1, 2`

// SnapshotTables reads, on blue, the tables publication pub copies, largest first.
func SnapshotTables(ctx context.Context, pool *pgxpool.Pool, pub string) ([]SnapshotTable, error) {
	var num int
	if err := pool.QueryRow(ctx, serverVersionNumQuery).Scan(&num); err != nil {
		return nil, fmt.Errorf("read blue's version: %w", err)
	}
	gen, cols, filter, partSize := "", "", "''::text", "0"
	if num >= 120000 {
		gen, partSize = "AND a.attgenerated = ''", "(SELECT coalesce(sum(pg_table_size(p.relid)), 0) FROM pg_partition_tree(c.oid) p)"
	}
	pages := "0::bigint"
	if num >= 140000 {
		pages = "CASE WHEN c.relkind = 'r' THEN pg_relation_size(c.oid) / current_setting('block_size')::bigint ELSE 0 END"
	}
	if num >= 150000 {
		cols, filter = "AND (t.attnames IS NULL OR a.attname = ANY (t.attnames))", "coalesce(t.rowfilter, '')"
	}
	rows, err := pool.Query(ctx, fmt.Sprintf(snapshotTablesSQL, gen, cols, filter, partSize, pages), pub)
	if err != nil {
		return nil, fmt.Errorf("list the tables of publication %s on blue: %w", pub, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SnapshotTable, error) {
		var t SnapshotTable
		err := r.Scan(&t.Rel.Schema, &t.Rel.Name, &t.Partitioned, &t.Columns, &t.Filter, &t.Bytes, &t.Pages, &t.Binary)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the tables of publication %s on blue: %w", pub, err)
	}
	return out, nil
}

// NonEmptyTables returns the tables of ts that hold a row on green: the
// copy goes into empty tables only.
func NonEmptyTables(ctx context.Context, pool *pgxpool.Pool, ts []SnapshotTable) ([]Rel, error) {
	var out []Rel
	for _, t := range ts {
		var has bool
		if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t.Rel.String()+")").Scan(&has); err != nil {
			return nil, fmt.Errorf("look for rows in %s on green: %w", t.Rel, err)
		}
		if has {
			out = append(out, t.Rel)
		}
	}
	return out, nil
}

// MissingOnGreen names, up to 5, the tables of ts green lacks and the
// columns its tables lack: found before any slot is made, not half way
// through the copy.
func MissingOnGreen(ctx context.Context, pool *pgxpool.Pool, ts []SnapshotTable) ([]string, error) {
	var out []string
	for _, t := range ts {
		var missing []string
		err := pool.QueryRow(ctx, `
SELECT CASE WHEN to_regclass($1) IS NULL THEN ARRAY['']
       ELSE ARRAY(SELECT c FROM unnest($2::text[]) c
                  WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                                    WHERE a.attrelid = to_regclass($1) AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped)) END`,
			t.Rel.String(), t.Columns).Scan(&missing)
		if err != nil {
			return nil, fmt.Errorf("look for %s on green: %w", t.Rel, err)
		}
		switch {
		case len(missing) == 1 && missing[0] == "":
			out = append(out, "table "+t.Rel.String())
		case len(missing) > 0:
			out = append(out, fmt.Sprintf("column %s of %s", strings.Join(missing, ", "), t.Rel))
		}
		if len(out) == 5 {
			break
		}
	}
	return out, nil
}

// columnList is "(a, b)" for the table's columns.
func (t SnapshotTable) columnList() string {
	q := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		q[i] = Ident(c)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// CopyOut is the COPY that reads the table on blue, in the snapshot: the
// table's own form, or a SELECT for a partitioned table or a row filter,
// as the table sync reads it.
func (t SnapshotTable) CopyOut() Stmt {
	return whole(t).CopyOut()
}

// DefaultPieceBytes is the size of the pieces a large table is split
// into (SnapshotCopyParams.PieceBytes): a table of at least twice this is
// copied a range of its heap at a time, the ranges shared among the
// sessions like tables, so that one big table keeps every session busy
// instead of one. Every range is read in the one snapshot, so the pieces
// together are the table as the slot's consistent point shows it.
const DefaultPieceBytes = 64 << 20

// Piece is a table, or one range of its heap's pages, copied by one COPY.
type Piece struct {
	Table SnapshotTable
	// K is which piece of Of (from 1); Of is 1 for a table copied whole.
	K, Of int
	// From and To are the range of heap pages it reads: every tuple whose
	// ctid is at or past page From and before page To; the last piece has
	// no To (0), so a page added since the pages were counted is read too.
	From, To int64
	// Bytes is its share of the table's size on blue.
	Bytes int64
}

// whole is table t copied in one piece.
func whole(t SnapshotTable) Piece { return Piece{Table: t, K: 1, Of: 1, Bytes: t.Bytes} }

// Name is the table, with the piece when it is one of several
// (public.big [3/10]) or the rest of one a stopped copy began
// (public.big [pages 243-]).
func (c Piece) Name() string {
	switch {
	case c.Of > 1:
		return fmt.Sprintf("%s [%d/%d]", c.Table.Rel, c.K, c.Of)
	case c.ranged():
		return fmt.Sprintf("%s [pages %d-]", c.Table.Rel, c.From)
	}
	return c.Table.Rel.String()
}

// ranged: the piece is a range of its table's heap, not all of it.
func (c Piece) ranged() bool { return c.From > 0 || c.To > 0 }

// CopyOut reads the piece on blue, in the snapshot: the whole table in
// its own form, or a SELECT of its range (a TID range scan), its row
// filter, or its partitions.
func (c Piece) CopyOut() Stmt {
	t := c.Table
	var where []string
	if c.ranged() {
		where = append(where, fmt.Sprintf("ctid >= '(%d,0)'::tid", c.From))
		if c.To > 0 {
			where = append(where, fmt.Sprintf("ctid < '(%d,0)'::tid", c.To))
		}
	}
	if t.Filter != "" {
		where = append(where, "("+t.Filter+")")
	}
	if !t.Partitioned && len(where) == 0 {
		return Stmt{On: "blue", SQL: "COPY " + t.Rel.String() + " " + t.columnList() + " TO STDOUT" + t.format()}
	}
	sel := "SELECT " + strings.Trim(t.columnList(), "()") + " FROM " + t.Rel.String()
	if len(where) > 0 {
		sel += " WHERE " + strings.Join(where, " AND ")
	}
	return Stmt{On: "blue", SQL: "COPY (" + sel + ") TO STDOUT" + t.format()}
}

// format is the COPY's options: binary where every column's type allows.
func (t SnapshotTable) format() string {
	if t.Binary {
		return " (FORMAT binary)"
	}
	return ""
}

// Pieces splits the tables for the sessions, in the order they are
// copied: largest table first, a table's pieces one after another. A
// table is split when it is at least twice PieceBytes, more than one
// session copies (Jobs), and blue can read a range of its heap alone
// (Pages > 0): into ranges of equal pages, about PieceBytes each, at most
// 4 per session. Of a table an earlier copy in the same snapshot began
// (Done), only the ranges it did not commit are left, split the same way.
func (p SnapshotCopyParams) Pieces() []Piece {
	done := map[Rel][]CopiedRange{}
	for _, d := range p.Done {
		done[d.Rel] = append(done[d.Rel], d)
	}
	var out []Piece
	for _, t := range p.Tables {
		var pieces []Piece
		for _, r := range gaps(t, done[t.Rel]) {
			pieces = append(pieces, p.split(r)...)
		}
		for i := range pieces {
			pieces[i].K, pieces[i].Of = i+1, len(pieces)
		}
		out = append(out, pieces...)
	}
	return out
}

// split cuts range r of a table into ranges of equal pages for the
// sessions, when it is large enough (Pieces); its last range ends where r
// ends, so an open end stays open.
func (p SnapshotCopyParams) split(r Piece) []Piece {
	size := p.PieceBytes
	if size <= 0 {
		size = DefaultPieceBytes
	}
	t := r.Table
	end := r.To
	if end == 0 {
		end = t.Pages
	}
	span := end - r.From
	if p.Jobs <= 1 || t.Pages <= 0 || t.Partitioned || r.Bytes < 2*size || span < 2 {
		return []Piece{r}
	}
	n := min((r.Bytes+size-1)/size, int64(4*p.Jobs), span)
	out := make([]Piece, n)
	for k := range n {
		out[k] = Piece{Table: t, From: r.From + k*span/n, To: r.From + (k+1)*span/n, Bytes: r.Bytes / n}
	}
	out[n-1].To = r.To
	out[n-1].Bytes = r.Bytes - (n-1)*(r.Bytes/n) // the pieces' bytes add up to the range's
	return out
}

// CopyIn is the COPY that writes it on green.
func (t SnapshotTable) CopyIn() Stmt {
	return Stmt{On: "green", SQL: "COPY " + t.Rel.String() + " " + t.columnList() + " FROM STDIN" + t.format()}
}

// SnapshotCopyProgress is how far a snapshot copy is.
type SnapshotCopyProgress struct {
	TablesDone, TablesTotal int
	// BytesDone is the size on blue of the tables done, of BytesTotal.
	BytesDone, BytesTotal int64
	// InFlight are the tables being copied now, with the COPY text
	// streamed for each so far.
	InFlight []TableStream
	// IndexesDone of IndexesTotal are built again after the data.
	IndexesDone, IndexesTotal int
}

// TableStream is a table, or a piece of one, in flight and the COPY text
// streamed for it.
type TableStream struct {
	Rel Rel
	// Piece names it: the table, or the table and which piece (Piece.Name).
	Piece    string
	Streamed int64
}

// SnapshotCopyParams copy one publication's tables in its slot's snapshot.
type SnapshotCopyParams struct {
	Publication, Slot string
	// Tables are what it copies, largest first (SnapshotTables).
	Tables []SnapshotTable
	// TablesUnknown: a plan made offline, which shows each table's COPY
	// as a placeholder.
	TablesUnknown bool
	// Jobs is how many sessions copy at once on each side.
	Jobs int
	// PieceBytes is the size of a large table's pieces (Pieces); 0 is
	// DefaultPieceBytes.
	PieceBytes int64
	// Deferred are green's indexes built after the data
	// (DeferrableIndexes): dropped, and recorded, before the slot is made.
	Deferred []DeferredIndex
	// Note is told what the copy did otherwise than planned (indexes it
	// could not drop, so kept).
	Note func(string)
	// Truncate empties every table of the publication on green first: what
	// an earlier copy of it left there.
	Truncate bool
	// OnSlot is told the slot's position (its consistent point) as soon as
	// the slot exists, before any table is copied.
	OnSlot func(lsn string)
	// Progress is told after each table, and every second while tables copy.
	Progress func(SnapshotCopyProgress)
	// AfterTable, when set, runs after each table's data commits on green,
	// before its deferred indexes are built (a test hook holds the copy
	// there).
	AfterTable func(ctx context.Context, table Rel)
	// Snapshot and SlotLSN, when set, are a slot made already and the
	// snapshot it exported, held by another session (HoldSnapshot): the
	// copy imports it and makes no slot. Done are the pieces an earlier
	// copy in that snapshot committed: not copied again.
	Snapshot, SlotLSN string
	Done              []CopiedRange
	// Keep: on an error, the slot, the rows and their records stay, for a
	// copy in the same snapshot to go on from (its holder keeps it).
	Keep bool
}

// Sessions is how many sessions it opens on each side: Jobs, or fewer
// when there are fewer pieces to copy.
func (p SnapshotCopyParams) Sessions() int {
	if p.TablesUnknown {
		return max(1, p.Jobs)
	}
	return max(1, min(p.Jobs, len(p.Pieces())))
}

// SlotStmt creates the slot and exports its snapshot.
func (p SnapshotCopyParams) SlotStmt() Stmt {
	return Stmt{On: "blue", SQL: "CREATE_REPLICATION_SLOT " + Ident(p.Slot) + " LOGICAL pgoutput EXPORT_SNAPSHOT",
		Note: "on a replication connection (replication=database), held until every session below has imported the snapshot"}
}

// truncateStmt empties every table of the publication on green in one
// statement, so a foreign key between two of them does not stop it (ONLY:
// never a table outside the publication; a partitioned table with its
// partitions).
func (p SnapshotCopyParams) truncateStmt() Stmt {
	tables := p.Tables
	if p.TablesUnknown {
		tables = []SnapshotTable{{Rel: Rel{Name: Placeholder("each table of " + p.Publication)}}}
	}
	q := make([]string, len(tables))
	for i, t := range tables {
		q[i] = "ONLY " + t.Rel.String()
		if t.Partitioned {
			q[i] = t.Rel.String()
		}
	}
	return truncateListStmt("green", q)
}

// TruncateStmt empties tables in one statement, so a foreign key between
// two of them does not stop it: what a refusal tells the operator to run
// on tables pgbluegreen may not empty itself.
func TruncateStmt(on string, tables []Rel) Stmt {
	q := make([]string, len(tables))
	for i, t := range tables {
		q[i] = t.String()
	}
	return truncateListStmt(on, q)
}

// truncateListStmt is TRUNCATE of targets (each a table's name, ONLY or not).
func truncateListStmt(on string, targets []string) Stmt {
	return Stmt{On: on, SQL: "TRUNCATE " + strings.Join(targets, ", ")}
}

// importStmts open a blue session's transaction in the exported snapshot.
// No timeout of the role's or the server's may end a long COPY, or a
// session whose tables are done while the others copy.
func importStmts(snapshot string) []Stmt {
	return []Stmt{
		{On: "blue", SQL: "SET statement_timeout = 0"},
		{On: "blue", SQL: "SET idle_in_transaction_session_timeout = 0"},
		{On: "blue", SQL: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"},
		{On: "blue", SQL: "SET TRANSACTION SNAPSHOT " + snapshotLiteral(snapshot)},
	}
}

// snapshotLiteral quotes an exported snapshot's name; a plan's placeholder
// renders as it is.
func snapshotLiteral(s string) string {
	if strings.HasPrefix(s, "<") {
		return s
	}
	return QuoteLiteral(s)
}

// CopyAppName is the application_name of a snapshot copy's sessions on
// green (at most 63 bytes, as the server keeps it): how a reading of the
// servers alone (lag, the gauge) finds a copy in progress and its
// publication.
func CopyAppName(pub string) string {
	n := "pgbluegreen copy-data " + pub
	if len(n) > 63 {
		n = n[:63]
	}
	return n
}

// replicaRoleStmt makes a green session write as the apply worker does:
// no triggers, no foreign-key checks (the rows are blue's, already checked).
var replicaRoleStmt = Stmt{On: "green", SQL: "SET session_replication_role = replica"}

// greenSessionStmts set up a green session: named for the progress
// readings, no statement timeout, and the apply worker's role.
func (p SnapshotCopyParams) greenSessionStmts() []Stmt {
	return []Stmt{
		{On: "green", SQL: "SELECT set_config('application_name', $1, false)", Args: []any{CopyAppName(p.Publication)}},
		{On: "green", SQL: "SET statement_timeout = 0"},
		replicaRoleStmt,
	}
}

// Statements are what Exec runs, in order; the session statements run on
// each of the Jobs sessions, the COPY pairs on whichever is free.
func (p SnapshotCopyParams) Statements() []Stmt {
	each := fmt.Sprintf("on each of %d sessions", p.Sessions())
	var out []Stmt
	for _, s := range p.greenSessionStmts() {
		out = append(out, s.With(each))
	}
	out = append(out, copiedTableStmts()...)
	if p.Truncate {
		out = append(out, p.truncateStmt().With("what an earlier copy of this publication left on green"), forgetCopiedStmt(p.Publication))
	}
	if p.TablesUnknown {
		out = append(out, Stmt{On: "green", SQL: "DROP INDEX " + Placeholder("each index of a table of "+Bytes(DefaultDeferAbove)+" or more on blue"),
			Note: "or ALTER TABLE ... DROP CONSTRAINT for a primary key or unique constraint; recorded in " + DeferredTable + " in the same transaction, built again after the data"})
	}
	for _, s := range deferStmts(p.Publication, p.Deferred) {
		out = append(out, s.With("built again after the data; recorded so that a copy stopped half way builds them when run again"))
	}
	snapshot := Placeholder("the snapshot the slot exported")
	if p.Snapshot != "" {
		snapshot = p.Snapshot
	}
	if p.Snapshot == "" || p.SlotLSN == "" {
		out = append(out, p.SlotStmt())
	}
	for _, s := range importStmts(snapshot) {
		out = append(out, s.With(each))
	}
	tables := p.Tables
	if p.TablesUnknown {
		tables = []SnapshotTable{{Rel: Rel{Name: Placeholder("each table of " + p.Publication + ", largest first")}, Columns: []string{Placeholder("its columns")}}}
	}
	if p.TablesUnknown {
		for _, t := range tables {
			c := whole(t)
			out = append(out, t.CopyOut().With("into the COPY below; a table of "+Bytes(2*DefaultPieceBytes)+" or more in ranges of its heap, on every session; FORMAT binary where every column's type is built in"))
			out = append(out, p.pieceIn(c, snapshot)...)
		}
	}
	for _, c := range p.Pieces() {
		note := Bytes(c.Bytes) + ", into the COPY below"
		if c.Of > 1 {
			note = fmt.Sprintf("piece %d of %d, about %s, into the COPY below", c.K, c.Of, Bytes(c.Bytes))
		}
		out = append(out, c.CopyOut().With(note))
		out = append(out, p.pieceIn(c, snapshot)...)
	}
	const building = "once its table's last piece is in, on the session that copied it, while the others copy on"
	if p.TablesUnknown {
		out = append(out, Stmt{On: "green", SQL: "CREATE INDEX " + Placeholder("each index dropped above, as it was"), Note: building + "; its record removed with it"})
	}
	for _, d := range p.Deferred {
		for _, tx := range buildStmts(p.Publication, d) {
			for _, s := range tx {
				out = append(out, s.With(building))
			}
		}
	}
	out = append(out, Stmt{On: "blue", SQL: "COMMIT", Note: each})
	if len(p.Deferred) > 0 {
		out = append(out, forgetStmts(DeferredTable)...)
	}
	return append(out, p.forgetCopiedStmts()...)
}

// pieceIn writes piece c on green in one transaction with its record.
func (p SnapshotCopyParams) pieceIn(c Piece, snapshot string) []Stmt {
	return InTx("green", []Stmt{c.Table.CopyIn(), recordStmt(p.Publication, snapshot, c)})
}

// Exec opens Jobs sessions on green, empties the publication's tables
// there when asked, creates the slot exporting its snapshot, opens Jobs
// sessions on blue in that snapshot, and copies the tables, largest
// first, each COPY committing on its own. It returns the slot's consistent
// point: the subscription streams from there, and the copy holds exactly
// what blue had committed before it. On an error the slot is dropped
// again (nothing will consume it) and green's tables emptied (the next
// run starts clean); what of that fails is added to the error, with what
// to run. A killed process leaves both; the next run finds the slot and
// does it.
func (p SnapshotCopyParams) Exec(ctx context.Context, blue, green *pgxpool.Pool) (lsn string, err error) {
	greens, err := acquireSessions(ctx, green, p.Sessions(), func(c *pgx.Conn) error { return ExecAll(ctx, c, p.greenSessionStmts()) })
	defer closeSessions(greens)
	if err != nil {
		if IsInsufficientPrivilege(err) {
			return "", fmt.Errorf("%s on green needs a superuser (rds_superuser on RDS), as the table sync's workers do: %w", replicaRoleStmt.SQL, err)
		}
		return "", fmt.Errorf("open %d sessions on green (sync.copy_jobs): %w", p.Sessions(), err)
	}
	if err := ExecAll(ctx, greens[0], copiedTableStmts()); err != nil {
		return "", fmt.Errorf("make %s on green: %w", CopiedTable, err)
	}
	if p.Truncate {
		if err := ExecAll(ctx, greens[0], []Stmt{p.truncateStmt(), forgetCopiedStmt(p.Publication)}); err != nil {
			return "", fmt.Errorf("empty the tables an earlier copy left on green: %w", err)
		}
	}
	if s := deferStmts(p.Publication, p.Deferred); s != nil {
		if err := ExecTx(ctx, greens[0], s); err != nil {
			// A view that needs a primary key, say: the indexes stay, and
			// the copy keeps them up to date as it goes.
			var kept []DeferredIndex
			for _, d := range p.Deferred {
				if d.Recorded {
					kept = append(kept, d)
				}
			}
			p.Deferred = kept
			if p.Note != nil {
				p.Note(fmt.Sprintf("the indexes of the largest tables stay during the copy (dropping them failed: %v)", err))
			}
		}
	}
	lsn, snapshot := p.SlotLSN, p.Snapshot
	var repl *pgconn.PgConn
	if snapshot == "" {
		slot := p.SlotStmt()
		start := time.Now()
		held, err := HoldSnapshot(ctx, &blue.Config().ConnConfig.Config, p.Slot)
		slot.report(ctx, start, err)
		if err != nil {
			return "", err
		}
		repl, lsn, snapshot = held.Conn, held.LSN, held.Snapshot
		defer repl.Close(context.WithoutCancel(ctx))
	}
	defer func() {
		if err != nil && !p.Keep {
			err = p.Undo(ctx, blue, green, err)
		}
	}()
	if p.OnSlot != nil {
		p.OnSlot(lsn)
	}
	blues, err := acquireSessions(ctx, blue, p.Sessions(), func(c *pgx.Conn) error { return ExecAll(ctx, c, importStmts(snapshot)) })
	defer closeSessions(blues)
	if err != nil {
		return "", fmt.Errorf("import the slot's snapshot in %d sessions on blue (sync.copy_jobs): %w", p.Sessions(), err)
	}
	if repl != nil {
		// Every session holds the snapshot now: the replication connection may go.
		repl.Close(ctx)
	}
	if err := p.copyAll(ctx, blues, greens, snapshot); err != nil {
		return "", err
	}
	commit := Stmt{On: "blue", SQL: "COMMIT"}
	for _, c := range blues {
		if err := commit.Exec(ctx, c); err != nil {
			return "", err
		}
	}
	if len(p.Deferred) > 0 {
		// Recorded by an earlier copy for a table this one did not copy
		// (the publication changed since, or the earlier copy finished
		// the table in this snapshot): built now all the same.
		copied := map[Rel]bool{}
		for _, c := range p.Pieces() {
			copied[c.Table.Rel] = true
		}
		var rest []DeferredIndex
		for _, d := range p.Deferred {
			if !copied[d.Table] {
				rest = append(rest, d)
			}
		}
		if err := buildDeferred(ctx, p.Publication, rest, greens); err != nil {
			return "", err
		}
		if err := ExecAll(ctx, greens[0], forgetStmts(DeferredTable)); err != nil {
			return "", err
		}
	}
	if err := ExecAll(ctx, greens[0], p.forgetCopiedStmts()); err != nil {
		return "", err
	}
	return lsn, nil
}

// Undo, after a copy failed, drops its slot and empties green's tables,
// and says in the error what it could not do and what to run instead.
func (p SnapshotCopyParams) Undo(ctx context.Context, blue, green *pgxpool.Pool, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	drop := DropSlotParams{On: "blue", Name: p.Slot}
	if _, err := drop.Exec(ctx, blue); err != nil {
		cause = fmt.Errorf("%w; and slot %s could not be dropped (%v): it holds blue's WAL until copy-data runs again, or run %s on blue", cause, p.Slot, err, drop.Statements()[0])
	}
	if len(p.Tables) == 0 {
		return cause
	}
	if err := p.truncateStmt().Exec(ctx, green); err != nil {
		return fmt.Errorf("%w; and green's tables could not be emptied (%v): copy-data refuses to copy into them until %s runs on green", cause, err, p.truncateStmt())
	}
	if err := ExecAll(ctx, green, p.forgetCopiedStmts()); err != nil {
		return fmt.Errorf("%w; and the records of the pieces copied could not be removed from green (%v): copy-data removes them when run again", cause, err)
	}
	// The tables are empty: what was deferred builds in no time.
	left, err := recordedIndexes(ctx, green, p.Publication)
	if err == nil && len(left) > 0 {
		var c *pgxpool.Conn
		if c, err = green.Acquire(ctx); err == nil {
			if err = buildDeferred(ctx, p.Publication, left, []*pgx.Conn{c.Conn()}); err == nil {
				err = ExecAll(ctx, c.Conn(), forgetStmts(DeferredTable))
			}
			c.Release()
		}
	}
	if err != nil {
		cause = fmt.Errorf("%w; and the indexes it dropped on green could not be built again (%v): copy-data builds them when run again", cause, err)
	}
	return cause
}

// copyAll runs the COPY pairs on the sessions, each taking the next piece
// (largest table first, a split table's pieces together); the first error
// stops the others. A table is done when its last piece is.
func (p SnapshotCopyParams) copyAll(ctx context.Context, blues, greens []*pgx.Conn, snapshot string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pieces := p.Pieces()
	next := make(chan Piece, len(pieces))
	left := map[Rel]int{}
	var pr SnapshotCopyProgress
	for _, c := range pieces {
		next <- c
		if left[c.Table.Rel]++; left[c.Table.Rel] == 1 {
			pr.TablesTotal++
		}
		pr.BytesTotal += c.Bytes
	}
	close(next)
	builds := map[Rel][]DeferredIndex{}
	for _, d := range p.Deferred {
		builds[d.Table] = append(builds[d.Table], d)
		pr.IndexesTotal++
	}
	var mu sync.Mutex
	type inFlight struct {
		rel      Rel
		streamed atomic.Int64
	}
	flight := map[string]*inFlight{}
	tell := func() { // under mu
		if p.Progress == nil {
			return
		}
		pr.InFlight = pr.InFlight[:0]
		for name, f := range flight {
			pr.InFlight = append(pr.InFlight, TableStream{Rel: f.rel, Piece: name, Streamed: f.streamed.Load()})
		}
		sort.Slice(pr.InFlight, func(i, j int) bool { return pr.InFlight[i].Streamed > pr.InFlight[j].Streamed })
		p.Progress(pr)
	}
	begin := func(c Piece) *atomic.Int64 {
		mu.Lock()
		defer mu.Unlock()
		f := &inFlight{rel: c.Table.Rel}
		flight[c.Name()] = f
		return &f.streamed
	}
	end := func(c Piece) (tableDone bool) {
		mu.Lock()
		defer mu.Unlock()
		delete(flight, c.Name())
		pr.BytesDone += c.Bytes
		if left[c.Table.Rel]--; left[c.Table.Rel] == 0 {
			pr.TablesDone++
			tableDone = true
		}
		tell()
		return tableDone
	}
	ticking := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ticking:
				return
			case <-t.C:
				mu.Lock()
				tell()
				mu.Unlock()
			}
		}
	}()
	defer close(ticking)
	var wg sync.WaitGroup
	for i := range blues {
		wg.Add(1)
		go func(b, g *pgx.Conn) {
			defer wg.Done()
			for c := range next {
				if ctx.Err() != nil {
					return
				}
				if _, err := copyPiece(ctx, b.PgConn(), g, c, recordStmt(p.Publication, snapshot, c), begin(c)); err != nil {
					cancel(fmt.Errorf("copy %s: %w", c.Name(), err))
					return
				}
				if !end(c) {
					continue
				}
				if p.AfterTable != nil {
					p.AfterTable(ctx, c.Table.Rel)
				}
				// The table is in: its indexes are built now, on this
				// session, while the others copy on.
				for _, d := range builds[c.Table.Rel] {
					if err := buildOne(ctx, p.Publication, d, g); err != nil {
						cancel(err)
						return
					}
					mu.Lock()
					pr.IndexesDone++
					tell()
					mu.Unlock()
				}
			}
		}(blues[i], greens[i])
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// errGreenStopped ends blue's COPY when green's has failed.
var errGreenStopped = errors.New("green stopped reading")

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// copyChunk is how much of blue's COPY text is passed to green's at once.
const copyChunk = 256 << 10

// copyPiece streams one table, or a piece of one, from blue's COPY TO
// into green's COPY FROM, counting the text streamed, and commits it on
// green with its record; it returns the rows green took.
func copyPiece(ctx context.Context, b *pgconn.PgConn, green *pgx.Conn, c Piece, record Stmt, streamed *atomic.Int64) (int64, error) {
	tx := InTx("green", []Stmt{c.Table.CopyIn(), record})
	if err := tx[0].Exec(ctx, green); err != nil {
		return 0, fmt.Errorf("on green: %w", err)
	}
	rows, err := copyStream(ctx, b, green.PgConn(), c, streamed)
	if err != nil {
		return 0, err
	}
	if err := ExecAll(ctx, green, tx[2:]); err != nil {
		return 0, fmt.Errorf("on green: %w", err)
	}
	return rows, nil
}

// copyStream streams one table, or a piece of one, from blue's COPY TO
// into green's COPY FROM, counting the text streamed, and returns the rows
// green took.
func copyStream(ctx context.Context, b, g *pgconn.PgConn, c Piece, streamed *atomic.Int64) (int64, error) {
	out, in := c.CopyOut(), c.Table.CopyIn()
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		start := time.Now()
		// Blue sends a row a message: handed to green a row at a time,
		// each would cross the pipe and leave as a message of its own.
		bw := bufio.NewWriterSize(countingWriter{w, streamed}, copyChunk)
		_, err := b.CopyTo(ctx, bw, out.SQL)
		if err == nil {
			err = bw.Flush()
		}
		out.report(ctx, start, err)
		w.CloseWithError(err) // nil: green reads to the end
		done <- err
	}()
	start := time.Now()
	tag, err := g.CopyFrom(ctx, r, in.SQL)
	in.report(ctx, start, err)
	r.CloseWithError(errGreenStopped)
	if outErr := <-done; outErr != nil && !errors.Is(outErr, errGreenStopped) {
		return 0, fmt.Errorf("on blue: %w", outErr)
	}
	if err != nil {
		return 0, fmt.Errorf("on green: %w", err)
	}
	return tag.RowsAffected(), nil
}

// acquireSessions takes n connections out of pool for good (they are
// closed, not returned: they hold session settings and a snapshot), each
// set up by setup.
func acquireSessions(ctx context.Context, pool *pgxpool.Pool, n int, setup func(*pgx.Conn) error) ([]*pgx.Conn, error) {
	var out []*pgx.Conn
	for range n {
		pc, err := pool.Acquire(ctx)
		if err != nil {
			return out, err
		}
		c := pc.Hijack()
		out = append(out, c)
		if err := setup(c); err != nil {
			return out, err
		}
	}
	return out, nil
}

func closeSessions(cs []*pgx.Conn) {
	for _, c := range cs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.Close(ctx)
		cancel()
	}
}

// IsInsufficientPrivilege reports whether err is the server's refusal for
// want of a privilege (SQLSTATE 42501).
func IsInsufficientPrivilege(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
}
