package steps

import (
	"fmt"
	"strings"
)

// The plans of the cutover and the rollback: the statements pg.Cutover and
// pg.Rollback run, in their order, with the configuration's names.

func (c *Config) bouncerNames() string {
	var names []string
	for _, b := range c.Cutover.PgBouncer {
		names = append(names, orPlaceholder(b.Name, b.Ini))
	}
	return strings.Join(names, ", ")
}

func (c *Config) bouncerDatabase() string {
	if len(c.Cutover.PgBouncer) > 0 && c.Cutover.PgBouncer[0].Database != "" {
		return c.Cutover.PgBouncer[0].Database
	}
	return "<database>"
}

func (c *Config) appRoleList() string {
	if len(c.AppRoles) == 0 {
		return "<application roles>"
	}
	q := make([]string, len(c.AppRoles))
	for i, r := range c.AppRoles {
		q[i] = ident(r)
	}
	return strings.Join(q, ", ")
}

func (c *Config) firstAppRole() string {
	if len(c.AppRoles) == 0 {
		return "<the first application role>"
	}
	return c.AppRoles[0]
}

func (c *Config) subscriptionList() string {
	q := make([]string, len(c.Publications))
	for i, p := range c.Publications {
		q[i] = ident(p.Name)
	}
	return strings.Join(q, ", ")
}

const (
	planFlush = "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(true, 'pgbluegreen', ''); COMMIT  -- flush the WAL, wake the walsenders"
	planProbe = "CREATE TEMP TABLE pgbg_probe ON COMMIT DROP AS SELECT 1 AS x  -- the probe write"
)

// stopWritesPlan is how a method stops the application's writes on from.
func stopWritesPlan(c *Config, from Target) []Action {
	db := c.bouncerDatabase()
	switch c.Cutover.Method {
	case "pgbouncer":
		return []Action{{Target: PgBouncer, Kind: "sql", Text: fmt.Sprintf("PAUSE %s  -- on every PgBouncer in parallel (%s); a probe client writes through PgBouncer every 10 ms to measure the stall", db, c.bouncerNames())}}
	case "nologin":
		return []Action{
			sql(from, "ALTER ROLE <role> NOLOGIN  -- every role that can write: %s and any login role owning or allowed to change a table (the replication role and superusers excepted)", c.appRoleList()),
			sql(from, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = ANY(<those roles>)  -- then wait until they are gone"),
		}
	default:
		return []Action{
			sql(from, "ALTER DATABASE <db> SET default_transaction_read_only = on"),
			sql(from, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = current_database()  -- except the cutover's own sessions"),
			sql(from, "%s  -- on a new session: must fail with 25006 read_only_sql_transaction", planProbe),
		}
	}
}

// drainPlan waits for the feed from -> to, reading sequences meanwhile.
func drainPlan(c *Config, from, to Target, slots string) []Action {
	return []Action{
		sql(from, "%s", planFlush),
		sql(from, "SELECT pg_current_wal_lsn()  -- the drain target"),
		sql(from, "SELECT bool_and(confirmed_flush_lsn >= <target>) FROM pg_replication_slots WHERE slot_name = ANY('{%s}')  -- every ms, flushing %s's then %s's WAL between polls; past %s: abort", slots, to, from, c.Cutover.DrainTimeout),
		sql(from, "SELECT schemaname, sequencename, pg_sequence_last_value(...), increment_by FROM pg_sequences  -- while draining; never-called ones read from the sequence itself"),
	}
}

// switchPlan moves the traffic to to and checks it.
func switchPlan(c *Config, to Target) []Action {
	db := c.bouncerDatabase()
	out := []Action{sql(to, "ALTER ROLE <role> LOGIN  -- for %s where they cannot log in; ALTER DATABASE <db> RESET default_transaction_read_only where a readonly cutover set it", c.appRoleList())}
	if c.Cutover.Method != "pgbouncer" {
		out = append(out, sql(to, "%s  -- on a new session: must succeed", planProbe))
		return append(out, Action{Target: Operator, Kind: "operator", Text: fmt.Sprintf("switch the application's traffic to %s: the switch-traffic step (secret, SSM parameter, DNS) or by hand", to)})
	}
	return append(out,
		Action{Target: PgBouncer, Kind: "command", Text: fmt.Sprintf("rewrite the `%s =` line of each ini's [databases] to %s's host, port and dbname (temp file + rename; old file kept as .pgbg-backup)", db, to)},
		Action{Target: PgBouncer, Kind: "sql", Text: "RELOAD; WAIT_CLOSE " + db},
		Action{Target: PgBouncer, Kind: "sql", Text: "SET server_login_retry = 0; RESUME " + db + "  -- a PAUSE that cut a server login short would otherwise hold every client for server_login_retry; the old value is SET back after the check below"},
		Action{Target: PgBouncer, Kind: "sql", Text: fmt.Sprintf("SHOW DATABASES; SELECT version() through PgBouncer as %s  -- must be %s's, and the ini on disk must say %s", c.firstAppRole(), to, to)},
		Action{Target: PgBouncer, Kind: "sql", Text: planProbe + " through PgBouncer"},
	)
}

func undoNote(c *Config, from Target) Action {
	what := "the writes are let through again on " + string(from)
	if c.Cutover.Method == "pgbouncer" {
		what = "RESUME on " + string(from) + ", the ini restored and RELOADed, the effective target verified to be " + string(from)
	}
	return note(from, "any failure before the switch undoes what was done, in reverse: %s; the report says which sub-step failed", what)
}

func cutoverPlan(e *Env) []Action {
	c := e.Config
	rev := reverseReplication
	out := []Action{
		note(BlueGreen, "prechecks, each reported; if one fails nothing is touched: lag < %d bytes; every subscription applying with no error and every table ready; sequences exist on green and none is ahead there; green can host the reverse replication (wal_level, a free slot and walsender, role %s with REPLICATION)", c.Cutover.MaxLagBytes, ident(c.Replication.Role)),
	}
	if c.Cutover.Method == "pgbouncer" {
		out = append(out, note(PgBouncer, "prechecks per PgBouncer: database %s points at blue (SHOW DATABASES and the ini), pool_mode = transaction, not paused, SELECT version() through it is blue's", c.bouncerDatabase()))
	}
	out = append(out,
		sql(Green, "CREATE PUBLICATION %s FOR ALL TABLES", ident(rev)),
		sql(Blue, "CREATE SUBSCRIPTION %s CONNECTION 'host=<green> port=<port> dbname=<db> user=%s password=********' PUBLICATION %s WITH (copy_data = false, create_slot = false, enabled = false, connect = true, slot_name = %s)  -- built server-side, statement logging off; before writes stop",
			ident(rev), c.Replication.Role, ident(rev), quoteLiteral(rev)),
	)
	out = append(out, sql(Green, "setval every sequence from blue's values (first pass, before writes stop: the pass inside the pause then sets only what moved)"))
	out = append(out, stopWritesPlan(c, Blue)...)
	out = append(out, drainPlan(c, Blue, Green, strings.Join(c.publicationNames(), ","))...)
	out = append(out,
		sql(Green, "ALTER SUBSCRIPTION %s DISABLE; SELECT pg_terminate_backend(pid) FROM pg_stat_subscription WHERE subname = ANY(...)  -- blue -> green stops", c.subscriptionList()),
		sql(Green, "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')  -- after the drain: it holds green's writes only", quoteLiteral(rev)),
		sql(Blue, "ALTER SUBSCRIPTION %s ENABLE  -- green -> blue starts", ident(rev)),
		sql(Green, "BEGIN READ WRITE; SELECT setval(seq, v + margin, called) FROM unnest($1, $2, $3, $4, $5) joined to pg_namespace, pg_class, pg_sequence by exact name; COMMIT  -- every sequence that moved since the first pass, one round trip per session (margin %d)", c.Cutover.SequenceMargin),
	)
	out = append(out, switchPlan(c, Green)...)
	out = append(out, undoNote(c, Blue),
		note(BlueGreen, "recorded: %s (the report, JSON and Markdown), %s; a second cutover is refused", CutoverReportKey, CutoverDoneAtKey))
	return out
}

func rollbackPlan(e *Env) []Action {
	c := e.Config
	rev := reverseReplication
	out := []Action{
		note(BlueGreen, "refused unless a cutover is in force (%s recorded). Prechecks as for the cutover, reversed: green -> blue lag < %d bytes, the subscription %s on blue applying, blue's slots kept and green's subscriptions disabled", CutoverDoneAtKey, c.Cutover.MaxLagBytes, ident(rev)),
		sql(Blue, "%s; SELECT pg_replication_slot_advance(slot, pg_current_wal_lsn()) FROM each of %s  -- skip what the reverse feed wrote (first pass, before writes stop; a slot advances only over flushed WAL)", planFlush, c.subscriptionList()),
		sql(Blue, "setval every sequence from green's values (first pass, before writes stop)"),
	}
	out = append(out, stopWritesPlan(c, Green)...)
	out = append(out, drainPlan(c, Green, Blue, rev)...)
	out = append(out,
		sql(Blue, "ALTER SUBSCRIPTION %s DISABLE; terminate its apply worker  -- green -> blue stops", ident(rev)),
		sql(Blue, "%s; SELECT pg_replication_slot_advance(slot, pg_current_wal_lsn()) FROM each of %s  -- must pass the flush marker", planFlush, c.subscriptionList()),
		sql(Green, "ALTER SUBSCRIPTION %s ENABLE  -- blue -> green starts again", c.subscriptionList()),
		sql(Blue, "setval, in one statement per session, every sequence that moved on green since the first pass (margin %d)", c.Cutover.SequenceMargin),
	)
	out = append(out, switchPlan(c, Blue)...)
	out = append(out,
		sql(BlueGreen, "ALTER SUBSCRIPTION %s SET (slot_name = NONE); DROP SUBSCRIPTION %s (blue); pg_drop_replication_slot(%s), DROP PUBLICATION %s (green)  -- after the switch", ident(rev), ident(rev), quoteLiteral(rev), ident(rev)),
		undoNote(c, Green),
		note(BlueGreen, "recorded: %s, %s", RollbackReportKey, RollbackDoneAtKey))
	return out
}
