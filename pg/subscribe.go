package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/state"
)

// SubscriptionParams create one disabled subscription on an existing slot:
// create-subscriptions on green, the cutover's reverse subscription on blue.
type SubscriptionParams struct {
	// On is the server the subscription is created on: "green" or "blue".
	On          string
	Name        string
	Publication string
	Slot        string
	// Conninfo is how the subscriber reaches the publisher, password
	// included. It is sent as a Secret bind parameter only: never in a
	// statement's text, the journal or the server's log. A plan may leave
	// it empty: it renders as '********' either way.
	Conninfo string
	// ShownConninfo is Conninfo as plans show it, without the password;
	// empty: Conninfo with its password redacted.
	ShownConninfo string
	// CopyData is true for the copy strategy (initial sync), false for clones.
	CopyData bool
}

// createSubscriptionDO builds CREATE SUBSCRIPTION on the server from
// transaction-local settings, so the connection string (with the password)
// is quoted by PostgreSQL itself (format %L) and never appears in a
// statement's text: not in green's log, not in pg_stat_activity, not in the
// journal. An error is re-raised from the block, so its CONTEXT names the
// block and not the inner statement (which holds the password).
// create_slot = false is what lets CREATE SUBSCRIPTION run inside a
// transaction (and so inside DO).
const createSubscriptionDO = `DO $pgbg$
DECLARE st text; msg text; det text; hnt text;
BEGIN
  EXECUTE format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (copy_data = %s, create_slot = false, enabled = false, connect = true, slot_name = %L)',
    current_setting('pgbg.sub_name'), current_setting('pgbg.conninfo'), current_setting('pgbg.publication'),
    current_setting('pgbg.copy_data'), current_setting('pgbg.slot'));
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  RAISE EXCEPTION USING ERRCODE = st, MESSAGE = msg, DETAIL = det, HINT = hnt;
END
$pgbg$`

// Statements are what Exec runs, in one transaction: statement logging off
// for the transaction, the parameters as transaction-local settings (the
// connection string as a Secret), then the DO block that creates the
// subscription from them. The block's note is the CREATE SUBSCRIPTION it
// amounts to, password redacted.
func (p SubscriptionParams) Statements() []Stmt {
	on := p.On
	return InTx(on, append(noStatementLogStmts(on),
		Stmt{On: on, SQL: "SELECT set_config('pgbg.sub_name', $1, true), set_config('pgbg.conninfo', $2, true), set_config('pgbg.publication', $3, true), set_config('pgbg.copy_data', $4, true), set_config('pgbg.slot', $5, true)",
			Args: []any{p.Name, Secret(p.Conninfo), p.Publication, fmt.Sprint(p.CopyData), p.Slot}},
		Stmt{On: on, SQL: createSubscriptionDO, Note: "= " + p.Equivalent()}))
}

// Equivalent is the CREATE SUBSCRIPTION the statements amount to, with the
// password redacted: what a plan says in words.
func (p SubscriptionParams) Equivalent() string {
	shown := p.ShownConninfo
	if shown == "" {
		shown = state.Redact(p.Conninfo)
	}
	return fmt.Sprintf("CREATE SUBSCRIPTION %s CONNECTION %s PUBLICATION %s WITH (copy_data = %t, create_slot = false, enabled = false, connect = true, slot_name = %s)",
		Ident(p.Name), QuoteLiteral(shown), Ident(p.Publication), p.CopyData, QuoteLiteral(p.Slot))
}

// Exec runs the statements in one transaction on a connection of pool's.
func (p SubscriptionParams) Exec(ctx context.Context, pool *pgxpool.Pool) error {
	if err := ExecTx(ctx, pool, p.Statements()); err != nil {
		return fmt.Errorf("create subscription %s: %w", p.Name, err)
	}
	return nil
}

// CreateSubscription creates one disabled subscription on an existing slot,
// in one transaction with statement logging off: p.Exec.
func CreateSubscription(ctx context.Context, pool *pgxpool.Pool, p SubscriptionParams) error {
	return p.Exec(ctx, pool)
}

// EnableParams enable subscriptions: ALTER SUBSCRIPTION ... ENABLE.
type EnableParams struct {
	On    string
	Names []string
}

// Statements are what Exec runs: one ALTER SUBSCRIPTION per name.
func (p EnableParams) Statements() []Stmt {
	return eachStmt(p.On, p.Names, EnableSubscriptionStmt)
}

// Exec runs the statements in order.
func (p EnableParams) Exec(ctx context.Context, db Execer) error {
	return ExecAll(ctx, db, p.Statements())
}

// QuoteConninfoValue quotes a value for a libpq connection string: single
// quotes, with backslash and quote escaped by a backslash.
func QuoteConninfoValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// SubscriptionInfo is one subscription's definition on green.
type SubscriptionInfo struct {
	Exists  bool
	Enabled bool
	OID     uint32
	Slot    string
	// Publications are the publications it subscribes to.
	Publications []string
}

// ReadSubscription reads one subscription of the current database.
func ReadSubscription(ctx context.Context, pool *pgxpool.Pool, name string) (SubscriptionInfo, error) {
	var s SubscriptionInfo
	err := pool.QueryRow(ctx, `
SELECT oid, subenabled, coalesce(subslotname::text, ''), subpublications::text[]
FROM pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, name).
		Scan(&s.OID, &s.Enabled, &s.Slot, &s.Publications)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read subscription %s: %w", name, err)
	}
	s.Exists = true
	return s, nil
}

// OriginProgress returns how far a subscription's replication origin
// ('pg_' || oid) has been advanced: its remote_lsn, "" when it has none.
func OriginProgress(ctx context.Context, pool *pgxpool.Pool, subOID uint32) (string, error) {
	var lsn string
	err := pool.QueryRow(ctx, `
SELECT coalesce((SELECT s.remote_lsn::text FROM pg_replication_origin_status s WHERE s.external_id = 'pg_' || $1::text), '')`,
		fmt.Sprint(subOID)).Scan(&lsn)
	if err != nil {
		return "", fmt.Errorf("read the replication origin of subscription oid %d: %w", subOID, err)
	}
	if lsn == "0/0" {
		lsn = ""
	}
	return lsn, nil
}

// LSNAtLeast reports whether LSN a >= b, compared by the server.
func LSNAtLeast(ctx context.Context, pool *pgxpool.Pool, a, b string) (bool, error) {
	var ok bool
	if err := pool.QueryRow(ctx, "SELECT $1::pg_lsn >= $2::pg_lsn", a, b).Scan(&ok); err != nil {
		return false, fmt.Errorf("compare LSN %s with %s: %w", a, b, err)
	}
	return ok, nil
}

// CopyProgress is the initial sync's state on green.
type CopyProgress struct {
	Ready, Total int
	// RowsCopying is the rows copied so far by the table syncs in progress
	// (pg_stat_progress_copy, PG14+; 0 when unavailable).
	RowsCopying int64
	// NotReady names up to 5 tables not ready yet.
	NotReady []string
}

// ReadCopyProgress reads pg_subscription_rel for the named subscriptions.
func ReadCopyProgress(ctx context.Context, pool *pgxpool.Pool, subs []string) (CopyProgress, error) {
	var p CopyProgress
	err := pool.QueryRow(ctx, `
SELECT count(*) FILTER (WHERE r.srsubstate = 'r')::int, count(*)::int,
       coalesce((array_agg(r.srrelid::regclass::text ORDER BY r.srrelid) FILTER (WHERE r.srsubstate <> 'r'))[1:5], '{}')
FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
WHERE s.subname = ANY($1::text[])`, subs).Scan(&p.Ready, &p.Total, &p.NotReady)
	if err != nil {
		return p, fmt.Errorf("read the initial sync's progress: %w", err)
	}
	// Best effort: the view exists from PG14 and may be empty.
	_ = pool.QueryRow(ctx, `SELECT coalesce(sum(tuples_processed), 0)::bigint FROM pg_stat_progress_copy WHERE command = 'COPY FROM'`).Scan(&p.RowsCopying)
	return p, nil
}
