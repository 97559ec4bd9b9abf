package pg

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// What preflight reads, as named queries (each with its purpose and
// columns), and the readers that run exactly the statements
// PreflightParams.BlueReads and GreenReads list, so a preflight's plan
// shows the reads it really makes. Every one of them only reads.

// serverVersionNumQuery reads the server's version as a number (150004):
// what a read that differs between majors chooses its text by.
const serverVersionNumQuery = "SELECT current_setting('server_version_num')::int"

// SettingsQuery reads the settings logical replication needs, and the slots
// in use, in one statement. Columns: server_version_num, server_version
// (without the distribution's suffix), wal_level, max_replication_slots,
// max_wal_senders, max_logical_replication_workers, max_worker_processes,
// max_sync_workers_per_subscription, rds.logical_replication (” off RDS),
// slots in use.
const SettingsQuery = `SELECT current_setting('server_version_num')::int, split_part(current_setting('server_version'), ' ', 1),
       current_setting('wal_level'), current_setting('max_replication_slots')::int, current_setting('max_wal_senders')::int,
       current_setting('max_logical_replication_workers')::int, current_setting('max_worker_processes')::int,
       current_setting('max_sync_workers_per_subscription')::int,
       coalesce(current_setting('rds.logical_replication', true), ''),
       (SELECT count(*) FROM pg_replication_slots)::int`

// ReplicationSettings are the server settings logical replication needs.
type ReplicationSettings struct {
	VersionNum                    int
	Version                       string
	WALLevel                      string
	MaxReplicationSlots           int
	MaxWALSenders                 int
	MaxLogicalReplicationWorkers  int
	MaxWorkerProcesses            int
	MaxSyncWorkersPerSubscription int
	// RDSLogicalReplication is rds.logical_replication ("" off RDS).
	RDSLogicalReplication string
	// SlotsUsed counts the replication slots that exist already.
	SlotsUsed int
}

// ReadReplicationSettings reads the settings in one statement (SettingsQuery).
func ReadReplicationSettings(ctx context.Context, pool *pgxpool.Pool) (ReplicationSettings, error) {
	var s ReplicationSettings
	err := pool.QueryRow(ctx, SettingsQuery).Scan(
		&s.VersionNum, &s.Version, &s.WALLevel, &s.MaxReplicationSlots, &s.MaxWALSenders,
		&s.MaxLogicalReplicationWorkers, &s.MaxWorkerProcesses, &s.MaxSyncWorkersPerSubscription,
		&s.RDSLogicalReplication, &s.SlotsUsed)
	if err != nil {
		return s, fmt.Errorf("read replication settings: %w", err)
	}
	return s, nil
}

// LogicalSettingsParams are the ALTER SYSTEM lines that give a self-managed
// server logical decoding and room for the run's slots, walsenders and
// workers. pgbluegreen never runs them on blue: they take effect only after
// a restart, which is the operator's; enable-logical-replication shows them
// and refuses with them.
type LogicalSettingsParams struct {
	On string
	// WALLevel is "logical", or "" to leave wal_level alone.
	WALLevel string
	// The counts to set; 0 leaves a setting alone.
	MaxReplicationSlots, MaxWALSenders, MaxLogicalReplicationWorkers, MaxWorkerProcesses int
}

// Statements are the ALTER SYSTEM lines, one per setting to change.
func (p LogicalSettingsParams) Statements() []Stmt {
	var out []Stmt
	if p.WALLevel != "" {
		out = append(out, alterSystemStmt(p.On, "wal_level", p.WALLevel))
	}
	for _, s := range []struct {
		name string
		n    int
	}{{"max_replication_slots", p.MaxReplicationSlots}, {"max_wal_senders", p.MaxWALSenders},
		{"max_logical_replication_workers", p.MaxLogicalReplicationWorkers}, {"max_worker_processes", p.MaxWorkerProcesses}} {
		if s.n > 0 {
			out = append(out, alterSystemStmt(p.On, s.name, s.n))
		}
	}
	return out
}

// alterSystemStmt sets a server setting in postgresql.auto.conf: a string
// as a literal, a number as it is (Literal). It takes effect at the next
// reload (reloadConfStmt), or restart for some settings. ALTER SYSTEM
// cannot run in a transaction.
func alterSystemStmt(on, name string, value any) Stmt {
	return Stmt{On: on, SQL: "ALTER SYSTEM SET " + name + " = " + Literal(value)}
}

// alterSystemResetStmt removes a setting from postgresql.auto.conf.
func alterSystemResetStmt(on, name string) Stmt {
	return Stmt{On: on, SQL: "ALTER SYSTEM RESET " + name}
}

// reloadConfStmt makes the server read its configuration again.
func reloadConfStmt(on string) Stmt { return Stmt{On: on, SQL: "SELECT pg_reload_conf()"} }

// PrivilegesQuery reads what the connected user may do. Columns: user,
// superuser, createrole, replication, member of rds_superuser, of
// rds_replication, of pg_create_subscription (PG16+), CREATE on the
// database, the database's name.
const PrivilegesQuery = `SELECT current_user::text, r.rolsuper, r.rolcreaterole, r.rolreplication,
       EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_superuser' AND pg_has_role(r.oid, g.oid, 'MEMBER')),
       EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication' AND pg_has_role(r.oid, g.oid, 'MEMBER')),
       EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'pg_create_subscription' AND pg_has_role(r.oid, g.oid, 'MEMBER')),
       has_database_privilege(current_database(), 'CREATE'), current_database()::text
FROM pg_roles r WHERE r.rolname = current_user`

// Privileges are what the user pgbluegreen connects as may do.
type Privileges struct {
	User                                 string
	Superuser, CreateRole, Replication   bool
	RDSSuperuser, RDSReplication         bool
	CreateSubscription, CreateOnDatabase bool
	Database                             string
}

// TablesQuery lists the tables, partitions and materialized views of every
// user schema, with what preflight judges of each. Tables owned by an
// extension are left out (publications leave them out too). Columns:
// schema, name, relkind, relpersistence, relreplident, is a partition, has
// a primary key, the connected user acts as its owner.
const TablesQuery = `SELECT n.nspname::text, c.relname::text, c.relkind::text, c.relpersistence::text, c.relreplident::text,
       c.relispartition, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
       pg_has_role(c.relowner, 'USAGE')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND ` + userSchemas + `
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2`

// TableFact is one relation of TablesQuery.
type TableFact struct {
	Rel
	// Kind is relkind: 'r' table, 'p' partitioned table, 'm' materialized view.
	Kind        string
	Persistence string
	// ReplIdent is relreplident: 'd' default, 'f' full, 'n' nothing, 'i' index.
	ReplIdent  string
	Partition  bool
	PrimaryKey bool
	// Owned says the connected user acts as its owner (ALTER TABLE,
	// CREATE PUBLICATION ... FOR TABLE, GRANT need that or superuser).
	Owned bool
}

// Published reports whether a publication can carry the relation: an
// ordinary or partitioned table, persistent.
func (t TableFact) Published() bool {
	return (t.Kind == "r" || t.Kind == "p") && t.Persistence == "p"
}

// NeedsIdentity reports whether UPDATE and DELETE on the table fail on the
// publisher once it is published: no primary key and default replica
// identity (replica-identity-full sets FULL on those).
func (t TableFact) NeedsIdentity() bool {
	return t.Published() && !t.PrimaryKey && t.ReplIdent == "d"
}

// CountsQuery counts large objects (never replicated) and the sequences of
// the schemas ($1). Columns: large objects, sequences.
const CountsQuery = `SELECT (SELECT count(*) FROM pg_largeobject_metadata), (SELECT count(*) FROM pg_sequences WHERE schemaname = ANY($1::text[]))`

// SequencesNearMaxQuery lists the sequences of schemas ($1) that have used
// at least a fraction ($2) of their range, the range capped by the type of
// the column that owns them (a bigint sequence behind an integer column
// overflows at the integer's maximum). Columns: schema, sequence, last
// value, the maximum that applies, fraction used.
const SequencesNearMaxQuery = `WITH s AS (
  SELECT ps.schemaname::text AS nsp, ps.sequencename::text AS seq, ps.last_value, ps.min_value,
         least(ps.max_value, coalesce((
           SELECT CASE a.atttypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647 END
           FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
           WHERE d.classid = 'pg_class'::regclass AND d.objid = sc.oid AND d.refclassid = 'pg_class'::regclass
             AND d.deptype IN ('a', 'i') LIMIT 1), ps.max_value)) AS top
  FROM pg_sequences ps JOIN pg_namespace sn ON sn.nspname = ps.schemaname
  JOIN pg_class sc ON sc.relnamespace = sn.oid AND sc.relname = ps.sequencename
  WHERE ps.schemaname = ANY($1::text[]) AND ps.last_value IS NOT NULL AND ps.increment_by > 0)
SELECT nsp, seq, last_value, top, (last_value - min_value)::float8 / (top - min_value)::float8
FROM s WHERE top > min_value AND (last_value - min_value)::float8 / (top - min_value)::float8 >= $2
ORDER BY 1, 2`

// SequenceUse is one sequence close to its maximum.
type SequenceUse struct {
	Rel
	Last, Max int64
	Used      float64
}

// ExtensionsQuery lists the extensions installed (plpgsql left out: every
// server has it). Columns: name, version.
const ExtensionsQuery = `SELECT extname::text, extversion FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1`

// AvailableExtensionsQuery lists the extensions a server can install.
// Columns: name, default version.
const AvailableExtensionsQuery = `SELECT name::text, coalesce(default_version, '') FROM pg_available_extensions ORDER BY 1`

// LongTransactionsQuery lists the transactions open longer than $1 seconds
// (client sessions other than this one, and prepared transactions): they
// hold a PgBouncer PAUSE and a slot's creation until they end. Columns:
// pid (0 for a prepared transaction), user, application (the gid for a
// prepared transaction), client, seconds open, state.
const LongTransactionsQuery = `SELECT pid, coalesce(usename::text, ''), coalesce(application_name, ''), coalesce(client_addr::text, 'local'),
       extract(epoch FROM now() - xact_start)::float8, coalesce(state, '')
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND xact_start < now() - make_interval(secs => $1::float8)
UNION ALL
SELECT 0, owner::text, 'prepared transaction ' || gid, database::text, extract(epoch FROM now() - prepared)::float8, 'prepared'
FROM pg_prepared_xacts WHERE prepared < now() - make_interval(secs => $1::float8)
ORDER BY 5 DESC`

// OpenTransaction is one transaction of LongTransactionsQuery.
type OpenTransaction struct {
	PID                       int
	User, Application, Client string
	Open                      time.Duration
	State                     string
}

// CollationsQuery lists the collations the indexes of user schemas sort
// text by, with the version of the library the server has now (what an
// index built by another library's version may disagree with), and how
// many indexes use each. The database's default collation is named
// "default"; its version is read from PG15 on ({default_version}). Columns: collation,
// provider, version (” when the provider has none), indexes.
const CollationsQuery = `SELECT CASE WHEN co.oid = 100 THEN 'default' ELSE co.collname::text END, co.collprovider::text,
       coalesce(CASE WHEN co.oid = 100 THEN {default_version} ELSE pg_collation_actual_version(co.oid) END, ''),
       count(DISTINCT i.indexrelid)::int
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indcollation::oid[]) AS k(coll)
JOIN pg_collation co ON co.oid = k.coll
WHERE ` + userSchemas + ` AND co.collname NOT IN ('C', 'POSIX', 'ucs_basic')
GROUP BY 1, 2, 3 ORDER BY 1`

// collationsSQL is CollationsQuery for a server version.
func collationsSQL(versionNum int) string {
	def := "NULL::text"
	if versionNum >= 150000 {
		def = "(SELECT pg_database_collation_actual_version(oid) FROM pg_database WHERE datname = current_database())"
	}
	return strings.Replace(CollationsQuery, "{default_version}", def, 1)
}

// CollationVersionsQuery reads the library versions of named collations
// ($1; "default" is the database's, read from PG15 on: {default_version}). Columns:
// collation, version.
const CollationVersionsQuery = `SELECT CASE WHEN oid = 100 THEN 'default' ELSE collname::text END,
       coalesce(CASE WHEN oid = 100 THEN {default_version} ELSE pg_collation_actual_version(oid) END, '')
FROM pg_collation WHERE collname = ANY($1::text[]) OR (oid = 100 AND 'default' = ANY($1::text[]))`

func collationVersionsSQL(versionNum int) string {
	def := "NULL::text"
	if versionNum >= 150000 {
		def = "(SELECT pg_database_collation_actual_version(d.oid) FROM pg_database d WHERE d.datname = current_database())"
	}
	return strings.Replace(CollationVersionsQuery, "{default_version}", def, 1)
}

// CollationUse is a collation indexes sort by.
type CollationUse struct {
	Name, Provider, Version string
	Indexes                 int
}

// FullIdentityWithoutIndexQuery lists tables of schemas ($1) that have (or
// will get) REPLICA IDENTITY FULL and no index a PG16+ subscriber can use
// to find a row (a btree index on plain columns, not partial): there, every
// replicated UPDATE and DELETE scans the whole table. Read on green, where
// apply runs. Columns: schema, table.
const FullIdentityWithoutIndexQuery = `SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1::text[]) AND c.relkind = 'r' AND c.relreplident IN ('d', 'f')
  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
  AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
                  WHERE i.indrelid = c.oid AND am.amname = 'btree' AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid)
ORDER BY 1, 2`

// FullIdentityWithoutIndex runs FullIdentityWithoutIndexQuery.
func FullIdentityWithoutIndex(ctx context.Context, pool *pgxpool.Pool, schemas []string) ([]Rel, error) {
	rels, err := scanRels(pool.Query(ctx, FullIdentityWithoutIndexQuery, schemas))
	if err != nil {
		return nil, fmt.Errorf("list tables without a usable index: %w", err)
	}
	return rels, nil
}

// SchemasQuery lists the user schemas: every one but the system's.
const SchemasQuery = `SELECT n.nspname::text FROM pg_namespace n WHERE ` + userSchemas + ` ORDER BY 1`

// UserSchemas lists every non-system schema (SchemasQuery), sorted
// byte-wise: what `schemas` means when the configuration omits it.
func UserSchemas(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	rows, err := pool.Query(ctx, SchemasQuery)
	if err != nil {
		return nil, fmt.Errorf("list the schemas: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the schemas: %w", err)
	}
	sort.Strings(out)
	return out, nil
}
