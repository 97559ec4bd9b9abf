package pg

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Rel is a schema-qualified relation name, unquoted.
type Rel struct {
	Schema, Name string
}

// String is the quoted name, as SQL needs it: public."OrderItems". A
// placeholder (PlaceholderRel) renders as it is.
func (r Rel) String() string {
	if r.Schema == "" && strings.HasPrefix(r.Name, "<") {
		return r.Name
	}
	return Ident(r.Schema, r.Name)
}

// PlaceholderRel stands for tables an offline plan cannot list: it renders
// as <what>.
func PlaceholderRel(what string) Rel { return Rel{Name: Placeholder(what)} }

// scanRels reads rows of (schema, name), sorted byte-wise here: servers'
// collations may order names differently.
func scanRels(rows pgx.Rows, err error) ([]Rel, error) {
	if err != nil {
		return nil, err
	}
	rels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Rel, error) {
		var x Rel
		err := r.Scan(&x.Schema, &x.Name)
		return x, err
	})
	sort.Slice(rels, func(i, j int) bool {
		a, b := rels[i], rels[j]
		return a.Schema < b.Schema || (a.Schema == b.Schema && a.Name < b.Name)
	})
	return rels, err
}

// userSchemas excludes what FOR ALL TABLES never publishes, and the
// program's own schema (RecorderSchema, the DDL recorder on blue): it is
// never the user's, so it is never compared, copied or listed.
const userSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema', '` + RecorderSchema + `') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'`

// noIdentityQuery lists tables that have no primary key and default replica
// identity: once published, UPDATE and DELETE on them fail on the
// publisher. $1 = schemas; NULL means every user schema (FOR ALL TABLES).
// Ordinary and partitioned tables, persistent only (unlogged and temporary
// tables are not published). Columns: schema, table.
const noIdentityQuery = `
SELECT n.nspname::text, c.relname::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND c.relreplident = 'd'
  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
  AND (n.nspname = ANY($1::text[]) OR ($1::text[] IS NULL AND ` + userSchemas + `))
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2`

// TablesWithoutIdentity lists tables of schemas (nil: every user schema)
// with neither a primary key nor a replica identity.
func TablesWithoutIdentity(ctx context.Context, pool *pgxpool.Pool, schemas []string) ([]Rel, error) {
	rels, err := scanRels(pool.Query(ctx, noIdentityQuery, schemas))
	if err != nil {
		return nil, fmt.Errorf("list tables with no primary key and no replica identity: %w", err)
	}
	return rels, nil
}

// ReplicaIdentityParams sets REPLICA IDENTITY FULL (or back to DEFAULT) on
// tables: replica-identity-full on blue, revert-replica-identity on green.
type ReplicaIdentityParams struct {
	// On is the server: "blue" or "green".
	On     string
	Tables []Rel
	Full   bool
}

// Statements are what Exec runs: one ALTER TABLE per table, each in its own
// transaction (each takes a brief ACCESS EXCLUSIVE lock).
func (p ReplicaIdentityParams) Statements() []Stmt {
	mode := "DEFAULT"
	if p.Full {
		mode = "FULL"
	}
	out := make([]Stmt, len(p.Tables))
	for i, t := range p.Tables {
		out[i] = Stmt{On: p.On, SQL: "ALTER TABLE " + t.String() + " REPLICA IDENTITY " + mode}
	}
	return out
}

// Exec runs the statements on db, in order, journaling each.
func (p ReplicaIdentityParams) Exec(ctx context.Context, db Execer) error {
	return ExecAll(ctx, db, p.Statements())
}

// TablesWithIdentityFull lists which of tables have REPLICA IDENTITY FULL now.
func TablesWithIdentityFull(ctx context.Context, pool *pgxpool.Pool, tables []Rel) ([]Rel, error) {
	var out []Rel
	for _, t := range tables {
		var full bool
		err := pool.QueryRow(ctx, "SELECT coalesce((SELECT relreplident = 'f' FROM pg_class WHERE oid = to_regclass($1)), false)", t.String()).Scan(&full)
		if err != nil {
			return nil, fmt.Errorf("read replica identity of %s: %w", t, err)
		}
		if full {
			out = append(out, t)
		}
	}
	return out, nil
}

// PublishableTables lists the tables of schemas a FOR TABLE publication
// names: ordinary and partitioned tables that are not themselves
// partitions (a partitioned table publishes its partitions), persistent,
// not owned by an extension. Sorted.
func PublishableTables(ctx context.Context, pool *pgxpool.Pool, schemas []string) ([]Rel, error) {
	rels, err := scanRels(pool.Query(ctx, `
SELECT n.nspname::text, c.relname::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence = 'p' AND n.nspname = ANY($1::text[])
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2`, schemas))
	if err != nil {
		return nil, fmt.Errorf("list the tables of schemas %s: %w", strings.Join(schemas, ", "), err)
	}
	return rels, nil
}

// PublicationInfo is one publication as it exists on a server.
type PublicationInfo struct {
	Exists    bool
	AllTables bool
	// Tables are the tables named in the publication (pg_publication_rel), sorted.
	Tables []Rel
}

// ReadPublication reads one publication.
func ReadPublication(ctx context.Context, pool *pgxpool.Pool, name string) (PublicationInfo, error) {
	var p PublicationInfo
	err := pool.QueryRow(ctx, "SELECT puballtables FROM pg_publication WHERE pubname = $1", name).Scan(&p.AllTables)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read publication %s: %w", name, err)
	}
	p.Exists = true
	p.Tables, err = scanRels(pool.Query(ctx, `
SELECT n.nspname::text, c.relname::text
FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE p.pubname = $1 ORDER BY 1, 2`, name))
	if err != nil {
		return p, fmt.Errorf("read the tables of publication %s: %w", name, err)
	}
	return p, nil
}

// PublicationSpec is one publication to create: FOR ALL TABLES, or FOR
// TABLE its tables.
type PublicationSpec struct {
	Name      string
	AllTables bool
	Tables    []Rel
}

// CreatePublicationsParams creates publications on one server
// (create-publications on blue).
type CreatePublicationsParams struct {
	// On is the server: "blue".
	On           string
	Publications []PublicationSpec
}

// Statements are what Exec runs: one CREATE PUBLICATION each.
func (p CreatePublicationsParams) Statements() []Stmt {
	return eachStmt(p.On, p.Publications, CreatePublicationStmt)
}

// Exec runs the statements on db in order, journaling each. A publication
// FOR TABLE with no table is refused before anything runs.
func (p CreatePublicationsParams) Exec(ctx context.Context, db Execer) error {
	for _, pub := range p.Publications {
		if !pub.AllTables && len(pub.Tables) == 0 {
			return fmt.Errorf("create publication %s: no table to publish; check the schemas and publications of the configuration", pub.Name)
		}
	}
	return ExecAll(ctx, db, p.Statements())
}

// SlotInfo is one logical replication slot.
type SlotInfo struct {
	Name, Plugin, Database string
	Active                 bool
	ConfirmedFlushLSN      string // "" when NULL
	RestartLSN             string
	WALStatus              string
}

// logicalSlotsSQL is LogicalSlots' read.
const logicalSlotsSQL = `SELECT slot_name::text, coalesce(plugin::text, ''), coalesce(database::text, ''), active,
       coalesce(confirmed_flush_lsn::text, ''), coalesce(restart_lsn::text, ''), coalesce(wal_status, '')
FROM pg_replication_slots WHERE slot_type = 'logical' ORDER BY slot_name COLLATE "C"`

// LogicalSlotsStmt is LogicalSlots' read as a plan shows it, on on.
func LogicalSlotsStmt(on, note string) Stmt { return Stmt{On: on, SQL: logicalSlotsSQL, Note: note} }

// LogicalSlots lists the logical slots of the server, sorted by name.
func LogicalSlots(ctx context.Context, pool *pgxpool.Pool) ([]SlotInfo, error) {
	rows, err := pool.Query(ctx, logicalSlotsSQL)
	if err != nil {
		return nil, fmt.Errorf("list replication slots: %w", err)
	}
	slots, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SlotInfo, error) {
		var s SlotInfo
		err := r.Scan(&s.Name, &s.Plugin, &s.Database, &s.Active, &s.ConfirmedFlushLSN, &s.RestartLSN, &s.WALStatus)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("list replication slots: %w", err)
	}
	return slots, nil
}

// FindSlot returns the slot with that name, if any.
func FindSlot(slots []SlotInfo, name string) (SlotInfo, bool) {
	for _, s := range slots {
		if s.Name == name {
			return s, true
		}
	}
	return SlotInfo{}, false
}

// CreateSlotsParams creates logical replication slots for pgoutput
// (create-slots on blue), each returning the LSN it starts at.
type CreateSlotsParams struct {
	// On is the server: "blue".
	On    string
	Slots []string
}

// Statements are what Exec runs: one pg_create_logical_replication_slot
// per slot, each its own transaction (it waits for the transactions
// running when it starts).
func (p CreateSlotsParams) Statements() []Stmt {
	return eachStmt(p.On, p.Slots, CreateSlotStmt)
}

// Exec creates the slots in order on q, journaling each, and calls created
// with each slot's LSN as soon as it exists (so a crash after it keeps it).
func (p CreateSlotsParams) Exec(ctx context.Context, q RowQuerier, created func(slot, lsn string) error) error {
	for i, s := range p.Statements() {
		var lsn string
		if err := s.QueryRow(ctx, q, &lsn); err != nil {
			return fmt.Errorf("create replication slot %s: %w", p.Slots[i], err)
		}
		if err := created(p.Slots[i], lsn); err != nil {
			return err
		}
	}
	return nil
}

// MaxLSN returns the greatest of LSNs in their text form, compared by the
// server (pg_lsn), so no LSN arithmetic lives here.
func MaxLSN(ctx context.Context, pool *pgxpool.Pool, lsns []string) (string, error) {
	var out string
	if err := pool.QueryRow(ctx, "SELECT coalesce(max(x)::text, '') FROM unnest($1::pg_lsn[]) x", lsns).Scan(&out); err != nil {
		return "", fmt.Errorf("compare LSNs %s: %w", strings.Join(lsns, ", "), err)
	}
	return out, nil
}

// CurrentLSN returns the server's current WAL write position.
func CurrentLSN(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var lsn string
	if err := pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return "", fmt.Errorf("read the current WAL position: %w", err)
	}
	return lsn, nil
}

// SlotProgress is how far the named slots are from a target LSN.
type SlotProgress struct {
	// Behind is, per slot, the bytes its confirmed_flush_lsn is behind target
	// (0 when reached); a missing slot is absent.
	Behind map[string]int64
	// Missing lists the named slots that do not exist.
	Missing []string
}

// Reached reports whether every slot exists and is at the target.
func (p SlotProgress) Reached() bool {
	if len(p.Missing) > 0 {
		return false
	}
	for _, b := range p.Behind {
		if b > 0 {
			return false
		}
	}
	return true
}

// Total is the bytes all slots together are behind.
func (p SlotProgress) Total() int64 {
	var n int64
	for _, b := range p.Behind {
		n += b
	}
	return n
}

// ReadSlotProgress measures the named slots against target.
func ReadSlotProgress(ctx context.Context, pool *pgxpool.Pool, slots []string, target string) (SlotProgress, error) {
	p := SlotProgress{Behind: map[string]int64{}}
	rows, err := pool.Query(ctx, `
SELECT slot_name::text, greatest(coalesce(pg_wal_lsn_diff($2::pg_lsn, confirmed_flush_lsn), pg_wal_lsn_diff($2::pg_lsn, '0/0')), 0)::bigint
FROM pg_replication_slots WHERE slot_name = ANY($1::text[])`, slots, target)
	if err != nil {
		return p, fmt.Errorf("read slot positions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var behind int64
		if err := rows.Scan(&name, &behind); err != nil {
			return p, fmt.Errorf("read slot positions: %w", err)
		}
		p.Behind[name] = behind
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("read slot positions: %w", err)
	}
	for _, s := range slots {
		if _, ok := p.Behind[s]; !ok {
			p.Missing = append(p.Missing, s)
		}
	}
	sort.Strings(p.Missing)
	return p, nil
}
