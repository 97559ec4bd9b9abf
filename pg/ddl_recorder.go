package pg

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The DDL recorder: logical replication does not carry DDL, and the drift
// guard (drift.go) says THAT the schemas differ; where blue allows event
// triggers, this records on blue WHAT ran and when, so the screen and
// `status` can say "ALTER TABLE public.accounts at 14:02:11 by deploy".
//
// Everything lives in one schema of the program's own, RecorderSchema,
// which never counts as the user's (userSchemas leaves it out), and the
// log is UNLOGGED: a FOR ALL TABLES publication never publishes an unlogged
// table, so the log never reaches green.

// RecorderSchema is the program's own schema on blue, holding the DDL log
// and the event trigger's function; never compared, copied or published.
const RecorderSchema = "pgbluegreen"

// RecorderTrigger is the event trigger's name.
const RecorderTrigger = "pgbg_ddl_log"

const (
	recorderTable    = RecorderSchema + ".ddl_log"
	recorderFunction = RecorderSchema + ".record_ddl()"
)

// recorderFunctionSQL inserts one row per command of the DDL statement
// (pg_event_trigger_ddl_commands), or one naming the statement's tag when
// it lists none (DROP ...). SECURITY DEFINER with a fixed search_path, so
// any role running DDL is recorded without being granted the log; the
// session user is the one recorded. A statement that may hold a password
// (a subscription's connection string, a user mapping) is not copied into
// the log. A failure to record never fails the user's DDL: it is a warning.
const recorderFunctionSQL = `CREATE OR REPLACE FUNCTION ` + recorderFunction + ` RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  n int := 0;
  q text := current_query();
BEGIN
  IF TG_TAG LIKE '%SUBSCRIPTION' OR TG_TAG LIKE '%USER MAPPING' OR TG_TAG LIKE '%SERVER' THEN
    q := '(not recorded: it may hold a password)';
  END IF;
  FOR r IN SELECT command_tag, object_identity FROM pg_event_trigger_ddl_commands() LOOP
    INSERT INTO ` + recorderTable + ` (username, command_tag, object_identity, query)
    VALUES (session_user, r.command_tag, r.object_identity, q);
    n := n + 1;
  END LOOP;
  IF n = 0 THEN
    INSERT INTO ` + recorderTable + ` (username, command_tag, object_identity, query)
    VALUES (session_user, TG_TAG, NULL, q);
  END IF;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'pgbluegreen: this DDL was not recorded: %', SQLERRM;
END
$$`

// DDLRecorderParams installs the recorder on blue, in one transaction: the
// schema, the UNLOGGED log, the function and the event trigger (dropped
// first if there, so a rerun replaces it).
type DDLRecorderParams struct {
	// On is the server: "blue".
	On string
}

// Statements are what Exec runs, BEGIN and COMMIT included.
func (p DDLRecorderParams) Statements() []Stmt {
	return InTx(p.On, []Stmt{
		{On: p.On, SQL: "CREATE SCHEMA IF NOT EXISTS " + RecorderSchema},
		{On: p.On, SQL: "CREATE UNLOGGED TABLE IF NOT EXISTS " + recorderTable +
			" (at timestamptz NOT NULL DEFAULT clock_timestamp(), username text, command_tag text, object_identity text, query text)",
			Note: "UNLOGGED: never published, so never sent to green"},
		{On: p.On, SQL: recorderFunctionSQL},
		{On: p.On, SQL: "DROP EVENT TRIGGER IF EXISTS " + RecorderTrigger},
		{On: p.On, SQL: "CREATE EVENT TRIGGER " + RecorderTrigger + " ON ddl_command_end EXECUTE FUNCTION " + recorderFunction},
	})
}

// Exec runs Statements in one transaction on db.
func (p DDLRecorderParams) Exec(ctx context.Context, db TxBeginner) error {
	return ExecTx(ctx, db, p.Statements())
}

// DropDDLRecorderParams removes the recorder, trigger first (so dropping
// the rest records nothing), in one transaction; every drop is IF EXISTS,
// so a rerun is a no-op. The schema is dropped without CASCADE: anything
// someone else put there stays, and the drop fails naming it.
type DropDDLRecorderParams struct {
	// On is the server: "blue".
	On string
}

// Statements are what Exec runs, BEGIN and COMMIT included.
func (p DropDDLRecorderParams) Statements() []Stmt {
	return InTx(p.On, []Stmt{
		{On: p.On, SQL: "DROP EVENT TRIGGER IF EXISTS " + RecorderTrigger},
		{On: p.On, SQL: "DROP FUNCTION IF EXISTS " + recorderFunction},
		{On: p.On, SQL: "DROP TABLE IF EXISTS " + recorderTable},
		{On: p.On, SQL: "DROP SCHEMA IF EXISTS " + RecorderSchema},
	})
}

// Exec runs Statements in one transaction on db.
func (p DropDDLRecorderParams) Exec(ctx context.Context, db TxBeginner) error {
	return ExecTx(ctx, db, p.Statements())
}

// TxBeginner starts a transaction: a pool or a connection.
type TxBeginner interface {
	Begin(context.Context) (pgx.Tx, error)
}

// recorderPartsQuery names each part of the recorder still on the server.
const recorderPartsQuery = `SELECT part FROM (
  SELECT 'event trigger ' || evtname::text FROM pg_event_trigger WHERE evtname = $1
  UNION ALL SELECT 'schema ' || nspname::text FROM pg_namespace WHERE nspname = $2
  UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $2
  UNION ALL SELECT 'table ' || c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $2 AND c.relkind = 'r'
) x(part) ORDER BY 1`

// DDLRecorderParts lists what of the recorder is on q's server ("event
// trigger pgbg_ddl_log", "schema pgbluegreen", ...): empty once removed.
func DDLRecorderParts(ctx context.Context, q reader) ([]string, error) {
	rows, err := q.Query(ctx, recorderPartsQuery, RecorderTrigger, RecorderSchema)
	if err != nil {
		return nil, fmt.Errorf("read the DDL recorder: %w", err)
	}
	parts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the DDL recorder: %w", err)
	}
	return parts, nil
}

// DDLRecorderInstalled reports whether the recorder's event trigger is on
// q's server and enabled.
func DDLRecorderInstalled(ctx context.Context, q reader) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = $1 AND evtenabled <> 'D')`, RecorderTrigger).Scan(&ok); err != nil {
		return false, fmt.Errorf("read the DDL recorder's event trigger: %w", err)
	}
	return ok, nil
}

// EventTriggerRights is who the session is and whether it may create an
// event trigger: a superuser may; on RDS/Aurora a member of rds_superuser
// may too (try it: the provider decides).
type EventTriggerRights struct {
	User         string
	Superuser    bool
	RDSSuperuser bool
}

// ReadEventTriggerRights reads the session's EventTriggerRights.
func ReadEventTriggerRights(ctx context.Context, q reader) (EventTriggerRights, error) {
	var r EventTriggerRights
	err := q.QueryRow(ctx, `SELECT current_user::text, coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false),
  EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'rds_superuser' AND pg_has_role(current_user, r.oid, 'MEMBER'))`).Scan(&r.User, &r.Superuser, &r.RDSSuperuser)
	if err != nil {
		return r, fmt.Errorf("read whether blue allows event triggers: %w", err)
	}
	return r, nil
}

// DDLEntry is one command the recorder logged on blue.
type DDLEntry struct {
	At         time.Time `json:"at"`
	User       string    `json:"user"`
	CommandTag string    `json:"command_tag"`
	Object     string    `json:"object,omitempty"`
	Query      string    `json:"query"`
}

// FirstLine is the entry's query up to its first line break, trimmed.
func (e DDLEntry) FirstLine() string {
	q := strings.TrimSpace(e.Query)
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		q = strings.TrimSpace(q[:i]) + " …"
	}
	return q
}

// ReadDDLLog returns the newest n entries of the recorder's log, newest
// first: nil when the log is not there (the recorder not installed), an
// empty slice when it is there and empty.
func ReadDDLLog(ctx context.Context, q reader, n int) ([]DDLEntry, error) {
	var there bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, recorderTable).Scan(&there); err != nil {
		return nil, fmt.Errorf("read the DDL log: %w", err)
	}
	if !there {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT at, coalesce(username, ''), coalesce(command_tag, ''), coalesce(object_identity, ''), coalesce(query, '')
FROM `+recorderTable+` ORDER BY at DESC, ctid DESC LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("read the DDL log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DDLEntry, error) {
		var e DDLEntry
		err := r.Scan(&e.At, &e.User, &e.CommandTag, &e.Object, &e.Query)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the DDL log: %w", err)
	}
	if out == nil {
		out = []DDLEntry{} // there, and empty
	}
	return out, nil
}
