package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// VerifyResult is what `lab verify` prints: the totals over every database
// checked, and what each database showed (Databases).
type VerifyResult struct {
	Lost       int `json:"lost"`
	Duplicated int `json:"duplicated"`
	// MismatchedTables are database app's tables as schema.table, another
	// database's as db.schema.table.
	MismatchedTables []string `json:"mismatched_tables"`
	LedgerEntries    int      `json:"ledger_entries"`
	Target           string   `json:"target"` // the server PgBouncer sends database app to now
	TablesCompared   int      `json:"tables_compared"`
	// Note is database app's note, then another database's after its name.
	Note      string           `json:"note,omitempty"`
	Databases []DatabaseVerify `json:"databases"`
}

// DatabaseVerify is what Verify found in one database.
type DatabaseVerify struct {
	Database         string   `json:"database"`
	Ledger           string   `json:"ledger"`
	LedgerEntries    int      `json:"ledger_entries"`
	Lost             int      `json:"lost"`
	Duplicated       int      `json:"duplicated"`
	Target           string   `json:"target"` // where the PgBouncers send this database now
	TablesCompared   int      `json:"tables_compared"`
	MismatchedTables []string `json:"mismatched_tables"`
	Note             string   `json:"note,omitempty"`
}

// OK reports whether nothing was lost, duplicated or different.
func (r VerifyResult) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && len(r.MismatchedTables) == 0
}

// VerifiedDatabases are the databases Verify checks in a lab: app always
// (as before there was a second one), and every other database `lab load`
// wrote to, known by its ledger file.
func (i *Info) VerifiedDatabases() []string {
	out := []string{AppDB}
	for _, db := range i.Databases {
		if _, err := os.Stat(i.LedgerPath(db)); db != AppDB && err == nil {
			out = append(out, db)
		}
	}
	return out
}

// Verify checks, for every database the load wrote to (VerifiedDatabases),
// the ledger against the server PgBouncer sends that database to now (read
// from its ini): every acknowledged (id, client, n) must be there exactly
// once. Then, when green has that database and its schema, it compares
// every table of schemas public and inventory between blue and green by
// row count and a content hash. It is meant to run when replication has
// drained; under live writes the comparison reports the tables still moving.
func Verify(ctx context.Context, dir string) (VerifyResult, error) {
	res := VerifyResult{MismatchedTables: []string{}, Databases: []DatabaseVerify{}}
	info, err := ReadInfo(dir)
	if err != nil {
		return res, err
	}
	var notes []string
	for _, db := range info.VerifiedDatabases() {
		d, err := verifyDatabase(ctx, info, db)
		if err != nil {
			if db != AppDB {
				err = fmt.Errorf("database %s: %w", db, err)
			}
			return res, err
		}
		res.Databases = append(res.Databases, d)
		res.Lost += d.Lost
		res.Duplicated += d.Duplicated
		res.LedgerEntries += d.LedgerEntries
		res.TablesCompared += d.TablesCompared
		prefix := ""
		if db == AppDB {
			res.Target = d.Target
		} else {
			prefix = db + "."
		}
		for _, t := range d.MismatchedTables {
			res.MismatchedTables = append(res.MismatchedTables, prefix+t)
		}
		switch {
		case d.Note == "":
		case db == AppDB:
			notes = append(notes, d.Note)
		default:
			notes = append(notes, db+": "+d.Note)
		}
	}
	res.Note = strings.Join(notes, "; ")
	return res, nil
}

// verifyDatabase checks one database's ledger and compares its tables.
func verifyDatabase(ctx context.Context, info *Info, db string) (DatabaseVerify, error) {
	res := DatabaseVerify{Database: db, Ledger: info.LedgerPath(db), MismatchedTables: []string{}}
	bouncers := info.Bouncers()
	target, err := BouncerTarget(bouncers[0].Ini, db, info.Pgpass)
	if err != nil {
		return res, err
	}
	res.Target, _ = bouncerTargetLine(bouncers[0].Ini, db)
	// Writes go through every PgBouncer: all must point at one server.
	for _, b := range bouncers[1:] {
		if other, err := bouncerTargetLine(b.Ini, db); err != nil || other != res.Target {
			return res, fmt.Errorf("PgBouncer %s points %s at `%s`, PgBouncer %s at `%s` (%v): the writes are split", bouncers[0].Name, db, res.Target, b.Name, other, err)
		}
	}
	entries, err := readLedger(res.Ledger)
	if err != nil {
		return res, err
	}
	res.LedgerEntries = len(entries)
	if err := checkLedger(ctx, target, entries, &res); err != nil {
		return res, err
	}

	greenPort := info.Green.Port
	if info.Strategy == "clone" {
		greenPort = info.Clone.Port
	}
	bc, err := connect(ctx, tcpConninfo(info.Blue.Port, db, AdminRole, info.Pgpass))
	if err != nil {
		return res, fmt.Errorf("connecting to blue: %w", err)
	}
	defer bc.Close(context.Background())
	gc, err := connect(ctx, tcpConninfo(greenPort, db, AdminRole, info.Pgpass))
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "3D000" {
			res.Note = "green has no database " + db + " yet: blue and green not compared"
		} else {
			res.Note = "green is not reachable: blue and green not compared"
		}
		return res, nil
	}
	defer gc.Close(context.Background())
	var has bool
	if err := gc.QueryRow(ctx, "SELECT to_regclass('public.ledger') IS NOT NULL").Scan(&has); err != nil {
		return res, fmt.Errorf("looking for the schema on green: %w", err)
	}
	if !has {
		res.Note = "green has no schema yet (nothing replicated): blue and green not compared"
		return res, nil
	}
	tables, err := labTables(ctx, bc)
	if err != nil {
		return res, err
	}
	for _, t := range tables {
		bs, err := tableSummary(ctx, bc, t)
		if err != nil {
			return res, fmt.Errorf("summarising %s on blue: %w", t, err)
		}
		gs, err := tableSummary(ctx, gc, t)
		if err != nil || gs != bs {
			res.MismatchedTables = append(res.MismatchedTables, t)
		}
		res.TablesCompared++
	}
	return res, nil
}

// checkLedger counts ledger entries missing from the target (no row with
// that id, client and n) and extra copies of an entry's (client, n).
func checkLedger(ctx context.Context, target string, entries []ledgerEntry, res *DatabaseVerify) error {
	conn, err := connect(ctx, target)
	if err != nil {
		return fmt.Errorf("connecting to the database PgBouncer points at: %w", err)
	}
	defer conn.Close(context.Background())
	clients := make([]int32, len(entries))
	ns := make([]int64, len(entries))
	ids := make([]int64, len(entries))
	for k, e := range entries {
		clients[k], ns[k], ids[k] = e.client, e.n, e.id
	}
	const q = `
WITH e AS (SELECT * FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS e(client, n, id)),
     c AS (SELECT l.client, l.n, count(*) AS copies FROM public.ledger l
           JOIN (SELECT DISTINCT client, n FROM e) k USING (client, n) GROUP BY l.client, l.n)
SELECT count(*) FILTER (WHERE l.id IS NULL),
       coalesce(sum(greatest(coalesce(c.copies, 0) - 1, 0)), 0)
FROM e
LEFT JOIN public.ledger l ON l.id = e.id AND l.client = e.client AND l.n = e.n
LEFT JOIN c ON c.client = e.client AND c.n = e.n`
	if err := conn.QueryRow(ctx, q, clients, ns, ids).Scan(&res.Lost, &res.Duplicated); err != nil {
		return fmt.Errorf("checking the ledger against the database: %w", err)
	}
	return nil
}

// labTables lists the ordinary and partitioned tables of the compared schemas.
func labTables(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('public', 'inventory') AND c.relkind IN ('r', 'p')`)
	if err != nil {
		return nil, fmt.Errorf("listing tables on blue: %w", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing tables on blue: %w", err)
	}
	sort.Strings(tables)
	return tables, nil
}

type summary struct {
	rows int64
	hash string
}

// tableSummary is a row count and the sums of two halves of every row's
// md5: independent of order (so no sort, and 15 and 17 cannot differ by
// collation), and built without one big string, so a table of any size
// is summarised (a string_agg of pgbench scale 500's 50M rows ran out of
// memory).
func tableSummary(ctx context.Context, conn *pgx.Conn, table string) (summary, error) {
	var s summary
	err := conn.QueryRow(ctx, fmt.Sprintf(
		`SELECT count(*), coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0)::text || '/' ||
		        coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)::text
		 FROM (SELECT md5(t::text) AS h FROM %s t) r`, table)).
		Scan(&s.rows, &s.hash)
	return s, err
}
