package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
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
}

// snapshotTablesSQL lists a publication's tables on blue, largest first.
// The %s slots take what the server's version has: generated columns
// (PG12), partition trees (PG12; a publication holds a partitioned table
// from PG13), a publication's column list and row filter (PG15).
// Columns: schema, table, partitioned, columns, filter, bytes.
const snapshotTablesSQL = `
SELECT t.schemaname::text, t.tablename::text, c.relkind = 'p',
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped %s %s
             ORDER BY a.attnum),
       %s,
       CASE WHEN c.relkind = 'p' THEN %s
            ELSE pg_table_size(c.oid) END::bigint
FROM pg_publication_tables t
JOIN pg_namespace n ON n.nspname = t.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename
WHERE t.pubname = $1
ORDER BY 6 DESC, 1, 2`

// SnapshotTables reads, on blue, the tables publication pub copies, largest first.
func SnapshotTables(ctx context.Context, pool *pgxpool.Pool, pub string) ([]SnapshotTable, error) {
	var num int
	if err := pool.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return nil, fmt.Errorf("read blue's version: %w", err)
	}
	gen, cols, filter, partSize := "", "", "''::text", "0"
	if num >= 120000 {
		gen, partSize = "AND a.attgenerated = ''", "(SELECT coalesce(sum(pg_table_size(p.relid)), 0) FROM pg_partition_tree(c.oid) p)"
	}
	if num >= 150000 {
		cols, filter = "AND (t.attnames IS NULL OR a.attname = ANY (t.attnames))", "coalesce(t.rowfilter, '')"
	}
	rows, err := pool.Query(ctx, fmt.Sprintf(snapshotTablesSQL, gen, cols, filter, partSize), pub)
	if err != nil {
		return nil, fmt.Errorf("list the tables of publication %s on blue: %w", pub, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SnapshotTable, error) {
		var t SnapshotTable
		err := r.Scan(&t.Rel.Schema, &t.Rel.Name, &t.Partitioned, &t.Columns, &t.Filter, &t.Bytes)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the tables of publication %s on blue: %w", pub, err)
	}
	return out, nil
}

// NonEmptyTables returns the tables of ts that hold a row on green: what an
// interrupted copy left there, to be truncated before the copy starts again.
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

// columnList is "(a, b)" for the table's columns.
func (t SnapshotTable) columnList() string {
	q := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		q[i] = ident(c)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// CopyOut is the COPY that reads the table on blue, in the snapshot: the
// table's own form, or a SELECT for a partitioned table or a row filter,
// as the table sync reads it.
func (t SnapshotTable) CopyOut() Stmt {
	if !t.Partitioned && t.Filter == "" {
		return Stmt{On: "blue", SQL: "COPY " + t.Rel.String() + " " + t.columnList() + " TO STDOUT"}
	}
	sel := "SELECT " + strings.Trim(t.columnList(), "()") + " FROM " + t.Rel.String()
	if t.Filter != "" {
		sel += " WHERE " + t.Filter
	}
	return Stmt{On: "blue", SQL: "COPY (" + sel + ") TO STDOUT"}
}

// CopyIn is the COPY that writes it on green.
func (t SnapshotTable) CopyIn() Stmt {
	return Stmt{On: "green", SQL: "COPY " + t.Rel.String() + " " + t.columnList() + " FROM STDIN"}
}

// SnapshotCopyProgress is how far a snapshot copy is.
type SnapshotCopyProgress struct {
	TablesDone, TablesTotal int
	BytesDone, BytesTotal   int64
	// InFlight are the tables being copied now.
	InFlight []Rel
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
	// NonEmpty are green's tables of the publication that hold rows
	// already (NonEmptyTables): truncated first.
	NonEmpty []Rel
	// OnSlot is told the slot's position (its consistent point) as soon as
	// the slot exists, before any table is copied.
	OnSlot func(lsn string) error
	// Progress is told after each table.
	Progress func(SnapshotCopyProgress)
	// AfterTable, when set, runs after each table's copy commits on green
	// (a test hook holds the copy there).
	AfterTable func(ctx context.Context, table Rel)
}

// jobs is the number of sessions on each side.
func (p SnapshotCopyParams) jobs() int {
	if p.TablesUnknown {
		return max(1, p.Jobs)
	}
	return max(1, min(p.Jobs, len(p.Tables)))
}

// SlotStmt creates the slot and exports its snapshot.
func (p SnapshotCopyParams) SlotStmt() Stmt {
	return Stmt{On: "blue", SQL: "CREATE_REPLICATION_SLOT " + ident(p.Slot) + " LOGICAL pgoutput EXPORT_SNAPSHOT",
		Note: "on a replication connection (replication=database), held until every session below has imported the snapshot"}
}

// truncateStmt empties the tables an interrupted copy filled (ONLY: never a
// table outside the publication; a partitioned table with its partitions).
func (p SnapshotCopyParams) truncateStmt() Stmt {
	part := map[Rel]bool{}
	for _, t := range p.Tables {
		part[t.Rel] = t.Partitioned
	}
	q := make([]string, len(p.NonEmpty))
	for i, r := range p.NonEmpty {
		q[i] = "ONLY " + r.String()
		if part[r] {
			q[i] = r.String()
		}
	}
	return Stmt{On: "green", SQL: "TRUNCATE " + strings.Join(q, ", "), Note: "tables an interrupted copy left rows in"}
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
	return quoteLiteral(s)
}

// replicaRoleStmt makes a green session write as the apply worker does:
// no triggers, no foreign-key checks (the rows are blue's, already checked).
var replicaRoleStmt = Stmt{On: "green", SQL: "SET session_replication_role = replica"}

// greenSessionStmts set up a green session: no statement timeout, and the
// apply worker's role.
var greenSessionStmts = []Stmt{{On: "green", SQL: "SET statement_timeout = 0"}, replicaRoleStmt}

// Statements are what Exec runs, in order; the session statements run on
// each of the Jobs sessions, the COPY pairs on whichever is free.
func (p SnapshotCopyParams) Statements() []Stmt {
	var out []Stmt
	if len(p.NonEmpty) > 0 {
		out = append(out, p.truncateStmt())
	}
	out = append(out, p.SlotStmt())
	each := fmt.Sprintf("on each of %d sessions", p.jobs())
	for _, s := range importStmts(Placeholder("the snapshot the slot exported")) {
		s.Note = each
		out = append(out, s)
	}
	for _, s := range greenSessionStmts {
		s.Note = each
		out = append(out, s)
	}
	tables := p.Tables
	if p.TablesUnknown {
		tables = []SnapshotTable{{Rel: Rel{Name: Placeholder("each table of " + p.Publication + ", largest first")}, Columns: []string{Placeholder("its columns")}}}
	}
	for _, t := range tables {
		o, i := t.CopyOut(), t.CopyIn()
		o.Note = "into the COPY below"
		if !p.TablesUnknown {
			o.Note = Bytes(t.Bytes) + ", into the COPY below"
		}
		out = append(out, o, i)
	}
	return append(out, Stmt{On: "blue", SQL: "COMMIT", Note: each})
}

// Exec truncates what an interrupted copy left, creates the slot exporting
// its snapshot, opens Jobs sessions on each side, the blue ones in the
// snapshot, and copies the tables, largest first, each COPY committing on
// its own. It returns the slot's consistent point: the subscription
// streams from there, and the copy holds exactly what blue had committed
// before it. On an error the slot is dropped again (nothing will consume
// it); a killed process leaves it, and the next run drops it.
func (p SnapshotCopyParams) Exec(ctx context.Context, blue, green *pgxpool.Pool) (lsn string, err error) {
	if len(p.NonEmpty) > 0 {
		if err := p.truncateStmt().Exec(ctx, green); err != nil {
			return "", fmt.Errorf("empty the tables an interrupted copy left rows in: %w", err)
		}
	}
	greens, err := acquireSessions(ctx, green, p.jobs(), func(c *pgx.Conn) error { return ExecAll(ctx, c, greenSessionStmts) })
	defer closeSessions(greens)
	if err != nil {
		if IsInsufficientPrivilege(err) {
			return "", fmt.Errorf("%s on green needs a superuser (rds_superuser on RDS), as the table sync's workers are: %w", replicaRoleStmt.SQL, err)
		}
		return "", fmt.Errorf("open green's copy sessions: %w", err)
	}
	cfg := blue.Config().ConnConfig.Config.Copy()
	cfg.RuntimeParams["replication"] = "database"
	repl, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("open a replication connection to blue (its role needs REPLICATION): %w", err)
	}
	defer repl.Close(context.WithoutCancel(ctx))
	slot := p.SlotStmt()
	start := time.Now()
	res, err := repl.Exec(ctx, slot.SQL).ReadAll()
	slot.report(ctx, start, err)
	if err != nil {
		return "", fmt.Errorf("create slot %s: %w", p.Slot, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 3 {
		return "", fmt.Errorf("create slot %s: unexpected answer", p.Slot)
	}
	lsn, snapshot := string(res[0].Rows[0][1]), string(res[0].Rows[0][2])
	defer func() {
		if err != nil {
			// Nothing will consume it; it would hold blue's WAL.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_, _ = DropSlotParams{On: "blue", Name: p.Slot}.Exec(cctx, blue)
		}
	}()
	if p.OnSlot != nil {
		if err := p.OnSlot(lsn); err != nil {
			return "", err
		}
	}
	blues, err := acquireSessions(ctx, blue, p.jobs(), func(c *pgx.Conn) error { return ExecAll(ctx, c, importStmts(snapshot)) })
	defer closeSessions(blues)
	if err != nil {
		return "", fmt.Errorf("import the slot's snapshot on blue: %w", err)
	}
	// Every session holds the snapshot now: the replication connection may go.
	repl.Close(ctx)
	if err := p.copyAll(ctx, blues, greens); err != nil {
		return "", err
	}
	commit := Stmt{On: "blue", SQL: "COMMIT"}
	for _, c := range blues {
		if err := commit.Exec(ctx, c); err != nil {
			return "", err
		}
	}
	return lsn, nil
}

// copyAll runs the COPY pairs on the sessions, each taking the next table
// (largest first); the first error stops the others.
func (p SnapshotCopyParams) copyAll(ctx context.Context, blues, greens []*pgx.Conn) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan SnapshotTable, len(p.Tables))
	var pr SnapshotCopyProgress
	for _, t := range p.Tables {
		next <- t
		pr.TablesTotal++
		pr.BytesTotal += t.Bytes
	}
	close(next)
	var mu sync.Mutex
	flight := map[Rel]bool{}
	report := func(t SnapshotTable, done bool) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			flight[t.Rel] = true
			return
		}
		delete(flight, t.Rel)
		pr.TablesDone++
		pr.BytesDone += t.Bytes
		if p.Progress != nil {
			pr.InFlight = pr.InFlight[:0]
			for r := range flight {
				pr.InFlight = append(pr.InFlight, r)
			}
			p.Progress(pr)
		}
	}
	var wg sync.WaitGroup
	for i := range blues {
		wg.Add(1)
		go func(b, g *pgx.Conn) {
			defer wg.Done()
			for t := range next {
				if ctx.Err() != nil {
					return
				}
				report(t, false)
				if err := copyTable(ctx, b.PgConn(), g.PgConn(), t); err != nil {
					cancel(fmt.Errorf("copy %s: %w", t.Rel, err))
					return
				}
				report(t, true)
				if p.AfterTable != nil {
					p.AfterTable(ctx, t.Rel)
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

// copyTable streams one table from blue's COPY TO into green's COPY FROM.
func copyTable(ctx context.Context, b, g *pgconn.PgConn, t SnapshotTable) error {
	out, in := t.CopyOut(), t.CopyIn()
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		start := time.Now()
		_, err := b.CopyTo(ctx, w, out.SQL)
		out.report(ctx, start, err)
		w.CloseWithError(err) // nil: green reads to the end
		done <- err
	}()
	start := time.Now()
	_, err := g.CopyFrom(ctx, r, in.SQL)
	in.report(ctx, start, err)
	r.CloseWithError(errGreenStopped)
	if outErr := <-done; outErr != nil && !errors.Is(outErr, errGreenStopped) {
		return fmt.Errorf("on blue: %w", outErr)
	}
	if err != nil {
		return fmt.Errorf("on green: %w", err)
	}
	return nil
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
