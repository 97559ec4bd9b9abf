package pg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PreflightParams says what preflight reads about the run.
type PreflightParams struct {
	// Schemas are the replicated schemas.
	Schemas []string
	// Role is the replication role.
	Role string
	// LongTransaction is how long a transaction may have been open before
	// preflight names it.
	LongTransaction time.Duration
	// NearMax is the fraction of a sequence's range from which preflight
	// names it (0.8: 80 % used).
	NearMax float64
}

// BlueReads are the statements ReadBlue runs, in its order, for plans.
// versionNum picks the version-dependent form (0: PG15+'s).
func (p PreflightParams) BlueReads(versionNum int) []Stmt {
	on := "blue"
	return []Stmt{
		{On: on, SQL: SettingsQuery},
		{On: on, SQL: PrivilegesQuery},
		{On: on, SQL: RoleQuery, Args: []any{p.Role}},
		{On: on, SQL: MissingGrantsQuery, Args: []any{p.Role, p.Schemas}, Note: "when the role exists"},
		{On: on, SQL: TablesQuery},
		{On: on, SQL: CountsQuery, Args: []any{p.Schemas}},
		{On: on, SQL: SequencesNearMaxQuery, Args: []any{p.Schemas, p.NearMax}},
		{On: on, SQL: ExtensionsQuery},
		{On: on, SQL: LongTransactionsQuery, Args: []any{p.LongTransaction.Seconds()}},
		{On: on, SQL: collationsSQL(orPG15(versionNum))},
	}
}

// GreenReads are the statements ReadGreen runs, in its order, for plans.
// collations are blue's (CollationsQuery); a plan made before reading blue
// passes nil and shows where they come from.
func (p PreflightParams) GreenReads(versionNum int, collations []string) []Stmt {
	on := "green"
	var colls any = collations
	if collations == nil {
		colls = Later("the collations blue's indexes use")
	}
	return []Stmt{
		{On: on, SQL: SettingsQuery},
		{On: on, SQL: PrivilegesQuery},
		{On: on, SQL: ExtensionsQuery},
		{On: on, SQL: AvailableExtensionsQuery},
		{On: on, SQL: FullIdentityWithoutIndexQuery, Args: []any{p.Schemas}, Note: "PostgreSQL 16+ subscribers"},
		{On: on, SQL: collationVersionsSQL(orPG15(versionNum)), Args: []any{colls}},
	}
}

func orPG15(versionNum int) int {
	if versionNum == 0 {
		return 150000
	}
	return versionNum
}

// BlueFacts is what preflight reads on blue.
type BlueFacts struct {
	Settings   ReplicationSettings
	Privileges Privileges
	// Role is the replication role; MissingGrants what it lacks (when it exists).
	Role          RoleInfo
	MissingGrants []string
	// Tables are the relations of every user schema (TablesQuery).
	Tables                  []TableFact
	LargeObjects, Sequences int64
	NearMax                 []SequenceUse
	Extensions              map[string]string
	LongTransactions        []OpenTransaction
	Collations              []CollationUse
}

// ReadBlue runs BlueReads on pool, in order.
func ReadBlue(ctx context.Context, pool *pgxpool.Pool, p PreflightParams) (BlueFacts, error) {
	var f BlueFacts
	var err error
	if f.Settings, err = ReadReplicationSettings(ctx, pool); err != nil {
		return f, err
	}
	if f.Privileges, err = readPrivileges(ctx, pool); err != nil {
		return f, err
	}
	if f.Role, err = ReadRole(ctx, pool, p.Role); err != nil {
		return f, err
	}
	if f.Role.Exists {
		if f.MissingGrants, err = MissingGrants(ctx, pool, p.Role, p.Schemas); err != nil {
			return f, err
		}
	}
	rows, err := pool.Query(ctx, TablesQuery)
	if err == nil {
		f.Tables, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableFact, error) {
			var t TableFact
			err := r.Scan(&t.Schema, &t.Name, &t.Kind, &t.Persistence, &t.ReplIdent, &t.Partition, &t.PrimaryKey, &t.Owned)
			return t, err
		})
	}
	if err != nil {
		return f, fmt.Errorf("list the tables: %w", err)
	}
	if err := pool.QueryRow(ctx, CountsQuery, p.Schemas).Scan(&f.LargeObjects, &f.Sequences); err != nil {
		return f, fmt.Errorf("count large objects and sequences: %w", err)
	}
	rows, err = pool.Query(ctx, SequencesNearMaxQuery, p.Schemas, p.NearMax)
	if err == nil {
		f.NearMax, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (SequenceUse, error) {
			var s SequenceUse
			err := r.Scan(&s.Schema, &s.Name, &s.Last, &s.Max, &s.Used)
			return s, err
		})
	}
	if err != nil {
		return f, fmt.Errorf("read how far the sequences are: %w", err)
	}
	if f.Extensions, err = readPairs(ctx, pool, ExtensionsQuery); err != nil {
		return f, fmt.Errorf("list extensions: %w", err)
	}
	rows, err = pool.Query(ctx, LongTransactionsQuery, p.LongTransaction.Seconds())
	if err == nil {
		f.LongTransactions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (OpenTransaction, error) {
			var t OpenTransaction
			var secs float64
			err := r.Scan(&t.PID, &t.User, &t.Application, &t.Client, &secs, &t.State)
			t.Open = time.Duration(secs * float64(time.Second)).Round(time.Second)
			return t, err
		})
	}
	if err != nil {
		return f, fmt.Errorf("list long transactions: %w", err)
	}
	rows, err = pool.Query(ctx, collationsSQL(f.Settings.VersionNum))
	if err == nil {
		f.Collations, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (CollationUse, error) {
			var c CollationUse
			err := r.Scan(&c.Name, &c.Provider, &c.Version, &c.Indexes)
			return c, err
		})
	}
	if err != nil {
		return f, fmt.Errorf("list the collations of indexes: %w", err)
	}
	return f, nil
}

// GreenFacts is what preflight reads on green.
type GreenFacts struct {
	Settings   ReplicationSettings
	Privileges Privileges
	// Extensions are installed; Available can be installed (default version).
	Extensions, Available map[string]string
	// SlowApply are tables each replicated UPDATE/DELETE will scan (PG16+).
	SlowApply []Rel
	// Collations are the versions green's libraries give blue's collations
	// (absent: green has no such collation).
	Collations map[string]string
}

// ReadGreen runs GreenReads on pool, in order; collations are blue's.
func ReadGreen(ctx context.Context, pool *pgxpool.Pool, p PreflightParams, collations []string) (GreenFacts, error) {
	var f GreenFacts
	var err error
	if f.Settings, err = ReadReplicationSettings(ctx, pool); err != nil {
		return f, err
	}
	if f.Privileges, err = readPrivileges(ctx, pool); err != nil {
		return f, err
	}
	if f.Extensions, err = readPairs(ctx, pool, ExtensionsQuery); err != nil {
		return f, fmt.Errorf("list extensions: %w", err)
	}
	if f.Available, err = readPairs(ctx, pool, AvailableExtensionsQuery); err != nil {
		return f, fmt.Errorf("list available extensions: %w", err)
	}
	if f.Settings.VersionNum >= 160000 {
		if f.SlowApply, err = FullIdentityWithoutIndex(ctx, pool, p.Schemas); err != nil {
			return f, err
		}
	}
	if f.Collations, err = readPairs(ctx, pool, collationVersionsSQL(f.Settings.VersionNum), collations); err != nil {
		return f, fmt.Errorf("read collation versions: %w", err)
	}
	return f, nil
}

func readPrivileges(ctx context.Context, pool *pgxpool.Pool) (Privileges, error) {
	var p Privileges
	err := pool.QueryRow(ctx, PrivilegesQuery).Scan(&p.User, &p.Superuser, &p.CreateRole, &p.Replication,
		&p.RDSSuperuser, &p.RDSReplication, &p.CreateSubscription, &p.CreateOnDatabase, &p.Database)
	if err != nil {
		return p, fmt.Errorf("read the privileges of the connected user: %w", err)
	}
	return p, nil
}

// readPairs reads a query of (name, value) rows into a map.
func readPairs(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) (map[string]string, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// TryLogin connects once with conninfo (which may hold a password: it is
// never shown) and closes: does this role log in, from this host?
func TryLogin(ctx context.Context, conninfo string, timeout time.Duration) error {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return fmt.Errorf("parse the connection string: %w", err)
	}
	if timeout > 0 {
		cfg.ConnectTimeout = timeout
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// IsConnectError reports whether err is about connecting: the server not
// reached (network, DNS, refused, timed out), or the login refused
// (pg_hba.conf, password, SQLSTATE classes 08 and 28). Only those errors
// deserve a hint about pg_hba.conf and the password.
func IsConnectError(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "28")
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// IsAuthError reports whether err is a login the server refused: wrong
// password (28P01) or no pg_hba.conf entry / role may not log in (28000).
func IsAuthError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "28")
}
