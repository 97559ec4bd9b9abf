package steps

import (
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Strategy-membership lists used by the catalog.
var (
	cloneStrategies = []string{"aurora-clone", "rds-snapshot", "clone"}
	awsStrategies   = []string{"aurora-clone", "rds-snapshot"}
)

// ident quotes a possibly schema-qualified name the way pgx does.
func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// tableIdent quotes a table name from the configuration: schema.table,
// where either part may be double-quoted as in SQL (public."OrderItems").
func tableIdent(qualified string) string { return ident(SplitQualified(qualified)...) }

// SplitQualified splits a possibly quoted, possibly schema-qualified name
// into its unquoted parts: `public."Order.Items"` -> [public Order.Items].
func SplitQualified(name string) []string {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(name); i++ {
		ch := name[i]
		switch {
		case ch == '"' && quoted && i+1 < len(name) && name[i+1] == '"':
			cur.WriteByte('"')
			i++
		case ch == '"':
			quoted = !quoted
		case ch == '.' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(ch)
		}
	}
	return append(parts, cur.String())
}

// slotName is the slot of a publication; the subscription has the same name.
func slotName(pub string) string { return pub }

func sql(t Target, text string, args ...any) Action {
	return Action{Target: t, Kind: "sql", Text: fmt.Sprintf(text, args...)}
}

func note(t Target, text string, args ...any) Action {
	return Action{Target: t, Kind: "note", Text: fmt.Sprintf(text, args...)}
}

// publicationTables renders the FOR clause of one publication.
func (c *Config) publicationTables(p Publication) string {
	if len(p.Tables) > 0 {
		q := make([]string, len(p.Tables))
		for i, t := range p.Tables {
			q[i] = tableIdent(t)
		}
		return "FOR TABLE " + strings.Join(q, ", ")
	}
	for _, other := range c.Publications {
		if len(other.Tables) > 0 {
			return "FOR TABLE <every table of schemas " + strings.Join(c.Schemas, ", ") + " not listed in another publication>"
		}
	}
	return "FOR ALL TABLES"
}

// subscriptionConninfo is the connection string green uses to reach blue,
// with the password shown as a placeholder (it is read at run time only).
func (c *Config) subscriptionConninfo() string {
	if c.Replication.BlueConninfo != "" {
		return c.Replication.BlueConninfo + " user=" + c.Replication.Role + " password=********"
	}
	host, port, db := "<blue host>", "5432", "<blue db>"
	if pc, err := pgconn.ParseConfig(c.Blue.Conninfo); err == nil {
		host, port, db = pc.Host, fmt.Sprint(pc.Port), pc.Database
	}
	return fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=********", host, port, db, c.Replication.Role)
}

func (c *Config) copyData() bool { return c.Strategy == "copy" }

// catalog returns every step of RUNBOOK.md in runbook order. Strategy picks
// the ones that belong to a strategy.
func catalog() []*Step {
	return []*Step{
		// Prepare
		{ID: "preflight", Phase: PhasePrepare, Target: BlueGreen, Title: "Preflight checks",
			Why:    "Read-only checks of versions, settings, roles and tables, each with its fix, before anything is changed.",
			Source: "000, 001 §6", Issue: 4, Records: []string{"blue_version", "green_version"},
			Plan: func(e *Env) []Action {
				return []Action{
					sql(BlueGreen, "SELECT current_setting('server_version_num'), current_setting('wal_level'), current_setting('max_replication_slots'), current_setting('max_wal_senders'), current_setting('max_logical_replication_workers'), current_setting('max_worker_processes')"),
					sql(Blue, "SELECT rolreplication FROM pg_roles WHERE rolname = %s", quoteLiteral(e.Config.Replication.Role)),
					sql(Blue, "-- tables with neither a primary key nor a replica identity\nSELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p') AND n.nspname = ANY($1) AND c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)"),
					sql(Blue, "SELECT oid::regclass FROM pg_class WHERE relpersistence = 'u' AND relkind = 'r'  -- unlogged: not replicated"),
					sql(Blue, "SELECT count(*) FROM pg_largeobject_metadata  -- large objects: not replicated"),
					sql(Blue, "SELECT extname, extversion FROM pg_extension"),
					sql(Blue, "SELECT count(*) FROM pg_sequences"),
				}
			}},
		{ID: "enable-logical-replication", Phase: PhasePrepare, Target: AWSOrOperator, Title: "Enable logical replication on blue",
			Why:    "Logical decoding needs wal_level=logical (RDS: rds.logical_replication=1) and room for slots and walsenders; changing it needs a restart.",
			Source: "000", Issue: 4, Destructive: true,
			Plan: func(e *Env) []Action {
				if e.Config.isAWS() {
					return awsPlanLogicalReplication(e)
				}
				return []Action{
					sql(Blue, "ALTER SYSTEM SET wal_level = 'logical'"),
					sql(Blue, "ALTER SYSTEM SET max_replication_slots = 25"),
					sql(Blue, "ALTER SYSTEM SET max_wal_senders = 25"),
					sql(Blue, "ALTER SYSTEM SET max_logical_replication_workers = 25"),
					sql(Blue, "ALTER SYSTEM SET max_worker_processes = 50"),
					{Target: Operator, Kind: "operator", Text: "restart blue (pg_ctl restart, or your service manager); the check reads the settings back"},
				}
			}},
		{ID: "create-replication-role", Phase: PhasePrepare, Target: Blue, Title: "Create the replication role",
			Why:    "Green's subscriptions connect to blue as a dedicated role with REPLICATION and SELECT on the replicated tables.",
			Source: "001 §1.1", Issue: 4,
			Plan: func(e *Env) []Action {
				r := ident(e.Config.Replication.Role)
				grant := "ALTER ROLE " + r + " REPLICATION"
				if e.Config.isAWS() {
					grant = "GRANT rds_replication TO " + r
				}
				out := []Action{
					sql(Blue, "BEGIN; SET LOCAL log_statement = 'none'; SET LOCAL log_min_duration_statement = -1"),
					sql(Blue, "SELECT set_config('pgbg.role', %s, true), set_config('pgbg.verifier', $1, true)  -- $1: a SCRAM-SHA-256 verifier computed here from the password in %s; the password never leaves pgbluegreen", quoteLiteral(e.Config.Replication.Role), e.Config.Replication.Password.describe()),
					sql(Blue, "DO $$ ... EXECUTE format('CREATE ROLE %%I LOGIN PASSWORD %%L' (or ALTER ROLE when it exists), current_setting('pgbg.role'), current_setting('pgbg.verifier')) $$  -- = CREATE ROLE %s LOGIN PASSWORD '********'", r),
					sql(Blue, "%s", grant),
					sql(Blue, "GRANT CONNECT ON DATABASE <blue db> TO %s", r),
				}
				for _, s := range e.Config.Schemas {
					out = append(out,
						sql(Blue, "GRANT USAGE ON SCHEMA %s TO %s", ident(s), r),
						sql(Blue, "GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s", ident(s), r))
				}
				return append(out, sql(Blue, "COMMIT"))
			}},
		{ID: "replica-identity-full", Phase: PhasePrepare, Target: Blue, Title: "Replica identity for tables without a primary key",
			Why:    "Once a table is published, every UPDATE/DELETE on a table with no replica identity fails on blue: set it before the publication exists.",
			Source: "000", Issue: 4, Records: []string{"replica_identity_full_tables"},
			Plan: func(e *Env) []Action {
				return []Action{
					sql(Blue, "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p') AND c.relpersistence = 'p' AND c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AND n.nspname = ANY('{%s}')", strings.Join(e.Config.Schemas, ",")),
					sql(Blue, "ALTER TABLE <schema>.<table> REPLICA IDENTITY FULL  -- for each; the list is recorded first"),
					note(Blue, "recorded: replica_identity_full_tables = %s", e.V("replica_identity_full_tables")),
				}
			}},

		// Anchor replication on blue
		{ID: "create-publications", Phase: PhaseAnchor, Target: Blue, Title: "Create publications",
			Why:    "The publication says what blue sends; it must exist before the slot, whose snapshot it is read at.",
			Source: "000, 001 §1.2, 002", Issue: 4,
			Plan: func(e *Env) []Action {
				out := []Action{note(Blue, "refused while a table to publish has neither a primary key nor a replica identity (run replica-identity-full)")}
				for _, p := range e.Config.Publications {
					out = append(out, sql(Blue, "CREATE PUBLICATION %s %s", ident(p.Name), e.Config.publicationTables(p)))
				}
				return out
			}},
		{ID: "create-slots", Phase: PhaseAnchor, Target: Blue, Title: "Create logical replication slots",
			Why:    "The slot holds blue's WAL from this point until green consumes it; green's data must start at or after it.",
			Source: "000, 001 §1.3, 002", Issue: 4, Records: []string{"slot_lsn"},
			Plan: func(e *Env) []Action {
				out := []Action{note(Blue, "refused while a publication is missing (pgoutput reads publications as of the slot's snapshot)")}
				for _, p := range e.Config.Publications {
					out = append(out, sql(Blue, "SELECT lsn FROM pg_create_logical_replication_slot(%s, 'pgoutput')", quoteLiteral(slotName(p.Name))))
				}
				return append(out, note(Blue, "recorded: slot_lsn.<slot> per slot and slot_lsn = the highest = %s", e.V("slot_lsn")))
			}},

		// Provision green
		{ID: "clone-cluster", Phase: PhaseProvision, Target: AWSTarget, Title: "Clone blue's Aurora cluster",
			Why:    "A copy-on-write clone gives green blue's data without copying it, taken after the slot exists.",
			Source: "000, 002", Issue: 7, Strategies: []string{"aurora-clone"}, Records: []string{"green_endpoint"},
			Plan: awsPlanCloneCluster},
		{ID: "snapshot-blue", Phase: PhaseProvision, Target: AWSTarget, Title: "Snapshot blue",
			Why:    "The snapshot, taken after the slot exists, is green's starting data.",
			Source: "001 §2", Issue: 7, Strategies: []string{"rds-snapshot"}, Records: []string{"snapshot_id"},
			Plan: awsPlanSnapshot},
		{ID: "upgrade-snapshot", Phase: PhaseProvision, Target: AWSTarget, Title: "Upgrade the snapshot's engine version",
			Why:    "Restoring an upgraded snapshot gives green on the new major without touching blue.",
			Source: "001 §3", Issue: 7, Strategies: []string{"rds-snapshot"}, Needs: []string{"snapshot_id"},
			Plan: awsPlanUpgradeSnapshot},
		{ID: "restore-green", Phase: PhaseProvision, Target: AWSTarget, Title: "Restore green from the snapshot",
			Why:    "Green is a new instance restored from the upgraded snapshot.",
			Source: "001 §4", Issue: 7, Strategies: []string{"rds-snapshot"}, Needs: []string{"snapshot_id"}, Records: []string{"green_endpoint", "restore_time"},
			Plan: awsPlanRestore},
		{ID: "copy-schema", Phase: PhaseProvision, Target: BlueGreen, Title: "Copy the schema to green",
			Why:    "With the copy strategy green starts empty: the schema is copied, the data comes with the subscription's initial sync.",
			Source: "-", Issue: 4, Strategies: []string{"copy"},
			Plan: func(e *Env) []Action {
				return []Action{
					{Target: Blue, Kind: "command", Text: "pg_dump --schema-only --no-publications --no-subscriptions " + strings.Join(schemaFlags(e.Config.Schemas), " ") + " --extension=<each extension on blue> -d 'host=<blue> port=<port> dbname=<db> user=<user>'  (pg_dump from clone.green_bindir, else the newest on PATH or /usr/lib/postgresql/*/bin; password in PGPASSWORD)"},
					sql(Green, "SELECT r FROM unnest(<roles named by OWNER TO / GRANT / REVOKE in the dump>) r WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)  -- any missing: refused with the CREATE ROLE lines"),
					sql(Green, "BEGIN; <the dump, CREATE SCHEMA as IF NOT EXISTS, psql meta-commands dropped>; COMMIT  -- one transaction on a connection of its own"),
				}
			}},
		{ID: "clone-local", Phase: PhaseProvision, Target: Green, Title: "Clone blue with pg_basebackup and upgrade it",
			Why:    "The local twin of an Aurora clone + upgrade: a physical copy taken after the slot exists, recovered with blue's binaries, then pg_upgrade --link.",
			Source: "-", Issue: 4, Strategies: []string{"clone"}, Records: []string{"clone_redo_done"},
			Plan: clonePlan},
		{ID: "green-start-lsn", Phase: PhaseProvision, Target: Green, Title: "Record green's start LSN",
			Why:    "The exact point of blue's WAL green already holds: the subscription starts there. It must be greater than every slot LSN, or rows are lost.",
			Source: "000, 001 §7, 002", Issue: 4, Strategies: cloneStrategies, Needs: []string{"slot_lsn"}, Records: []string{"green_start_lsn"},
			Plan: func(e *Env) []Action {
				first := []Action{cloneSeedAction(e)}
				if e.Config.isAWS() {
					first = awsSeedPlan(e)
				}
				slots := sql(Blue, "SELECT slot_name, active, wal_status, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_type = 'logical'  -- each slot: exists, inactive, not lost, confirmed_flush_lsn <= seed")
				return append(first, slots,
					note(Green, "refused unless seed > every slot's creation LSN (slot_lsn = %s); recorded: green_start_lsn = %s", e.V("slot_lsn"), e.V("green_start_lsn")))
			}},

		// Prepare green
		{ID: "drop-cloned-replication", Phase: PhasePrepareGreen, Target: Green, Title: "Drop replication objects inherited by the clone",
			Why:    "The clone carries blue's publications (and on Aurora its slots); they must go before the upgrade and before subscribing.",
			Source: "000, 002", Issue: 4, Strategies: cloneStrategies, Needs: []string{"green_start_lsn"},
			Plan: func(e *Env) []Action {
				return []Action{
					sql(Green, "SELECT pubname FROM pg_publication  -- then DROP PUBLICATION <each> (every one came with the clone)"),
					sql(Green, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_type = 'logical'"),
					note(Green, "clone: already done on the clone before pg_upgrade (clone-local); this checks none is left"),
				}
			}},
		{ID: "upgrade-green", Phase: PhasePrepareGreen, Target: AWSTarget, Title: "Upgrade green to the new major version",
			Why:    "The clone is on blue's version: upgrade it in place, after the seed is captured and the inherited slots are gone.",
			Source: "000, 002", Issue: 7, Strategies: []string{"aurora-clone"}, Needs: []string{"green_start_lsn"},
			Plan: awsPlanUpgradeGreen},
		{ID: "create-green-readers", Phase: PhasePrepareGreen, Target: AWSTarget, Title: "Add readers to green (optional)",
			Why:    "Readers in green's cluster, so green matches blue's topology before the cutover.",
			Source: "000", Issue: 7, Strategies: []string{"aurora-clone"}, Optional: true,
			Plan: awsPlanReaders},
		{ID: "upgrade-extensions", Phase: PhasePrepareGreen, Target: Green, Title: "Upgrade extensions on green",
			Why:    "Extensions keep their old versions through an upgrade; bring each to the newest green offers.",
			Source: "000", Issue: 4, Records: []string{"extensions_upgraded"},
			Plan: func(e *Env) []Action {
				return []Action{
					sql(Green, "SELECT e.extname, e.extversion, a.default_version FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname WHERE e.extversion <> a.default_version"),
					sql(Green, "ALTER EXTENSION <name> UPDATE TO '<default_version>'  -- for each"),
					note(Green, "recorded: extensions_upgraded = %s", e.V("extensions_upgraded")),
				}
			}},
		{ID: "block-green-logins", Phase: PhasePrepareGreen, Target: Green, Title: "Block application logins on green",
			Why:    "Nothing may write to green before the cutover: a write there is split brain.",
			Source: "001 §5", Issue: 4,
			Plan: func(e *Env) []Action {
				var out []Action
				for _, r := range e.Config.AppRoles {
					out = append(out, sql(Green, "ALTER ROLE %s NOLOGIN", ident(r)))
				}
				if len(out) == 0 {
					out = append(out, note(Green, "no app_roles configured: nothing to block"))
				}
				return out
			}},
		{ID: "compare-schema", Phase: PhasePrepareGreen, Target: BlueGreen, Title: "Compare schemas",
			Why:    "Logical replication does not carry DDL: any difference in tables, columns, indexes or constraints breaks apply or the cutover.",
			Source: "001 §7", Issue: 4,
			Plan: func(e *Env) []Action {
				return []Action{sql(BlueGreen, "-- tables, columns (type, nullability), indexes, views, materialized views, constraints, sequences in schemas %s, compared ordered", strings.Join(e.Config.Schemas, ", "))}
			}},

		// Replicate
		{ID: "create-subscriptions", Phase: PhaseReplicate, Target: Green, Title: "Create subscriptions (disabled)",
			Why:    "One subscription per publication, on the existing slot, disabled until its origin is set; the password never reaches green's log.",
			Source: "000, 001 §5.1, 002", Issue: 4,
			Plan: func(e *Env) []Action {
				out := []Action{note(Green, "refused while a slot is missing on blue")}
				for _, p := range e.Config.Publications {
					out = append(out,
						sql(Green, "BEGIN; SET LOCAL log_statement = 'none'; SET LOCAL log_min_duration_statement = -1; SET LOCAL log_parameter_max_length_on_error = 0"),
						sql(Green, "SELECT set_config('pgbg.conninfo', $1, true), ...  -- the connection string with the password, as a bind parameter only"),
						sql(Green, "DO $$ ... EXECUTE format('CREATE SUBSCRIPTION %%I CONNECTION %%L PUBLICATION %%I WITH (...)', ...) $$  -- quoted by the server; errors re-raised without the statement"),
						sql(Green, "-- = CREATE SUBSCRIPTION %s CONNECTION '%s' PUBLICATION %s WITH (copy_data = %t, create_slot = false, enabled = false, connect = true, slot_name = %s)",
							ident(p.Name), e.Config.subscriptionConninfo(), ident(p.Name), e.Config.copyData(), quoteLiteral(slotName(p.Name))),
						sql(Green, "COMMIT"))
				}
				return out
			}},
		{ID: "advance-origins", Phase: PhaseReplicate, Target: Green, Title: "Advance replication origins to the seed",
			Why:    "Green already holds blue's data up to the seed: start each subscription exactly there, or rows are duplicated or lost.",
			Source: "000, 001 §8, 002", Issue: 4, Strategies: cloneStrategies, Needs: []string{"green_start_lsn"},
			Plan: func(e *Env) []Action {
				out := []Action{note(Green, "refused unless the seed still holds against blue's slots (exists, inactive, not lost, seed > slot_lsn, confirmed_flush_lsn <= seed) and each subscription exists, is disabled and its origin is not past the seed")}
				for _, p := range e.Config.Publications {
					out = append(out, sql(Green, "SELECT pg_replication_origin_advance('pg_' || oid, '%s') FROM pg_subscription WHERE subname = %s AND NOT subenabled", e.V("green_start_lsn"), quoteLiteral(p.Name)))
				}
				return append(out, sql(Green, "SELECT external_id, remote_lsn FROM pg_replication_origin_status  -- each must equal %s", e.V("green_start_lsn")))
			}},
		{ID: "enable-subscriptions", Phase: PhaseReplicate, Target: Green, Title: "Enable subscriptions",
			Why:    "Replication starts: green consumes the slots and catches up.",
			Source: "000, 001 §8, 002", Issue: 4,
			Plan: func(e *Env) []Action {
				var out []Action
				if e.Config.isCloneStrategy() {
					out = append(out,
						sql(Green, "SELECT remote_lsn >= '%s' FROM pg_replication_origin_status WHERE external_id = 'pg_' || <subscription oid>  -- refused unless the origin was advanced to the seed", e.V("green_start_lsn")),
						sql(Blue, "SELECT active, wal_status, confirmed_flush_lsn <= '%s' FROM pg_replication_slots WHERE slot_name = <slot>  -- refused unless inactive, not lost, not beyond the seed; seed > slot_lsn", e.V("green_start_lsn")))
				}
				for _, p := range e.Config.Publications {
					out = append(out, sql(Green, "ALTER SUBSCRIPTION %s ENABLE", ident(p.Name)))
				}
				return out
			}},
		{ID: "wait-catch-up", Phase: PhaseReplicate, Target: BlueGreen, Title: "Wait for green to catch up",
			Why:    "Every slot drained to a target LSN, every table's initial copy ready, and no apply errors.",
			Source: "000, 001 §9.1, 002", Issue: 4,
			Plan: func(e *Env) []Action {
				return []Action{
					sql(Blue, "SELECT pg_current_wal_lsn()  -- the target, once"),
					sql(Blue, "SELECT slot_name, pg_wal_lsn_diff(<target>, confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = ANY(<slots>)  -- every 500 ms"),
					sql(Green, "SELECT count(*) FILTER (WHERE srsubstate = 'r'), count(*) FROM pg_subscription_rel  -- and rows copied from pg_stat_progress_copy"),
					sql(Green, "SELECT subname, apply_error_count, sync_error_count FROM pg_stat_subscription_stats"),
					note(BlueGreen, "until every slot's confirmed_flush_lsn reaches blue's LSN taken at the start of the wait (timeout %s)", e.Config.Timeouts.LagWait),
				}
			}},
		{ID: "analyze-green", Phase: PhaseReplicate, Target: Green, Title: "Analyze green",
			Why:    "An upgraded or freshly loaded database has no planner statistics: without them the first queries after cutover are slow.",
			Source: "000, 001 §9.2, 002", Issue: 4,
			Plan: func(e *Env) []Action {
				return []Action{
					sql(Green, "SELECT now()  -- the start"),
					sql(Green, "SET statement_timeout = 0; ANALYZE <each table of %s>  -- one by one, logged; pg_stat_progress_analyze polled every 5 s", strings.Join(e.Config.Schemas, ", ")),
					sql(Green, "SELECT relname FROM pg_stat_all_tables WHERE schemaname = ANY($1) AND coalesce(greatest(last_analyze, last_autoanalyze), '-infinity') < <start>"),
				}
			}},
		{ID: "verify-data", Phase: PhaseReplicate, Target: BlueGreen, Title: "Verify data",
			Why: "Row counts per table, compared on blue and green at a drained point, before trusting green with traffic. " +
				"Counts only match while writes are quiet, so it is optional: it does not gate the cutover.",
			Source: "beyond the sources", Issue: 4, Optional: true,
			Plan: func(e *Env) []Action {
				return []Action{
					sql(Blue, "SELECT pg_current_wal_lsn()  -- then wait until every slot reaches it"),
					sql(BlueGreen, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT count(*) FROM <each table of %s>; COMMIT  -- with value verify_data_checksums = on, also an md5 of the rows; up to 3 attempts", strings.Join(e.Config.Schemas, ", ")),
				}
			}},

		// Cutover
		{ID: "cutover", Phase: PhaseCutover, Target: PgBouncer, Title: "Cut over to green",
			Why:    "Writes pause, green drains to blue's last LSN, sequences are synced, reverse replication is set up, traffic moves to green.",
			Source: "000, 001 §10-12, 002", Issue: 6, Destructive: true, Records: []string{CutoverReportKey, CutoverDoneAtKey},
			Plan: cutoverPlan},
		{ID: "rollback", Phase: PhaseCutover, Target: PgBouncer, Title: "Roll back to blue",
			Why:    "The cutover in reverse through the reverse replication, sequences included.",
			Source: "001 ROLLBACK", Issue: 6, Destructive: true, Optional: true, Needs: []string{CutoverDoneAtKey},
			Records: []string{RollbackReportKey, RollbackDoneAtKey},
			Plan:    rollbackPlan},
		{ID: "switch-traffic", Phase: PhaseCutover, Target: AWSTarget, Title: "Switch traffic to green (optional)",
			Why:    "The application finds its database in a secret, an SSM parameter or a DNS name: point each configured one at green.",
			Source: "000, 002", Issue: 7, Destructive: true, Optional: true, Records: []string{"traffic_switched_at"},
			Plan: switchTrafficPlan},

		// Cleanup
		{ID: "drop-subscriptions", Phase: PhaseCleanup, Target: BlueGreen, Title: "Drop subscriptions",
			Why:    "After this, a rollback is no longer possible: the reverse subscription on blue goes (with its slot on green, the primary now), then the subscriptions on green (with their slots on blue). A forgotten slot fills its server's disk with WAL. Refused while a cutover is paused or interrupted.",
			Source: "000", Issue: 4, Destructive: true,
			Plan: func(e *Env) []Action {
				rev := ident(reverseReplication)
				out := []Action{
					sql(Blue, "DROP SUBSCRIPTION IF EXISTS %s  -- the reverse feed; drops slot %s on green too", rev, quoteLiteral(reverseReplication)),
					note(Blue, "if blue cannot reach green: %s", strings.Join(pg.DropSubscriptionDetachedSQL(reverseReplication), "; ")),
					sql(Green, "SELECT pg_drop_replication_slot(%s)  -- only if it is still there", quoteLiteral(reverseReplication)),
				}
				for _, p := range e.Config.Publications {
					out = append(out, sql(Green, "DROP SUBSCRIPTION IF EXISTS %s  -- drops slot %s on blue too", ident(p.Name), quoteLiteral(slotName(p.Name))))
				}
				return out
			}},
		{ID: "drop-publications", Phase: PhaseCleanup, Target: BlueGreen, Title: "Drop publications",
			Why:    "The publications on blue and the reverse one on green go; then no logical slot may be left on blue or green. After this, a rollback is no longer possible.",
			Source: "000", Issue: 4, Destructive: true,
			Plan: func(e *Env) []Action {
				var out []Action
				for _, p := range e.Config.Publications {
					out = append(out, sql(Blue, "DROP PUBLICATION IF EXISTS %s", ident(p.Name)))
				}
				return append(out,
					sql(Green, "DROP PUBLICATION IF EXISTS %s", ident(reverseReplication)),
					sql(Blue, "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'  -- must be empty"),
					sql(Green, "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'  -- must be empty"))
			}},
		{ID: "revert-replica-identity", Phase: PhaseCleanup, Target: Green, Title: "Revert replica identity",
			Why:    "REPLICA IDENTITY FULL makes every update log the whole row: put back the default on the tables it was set for.",
			Source: "000", Issue: 4, Needs: []string{"replica_identity_full_tables"},
			Plan: func(e *Env) []Action {
				return []Action{sql(Green, "ALTER TABLE <each of %s> REPLICA IDENTITY DEFAULT", e.V("replica_identity_full_tables"))}
			}},
		{ID: "decommission", Phase: PhaseCleanup, Target: Operator, Title: "Decommission blue",
			Why:    "A checklist: final snapshot and deletion of blue, PgBouncer, jumpbox and security groups. Never automatic.",
			Source: "000", Issue: 7, Destructive: true, Records: []string{"final_snapshot_id", "decommission_confirmed"},
			Plan: decommissionPlan},
	}
}

// Strategy returns the ordered steps of one strategy.
func Strategy(name string) []*Step {
	var out []*Step
	for _, s := range catalog() {
		if s.In(name) {
			if impl, ok := implementations[s.ID]; ok {
				impl(s)
			}
			if impl, ok := awsImplementations[s.ID]; ok && slices.Contains(awsStrategies, name) {
				impl(s)
			}
			out = append(out, s)
		}
	}
	return out
}

// implementations attach Check and Run to catalog steps by ID; each
// implementation file registers its steps in init.
var implementations = map[string]func(*Step){}

func schemaFlags(schemas []string) []string {
	out := make([]string, len(schemas))
	for i, s := range schemas {
		out[i] = "--schema=" + ident(s)
	}
	return out
}

func orPlaceholder(v, what string) string {
	if v == "" {
		return "<" + what + ">"
	}
	return v
}

// quoteLiteral quotes a SQL string literal for display in plans. Statements
// actually run take values as parameters.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (c *Config) isAWS() bool {
	for _, s := range awsStrategies {
		if c.Strategy == s {
			return true
		}
	}
	return false
}

func (p PasswordSource) describe() string {
	switch {
	case p.Env != "":
		return "$" + p.Env
	case p.SecretARN != "":
		return p.SecretARN
	case p.PgpassFile != "":
		return "passfile " + p.PgpassFile
	default:
		return "~/.pgpass"
	}
}
