package pg

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Materialized views: logical replication carries no row of them. On a
// green made by the copy strategy they exist unpopulated (pg_dump
// --schema-only creates them WITH NO DATA, and a query on one fails until
// it is refreshed); on a clone they hold what blue had at the seed. Green
// refreshes them itself, from the tables replication keeps current, in
// dependency order (a view over another is refreshed after it).

// Matview is one materialized view.
type Matview struct {
	Rel Rel
	// Populated is pg_class.relispopulated: false for a view created WITH
	// NO DATA and never refreshed since.
	Populated bool
	// Unique says it has a unique index REFRESH ... CONCURRENTLY can use:
	// btree, valid, immediate, on plain columns, with no WHERE clause.
	Unique bool
	// After are the materialized views it reads, directly or through plain
	// views: refreshed before it.
	After []Rel
	// Bytes is its size with its indexes.
	Bytes int64
}

// Concurrently says whether it can be refreshed without locking readers
// out: with a usable unique index, and populated (a view never populated
// has no rows to compare against, and PostgreSQL refuses).
func (m Matview) Concurrently() bool { return m.Unique && m.Populated }

// RefreshStmt is the REFRESH of the view as it stands: CONCURRENTLY when
// it can be.
func (m Matview) RefreshStmt(on string) Stmt {
	if m.Concurrently() {
		return Stmt{On: on, SQL: "REFRESH MATERIALIZED VIEW CONCURRENTLY " + m.Rel.String()}
	}
	return Stmt{On: on, SQL: "REFRESH MATERIALIZED VIEW " + m.Rel.String()}
}

// AnalyzeStmt gives the view planner statistics after its refresh: a
// refresh leaves none (analyze-green analyzes tables only), and a view
// never populated had none.
func (m Matview) AnalyzeStmt(on string) Stmt {
	return Stmt{On: on, SQL: "ANALYZE " + m.Rel.String()}
}

// RowsStmt reads the rows ANALYZE counted, for the progress line: exact
// for a view ANALYZE reads whole (up to 300 pages per unit of
// default_statistics_target, 234 MB by default), an estimate beyond,
// where a count(*) would read the whole view again.
func (m Matview) RowsStmt(on string) Stmt {
	return Stmt{On: on, SQL: "SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass", Args: []any{m.Rel.String()}}
}

// matviewsSQL lists the materialized views of schemas ($1). Columns:
// oid, schema, name, populated, usable unique index, bytes.
const matviewsSQL = `
SELECT c.oid, n.nspname::text, c.relname::text, c.relispopulated,
       EXISTS (SELECT 1 FROM pg_index i
               JOIN pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_am am ON am.oid = ic.relam
               WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indimmediate
                 AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnatts > 0 AND am.amname = 'btree'),
       pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'm' AND n.nspname = ANY($1::text[])`

// viewEdgesSQL lists which view or materialized view reads which other
// view or materialized view (through its rewrite rule), in any schema:
// a plain view between two materialized views carries the dependency.
// Columns: reader oid, read oid.
const viewEdgesSQL = `
SELECT DISTINCT r.ev_class, d.refobjid
FROM pg_rewrite r
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
JOIN pg_class c ON c.oid = d.refobjid AND c.relkind IN ('v', 'm')
WHERE d.refobjid <> r.ev_class`

// MatviewsQueries are the reads Matviews runs, for plans.
func MatviewsQueries(on string, schemas []string) []Stmt {
	return []Stmt{{On: on, SQL: matviewsSQL, Args: []any{schemas}}, {On: on, SQL: viewEdgesSQL}}
}

// Matviews lists the materialized views of schemas in the order they must
// be refreshed: each after every materialized view it reads, directly or
// through plain views; otherwise by name.
func Matviews(ctx context.Context, pool *pgxpool.Pool, schemas []string) ([]Matview, error) {
	byOID := map[uint32]*Matview{}
	var oids []uint32
	rows, err := pool.Query(ctx, matviewsSQL, schemas)
	if err == nil {
		for rows.Next() {
			var oid uint32
			m := &Matview{}
			if err = rows.Scan(&oid, &m.Rel.Schema, &m.Rel.Name, &m.Populated, &m.Unique, &m.Bytes); err != nil {
				break
			}
			byOID[oid] = m
			oids = append(oids, oid)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list the materialized views: %w", err)
	}
	if len(oids) == 0 {
		return nil, nil
	}
	edges := map[uint32][]uint32{}
	rows, err = pool.Query(ctx, viewEdgesSQL)
	if err == nil {
		for rows.Next() {
			var from, to uint32
			if err = rows.Scan(&from, &to); err != nil {
				break
			}
			edges[from] = append(edges[from], to)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read what the materialized views read: %w", err)
	}
	// Each matview's matviews, through any chain of plain views.
	deps := map[uint32][]uint32{}
	for _, oid := range oids {
		seen := map[uint32]bool{oid: true}
		stack := append([]uint32(nil), edges[oid]...)
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[x] {
				continue
			}
			seen[x] = true
			if _, ok := byOID[x]; ok {
				deps[oid] = append(deps[oid], x)
				continue // its own are refreshed before it
			}
			stack = append(stack, edges[x]...) // a plain view, or a matview outside the schemas
		}
	}
	return refreshOrder(byOID, oids, deps), nil
}

// refreshOrder sorts the views so each comes after those it reads (Kahn's
// algorithm, by name among the ready ones). Views never form a cycle; a
// dependency outside the set is ignored.
func refreshOrder(byOID map[uint32]*Matview, oids []uint32, deps map[uint32][]uint32) []Matview {
	name := func(o uint32) string { return byOID[o].Rel.Schema + "\x00" + byOID[o].Rel.Name }
	waiting := map[uint32]int{}
	readers := map[uint32][]uint32{}
	for _, o := range oids {
		for _, d := range deps[o] {
			waiting[o]++
			readers[d] = append(readers[d], o)
			byOID[o].After = append(byOID[o].After, byOID[d].Rel)
		}
		sort.Slice(byOID[o].After, func(i, j int) bool { return byOID[o].After[i].String() < byOID[o].After[j].String() })
	}
	var ready []uint32
	for _, o := range oids {
		if waiting[o] == 0 {
			ready = append(ready, o)
		}
	}
	out := make([]Matview, 0, len(oids))
	for len(ready) > 0 {
		sort.Slice(ready, func(i, j int) bool { return name(ready[i]) < name(ready[j]) })
		o := ready[0]
		ready = ready[1:]
		out = append(out, *byOID[o])
		for _, r := range readers[o] {
			if waiting[r]--; waiting[r] == 0 {
				ready = append(ready, r)
			}
		}
	}
	return out
}

// MatviewRefreshed is one view refreshed: what the progress line says.
type MatviewRefreshed struct {
	Matview      Matview
	Concurrently bool
	// Took is the refresh's time; Rows what ANALYZE counted (RowsStmt).
	Took time.Duration
	Rows int64
	// Done of Of views are refreshed.
	Done, Of int
}

// RefreshMatviewsParams refresh materialized views on one server, one at
// a time in the order given (Matviews' order), on one connection with no
// statement timeout (a refresh takes as long as its query).
type RefreshMatviewsParams struct {
	On    string
	Views []Matview
	// ViewsUnknown: a plan made offline, which shows one placeholder REFRESH.
	ViewsUnknown bool
	// What names the views of a plan made offline ("each materialized
	// view of public, inventory").
	What string
}

// Statements are what Exec runs, in order.
func (p RefreshMatviewsParams) Statements() []Stmt {
	out := []Stmt{{On: p.On, SQL: "SET statement_timeout = 0", Note: "on the one connection the refreshes use"}}
	if p.ViewsUnknown {
		v := Matview{Rel: PlaceholderRel(p.What)}
		out = append(out,
			Stmt{On: p.On, SQL: "REFRESH MATERIALIZED VIEW " + Placeholder("CONCURRENTLY where a unique index allows and the view is populated") + " " + v.Rel.String(),
				Note: "in dependency order: a view over another after it"},
			v.AnalyzeStmt(p.On), v.RowsStmt(p.On).With("its rows, for the progress line"))
	}
	for _, v := range p.Views {
		note := "populated, with a unique index"
		switch {
		case !v.Populated:
			note = "never populated: a plain REFRESH (CONCURRENTLY needs rows to compare)"
		case !v.Unique:
			note = "no unique index REFRESH ... CONCURRENTLY could use: readers wait"
		}
		if len(v.After) > 0 {
			note += "; after " + relsText(v.After)
		}
		out = append(out, v.RefreshStmt(p.On).With(note), v.AnalyzeStmt(p.On), v.RowsStmt(p.On).With("its rows, for the progress line"))
	}
	return append(out, Stmt{On: p.On, SQL: "RESET statement_timeout"})
}

func relsText(rs []Rel) string {
	q := make([]string, len(rs))
	for i, r := range rs {
		q[i] = r.String()
	}
	return strings.Join(q, ", ")
}

// Exec refreshes the views in order on one connection of pool's, telling
// onView of each as it ends. The first error stops it, naming the view.
func (p RefreshMatviewsParams) Exec(ctx context.Context, pool *pgxpool.Pool, onView func(MatviewRefreshed)) error {
	stmts := p.Statements()
	set, reset := stmts[0], stmts[len(stmts)-1]
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", p.On, err)
	}
	defer c.Release()
	if err := set.Exec(ctx, c); err != nil {
		return err
	}
	defer reset.Exec(context.WithoutCancel(ctx), c)
	for i, v := range p.Views {
		start := time.Now()
		refresh := v.RefreshStmt(p.On)
		if err := refresh.Exec(ctx, c); err != nil {
			if IsInsufficientPrivilege(err) {
				return fmt.Errorf("%s: %w; only its owner or a superuser may refresh it (PostgreSQL 17+: GRANT MAINTAIN ON %s)", refresh.SQL, err, v.Rel)
			}
			return fmt.Errorf("%s: %w", refresh.SQL, err)
		}
		took := time.Since(start)
		if err := v.AnalyzeStmt(p.On).Exec(ctx, c); err != nil {
			return fmt.Errorf("analyze %s: %w", v.Rel, err)
		}
		var n int64
		count := v.RowsStmt(p.On)
		if err := c.QueryRow(ctx, count.SQL, count.Args...).Scan(&n); err != nil {
			return fmt.Errorf("%s: %w", count.SQL, err)
		}
		if onView != nil {
			onView(MatviewRefreshed{Matview: v, Concurrently: v.Concurrently(), Took: took, Rows: n, Done: i + 1, Of: len(p.Views)})
		}
	}
	return nil
}
