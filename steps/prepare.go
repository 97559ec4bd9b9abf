package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// The Prepare phase: preflight, enable-logical-replication (self-managed),
// create-replication-role, replica-identity-full.

func preflight() *Step {
	return &Step{ID: "preflight", Phase: PhasePrepare, Target: BlueGreen, Title: "Preflight checks",
		Why:    "Read-only checks of versions, settings, roles and tables, each with its fix, before anything is changed.",
		Source: "000, 001 §6", Records: []string{"blue_version", "green_version"},
		Plan: withAWSPreflight(offline(func(e *Env) []Action {
			return []Action{
				sql(BlueGreen, "SELECT current_setting('server_version_num'), current_setting('wal_level'), current_setting('max_replication_slots'), current_setting('max_wal_senders'), current_setting('max_logical_replication_workers'), current_setting('max_worker_processes')"),
				sql(Blue, "SELECT rolreplication FROM pg_roles WHERE rolname = %s", quoteLiteral(e.Config.Replication.Role)),
				sql(Blue, "-- tables with neither a primary key nor a replica identity\nSELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p') AND n.nspname = ANY($1) AND c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)"),
				sql(Blue, "SELECT oid::regclass FROM pg_class WHERE relpersistence = 'u' AND relkind = 'r'  -- unlogged: not replicated"),
				sql(Blue, "SELECT count(*) FROM pg_largeobject_metadata  -- large objects: not replicated"),
				sql(Blue, "SELECT extname, extversion FROM pg_extension"),
				sql(Blue, "SELECT count(*) FROM pg_sequences"),
			}
		})),
		// Read-only: never found done, so an interrupted one simply runs again.
		Check: alwaysRuns("read-only checks, run every time; their PASS/WARN lines are in the log"),
		Run:   runPreflight,
	}
}

func enableLogicalReplication() *Step {
	return &Step{ID: "enable-logical-replication", Phase: PhasePrepare, Target: AWSOrOperator, Title: "Enable logical replication on blue",
		Why:    "Logical decoding needs wal_level=logical (RDS: rds.logical_replication=1) and room for slots and walsenders; changing it needs a restart.",
		Source: "000", Destructive: true,
		Plan: offline(func(e *Env) []Action {
			return []Action{
				sql(Blue, "ALTER SYSTEM SET wal_level = 'logical'"),
				sql(Blue, "ALTER SYSTEM SET max_replication_slots = 25"),
				sql(Blue, "ALTER SYSTEM SET max_wal_senders = 25"),
				sql(Blue, "ALTER SYSTEM SET max_logical_replication_workers = 25"),
				sql(Blue, "ALTER SYSTEM SET max_worker_processes = 50"),
				{Target: Operator, Kind: "operator", Text: "restart blue (pg_ctl restart, or your service manager); the check reads the settings back"},
			}
		}),
		Check: checkLogicalReplication,
		Run:   runEnableLogicalReplication,
	}
}

func createReplicationRole() *Step {
	return &Step{ID: "create-replication-role", Phase: PhasePrepare, Target: Blue, Title: "Create the replication role",
		Why:    "Green's subscriptions connect to blue as a dedicated role with REPLICATION and SELECT on the replicated tables.",
		Source: "001 §1.1",
		Plan: offline(func(e *Env) []Action {
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
		}),
		Check: checkReplicationRole,
		Run:   runCreateReplicationRole,
	}
}

func replicaIdentityFull() *Step {
	return &Step{ID: "replica-identity-full", Phase: PhasePrepare, Target: Blue, Title: "Replica identity for tables without a primary key",
		Why:    "Once a table is published, every UPDATE/DELETE on a table with no replica identity fails on blue: set it before the publication exists.",
		Source: "000", Records: []string{"replica_identity_full_tables"},
		Plan:  planReplicaIdentity,
		Check: checkReplicaIdentity,
		Run:   runReplicaIdentity,
	}
}

// slotsNeeded is the replication slots (and walsenders) blue needs: one
// per publication, plus, with the copy strategy, one temporary slot per
// table-sync worker during the initial copy.
func (c *Config) slotsNeeded(syncWorkers int) int {
	n := len(c.Publications)
	if c.copyData() {
		n += len(c.Publications) * syncWorkers
	}
	return n
}

// preflightReport collects pass/warn/fail lines.
type preflightReport struct {
	e     *Env
	fails []string
}

func (r *preflightReport) pass(format string, args ...any) { r.e.Logf("PASS "+format, args...) }
func (r *preflightReport) warn(format string, args ...any) { r.e.Warnf("WARN "+format, args...) }
func (r *preflightReport) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.e.log("error", "FAIL %s", msg)
	r.fails = append(r.fails, msg)
}

func runPreflight(ctx context.Context, e *Env) error {
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	r := &preflightReport{e: e}
	c := e.Config
	var blue, green pg.ReplicationSettings
	var err error
	for _, t := range []struct {
		name string
		ok   func() error
		set  *pg.ReplicationSettings
		key  string
	}{{"blue", e.needBlue, &blue, "blue_version"}, {"green", e.needGreen, &green, "green_version"}} {
		if err := t.ok(); err != nil {
			r.fail("%s", err)
			continue
		}
		pool := e.Blue
		if t.name == "green" {
			pool = e.Green
		}
		if *t.set, err = pg.ReadReplicationSettings(ctx, pool); err != nil {
			if t.name == "green" && c.isCloneStrategy() {
				// Green is made later from blue (clone-local, clone-cluster,
				// restore-green): nothing to check on it yet.
				r.warn("green is not reachable (%v): with strategy %s it is made later from blue; green's checks are skipped", err, c.Strategy)
				continue
			}
			r.fail("%s is not reachable: %v; check %s.conninfo and that the server runs", t.name, err, t.name)
			continue
		}
		r.pass("%s reachable: PostgreSQL %s", t.name, t.set.Version)
		if err := e.Record(t.key, t.set.Version); err != nil {
			return err
		}
	}
	if len(r.fails) > 0 {
		return fmt.Errorf("preflight: %s", strings.Join(r.fails, "; "))
	}
	haveGreen := green.VersionNum > 0
	if haveGreen && green.VersionNum/10000 <= blue.VersionNum/10000 {
		r.warn("green (%s) is not a newer major than blue (%s): this is not an upgrade", green.Version, blue.Version)
	}

	// Blue: the publisher.
	if blue.WALLevel != "logical" {
		r.fail("blue wal_level = %s: run enable-logical-replication (ALTER SYSTEM SET wal_level = logical, then restart blue)", blue.WALLevel)
	} else {
		r.pass("blue wal_level = logical")
	}
	syncWorkers := green.MaxSyncWorkersPerSubscription
	if !haveGreen {
		syncWorkers = 2 // PostgreSQL's default, until green exists
	}
	need := c.slotsNeeded(syncWorkers)
	if free := blue.MaxReplicationSlots - blue.SlotsUsed; free < need {
		r.fail("blue max_replication_slots = %d with %d in use: %d more needed (%d publications%s); raise it and restart blue", blue.MaxReplicationSlots, blue.SlotsUsed, need, len(c.Publications), syncNote(c))
	} else {
		r.pass("blue max_replication_slots = %d (%d in use, %d needed)", blue.MaxReplicationSlots, blue.SlotsUsed, need)
	}
	if blue.MaxWALSenders < need {
		r.fail("blue max_wal_senders = %d, %d needed: raise it and restart blue", blue.MaxWALSenders, need)
	} else {
		r.pass("blue max_wal_senders = %d (%d needed)", blue.MaxWALSenders, need)
	}
	// Green: the subscriber runs one apply worker per subscription plus the sync workers.
	workers := c.slotsNeeded(syncWorkers)
	switch {
	case !haveGreen:
	case green.MaxLogicalReplicationWorkers < workers:
		r.warn("green max_logical_replication_workers = %d, %d wanted: the initial sync runs slower; raise it and restart green", green.MaxLogicalReplicationWorkers, workers)
	default:
		r.pass("green max_logical_replication_workers = %d (%d wanted)", green.MaxLogicalReplicationWorkers, workers)
	}
	switch {
	case !haveGreen:
	case green.MaxWorkerProcesses < workers+1:
		r.warn("green max_worker_processes = %d, at least %d wanted: raise it and restart green", green.MaxWorkerProcesses, workers+1)
	default:
		r.pass("green max_worker_processes = %d", green.MaxWorkerProcesses)
	}

	role, err := pg.ReadRole(ctx, e.Blue, c.Replication.Role)
	switch {
	case err != nil:
		return err
	case !role.Exists:
		r.warn("replication role %s does not exist on blue: create-replication-role makes it", c.Replication.Role)
	case !role.Replication && !role.RDSReplication:
		r.warn("replication role %s has neither REPLICATION nor rds_replication: create-replication-role grants it", c.Replication.Role)
	default:
		r.pass("replication role %s exists with replication rights", c.Replication.Role)
	}

	noPK, err := pg.TablesWithoutIdentity(ctx, e.Blue, c.Schemas)
	if err != nil {
		return err
	}
	if len(noPK) > 0 {
		r.warn("%d table(s) with neither a primary key nor a replica identity: %s; replica-identity-full sets REPLICA IDENTITY FULL on them", len(noPK), relList(noPK))
	} else {
		r.pass("every table has a primary key or a replica identity")
	}
	facts, err := pg.ReadSchemaFacts(ctx, e.Blue, c.Schemas)
	if err != nil {
		return err
	}
	if len(facts.IdentityNothing) > 0 {
		r.warn("REPLICA IDENTITY NOTHING on %s: UPDATE and DELETE on them fail on blue once published; ALTER TABLE ... REPLICA IDENTITY FULL (or add a primary key)", relList(facts.IdentityNothing))
	}
	if len(facts.Unlogged) > 0 {
		r.warn("unlogged tables are not replicated: %s; copy their data by hand after the cutover, or ALTER TABLE ... SET LOGGED on blue", relList(facts.Unlogged))
	}
	if facts.LargeObjects > 0 {
		r.warn("%d large objects: logical replication does not carry them; copy them separately (pg_dump --large-objects) before the cutover", facts.LargeObjects)
	}
	if len(facts.MaterializedViews) > 0 {
		r.warn("materialized views are not replicated: %s; REFRESH MATERIALIZED VIEW on green before the cutover", relList(facts.MaterializedViews))
	}
	r.pass("%d sequences in %s: synced at the cutover (replication does not carry them)", facts.Sequences, strings.Join(c.Schemas, ", "))

	be, err := pg.ListExtensions(ctx, e.Blue)
	if err != nil {
		return err
	}
	ge := map[string]string{}
	if haveGreen {
		if ge, err = pg.ListExtensions(ctx, e.Green); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(be))
	for n := range be {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if gv, ok := ge[n]; ok {
			r.pass("extension %s: blue %s, green %s", n, be[n], gv)
		} else {
			r.pass("extension %s %s on blue: created on green by copy-schema (or the clone), then upgrade-extensions", n, be[n])
		}
	}

	// Slow apply: REPLICA IDENTITY FULL without a usable index on green.
	switch {
	case !haveGreen:
	case green.VersionNum >= 160000:
		slow, err := pg.FullIdentityWithoutIndex(ctx, e.Green, c.Schemas)
		if err != nil {
			return err
		}
		if len(slow) > 0 {
			r.warn("on green, %s have no primary key and no btree index: each replicated UPDATE/DELETE scans the table; CREATE INDEX on green (PG16+ subscribers use any btree index on plain columns)", relList(slow))
		}
	case len(noPK) > 0:
		r.warn("green is PostgreSQL %s: replicated UPDATE/DELETE on %s scan the whole table (an index helps only from PG16)", green.Version, relList(noPK))
	}
	// Every PgBouncer the cutover will drive must answer on its console.
	for _, b := range c.Cutover.PgBouncer {
		con, err := pg.ConnectConsole(ctx, b.Name, b.AdminConninfo, c.Timeouts.Connect.Duration)
		if err != nil {
			r.warn("PgBouncer %s console not reachable: %v; the cutover needs it: check cutover.pgbouncer admin_conninfo and admin_users", b.Name, err)
			continue
		}
		con.Close()
		r.pass("PgBouncer %s console reachable", b.Name)
	}
	if c.isAWS() {
		if err := e.awsPreflight(ctx, r); err != nil {
			return err
		}
	}
	if len(r.fails) > 0 {
		return fmt.Errorf("preflight found %d blocker(s): %s", len(r.fails), strings.Join(r.fails, "; "))
	}
	return nil
}

func syncNote(c *Config) string {
	if c.copyData() {
		return " plus the initial sync's temporary slots"
	}
	return ""
}

// checkLogicalReplication is done when blue runs with wal_level = logical
// and room for the slots and walsenders the run needs.
func checkLogicalReplication(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBlue(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	s, err := pg.ReadReplicationSettings(ctx, e.Blue)
	if err != nil {
		return CheckResult{}, err
	}
	need := e.Config.slotsNeeded(2)
	var missing []string
	if s.WALLevel != "logical" {
		missing = append(missing, "wal_level = "+s.WALLevel)
	}
	if s.MaxReplicationSlots < need {
		missing = append(missing, fmt.Sprintf("max_replication_slots = %d (< %d)", s.MaxReplicationSlots, need))
	}
	if s.MaxWALSenders < need {
		missing = append(missing, fmt.Sprintf("max_wal_senders = %d (< %d)", s.MaxWALSenders, need))
	}
	if len(missing) > 0 {
		return CheckResult{Detail: "blue has " + strings.Join(missing, ", ")}, nil
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("blue: wal_level = logical, max_replication_slots = %d, max_wal_senders = %d", s.MaxReplicationSlots, s.MaxWALSenders)}, nil
}

// runEnableLogicalReplication only runs when the check found the settings
// missing. Changing them needs a restart of blue, which this program does
// not do to a production server: it refuses with the lines to run. For the
// AWS strategies the parameter-group change arrives with issue #7; until
// then it refuses with the manual fix (the check still reads the live
// settings, so once they are right the step is found done).
func runEnableLogicalReplication(ctx context.Context, e *Env) error {
	res, err := checkLogicalReplication(ctx, e)
	if err != nil {
		return err
	}
	if res.Done {
		return nil
	}
	if e.Config.isAWS() {
		return e.refuse("%s; the parameter-group change is automated with issue #7: set rds.logical_replication=1, max_replication_slots, max_wal_senders=25, max_logical_replication_workers=25, max_worker_processes=50 in blue's parameter group, reboot the writer, then run this step again", res.Detail)
	}
	lines := enableLines(e)
	return e.refuse("%s; a restart is needed, which pgbluegreen does not do: on blue run %s; restart blue, then run again", res.Detail, strings.Join(lines, "; "))
}

// enableLines are the ALTER SYSTEM lines of the step's self-managed plan.
func enableLines(e *Env) []string {
	var out []string
	for _, a := range enableLogicalReplication().OfflinePlan(e) {
		if a.Kind == "sql" {
			out = append(out, a.Text)
		}
	}
	return out
}

// checkReplicationRole is done when the role exists, can log in, has
// REPLICATION (or rds_replication) and every grant it needs.
func checkReplicationRole(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBlue(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	name := e.Config.Replication.Role
	role, err := pg.ReadRole(ctx, e.Blue, name)
	if err != nil {
		return CheckResult{}, err
	}
	switch {
	case !role.Exists:
		return CheckResult{Detail: "role " + name + " does not exist on blue"}, nil
	case !role.CanLogin:
		return CheckResult{Detail: "role " + name + " cannot log in"}, nil
	case !role.Replication && !role.RDSReplication:
		return CheckResult{Detail: "role " + name + " has neither REPLICATION nor rds_replication"}, nil
	}
	missing, err := pg.MissingGrants(ctx, e.Blue, name, e.Config.Schemas)
	if err != nil {
		return CheckResult{}, err
	}
	if len(missing) > 0 {
		return CheckResult{Detail: fmt.Sprintf("role %s lacks %d grant(s), e.g. %s", name, len(missing), missing[0])}, nil
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("role %s exists on blue, can log in, has replication rights and SELECT on every table of %s", name, strings.Join(e.Config.Schemas, ", "))}, nil
}

func runCreateReplicationRole(ctx context.Context, e *Env) error {
	if err := e.needBlue(); err != nil {
		return err
	}
	pw, err := e.Config.ReplicationPassword()
	if err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	e.Logf("creating role %s on blue (password from %s, sent as a SCRAM verifier with statement logging off)", e.Config.Replication.Role, e.Config.Replication.Password.describe())
	return pg.EnsureReplicationRole(ctx, e.Blue, pg.ReplicationRoleParams{Role: e.Config.Replication.Role, Password: pw, Schemas: e.Config.Schemas})
}

// checkReplicaIdentity is done when no table of the schemas lacks both a
// primary key and a replica identity.
func checkReplicaIdentity(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBlue(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	left, err := pg.TablesWithoutIdentity(ctx, e.Blue, e.Config.Schemas)
	if err != nil {
		return CheckResult{}, err
	}
	if len(left) > 0 {
		return CheckResult{Detail: "without primary key or replica identity: " + relList(left)}, nil
	}
	return CheckResult{Done: true, Detail: "every table of " + strings.Join(e.Config.Schemas, ", ") + " has a primary key or a replica identity; REPLICA IDENTITY FULL set on: " + e.V("replica_identity_full_tables")}, nil
}

// replicaIdentityOp is what replica-identity-full does now: REPLICA
// IDENTITY FULL on each table of the schemas with neither a primary key nor
// a replica identity, read from blue (offline, a placeholder).
func replicaIdentityOp(ctx context.Context, e *Env) (pg.ReplicaIdentityParams, error) {
	op := pg.ReplicaIdentityParams{On: "blue", Full: true}
	if e.Blue == nil {
		op.Tables = []pg.Rel{pg.PlaceholderRel("each table of " + strings.Join(e.Config.Schemas, ", ") + " with neither a primary key nor a replica identity")}
		return op, nil
	}
	var err error
	op.Tables, err = pg.TablesWithoutIdentity(ctx, e.Blue, e.Config.Schemas)
	return op, err
}

func planReplicaIdentity(ctx context.Context, e *Env) ([]Action, error) {
	op, err := replicaIdentityOp(ctx, e)
	if err != nil {
		return nil, err
	}
	out := []Action{note(Blue, "recorded before the change: replica_identity_full_tables = these tables, with any an earlier run recorded (%s)", e.V("replica_identity_full_tables"))}
	if len(op.Tables) == 0 {
		return append(out, note(Blue, "no table needs it: nothing to change")), nil
	}
	return append(out, stmts(op.Statements()...)...), nil
}

func runReplicaIdentity(ctx context.Context, e *Env) error {
	if err := e.needBlue(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	op, err := replicaIdentityOp(ctx, e)
	if err != nil {
		return err
	}
	// Merge with an earlier partial run's list, so cleanup reverts them all.
	all := parseRelList(e.Values["replica_identity_full_tables"])
	seen := map[pg.Rel]bool{}
	for _, t := range all {
		seen[t] = true
	}
	for _, t := range op.Tables {
		if !seen[t] {
			all = append(all, t)
		}
	}
	// Recorded before the change: a crash halfway leaves the list complete.
	value := relList(all)
	if value == "" {
		value = "none"
	}
	if err := e.Record("replica_identity_full_tables", value); err != nil {
		return err
	}
	if err := op.Exec(ctx, e.Blue); err != nil {
		return err
	}
	left, err := pg.TablesWithoutIdentity(ctx, e.Blue, e.Config.Schemas)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("still without a replica identity after the change: %s (created meanwhile?); run the step again", relList(left))
	}
	return nil
}
