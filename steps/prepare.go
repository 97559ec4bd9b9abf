package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// The Prepare phase: preflight, enable-logical-replication (self-managed),
// create-replication-role, replica-identity-full.

func enableLogicalReplication() *Step {
	return &Step{ID: "enable-logical-replication", Phase: PhasePrepare, Target: AWSOrOperator, Title: "Enable logical replication on blue",
		Why:    "Logical decoding needs wal_level=logical (RDS: rds.logical_replication=1) and room for slots and walsenders; changing it needs a restart.",
		Source: "000", Destructive: true,
		Plan:  planEnableLogicalReplication,
		Check: checkLogicalReplication,
		Run:   runEnableLogicalReplication,
	}
}

func createReplicationRole() *Step {
	return &Step{ID: "create-replication-role", PerDatabase: true, Phase: PhasePrepare, Target: Blue, Title: "Create the replication role",
		Why:    "Green's subscriptions connect to blue as a dedicated role with REPLICATION and SELECT on the replicated tables.",
		Source: "001 §1.1",
		Plan:   planReplicationRole,
		Check:  checkReplicationRole,
		Run:    runCreateReplicationRole,
	}
}

func replicaIdentityFull() *Step {
	return &Step{ID: "replica-identity-full", PerDatabase: true, Phase: PhasePrepare, Target: Blue, Title: "Replica identity for tables without a primary key",
		Why:    "Once a table is published, every UPDATE/DELETE on a table with no replica identity fails on blue: set it before the publication exists.",
		Source: "000", Records: []string{"replica_identity_full_tables"},
		Plan:  planReplicaIdentity,
		Check: checkReplicaIdentity,
		Run:   runReplicaIdentity,
	}
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
	need, err := e.slotsNeeded(ctx, 2)
	if err != nil {
		return CheckResult{}, err
	}
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

// Headroom the ALTER SYSTEM lines give, beyond what the run needs: a
// reverse subscription after the cutover, a rehearsal, another consumer.
const (
	minSlots           = 25
	minWorkers         = 25
	minWorkerProcesses = 50
)

// logicalSettingsOp is what enable-logical-replication would have the
// operator run on a self-managed blue: live, only the settings blue lacks,
// raised to what the run needs (at least the headroom above); offline,
// every line.
func logicalSettingsOp(ctx context.Context, e *Env) (pg.LogicalSettingsParams, error) {
	need, err := e.slotsNeeded(ctx, 2)
	if err != nil {
		return pg.LogicalSettingsParams{}, err
	}
	slots := max(need, minSlots)
	op := pg.LogicalSettingsParams{On: "blue", WALLevel: "logical", MaxReplicationSlots: slots, MaxWALSenders: slots,
		MaxLogicalReplicationWorkers: minWorkers, MaxWorkerProcesses: minWorkerProcesses}
	if e.Blue == nil {
		return op, nil
	}
	s, err := pg.ReadReplicationSettings(ctx, e.Blue)
	if err != nil {
		return op, err
	}
	if s.WALLevel == "logical" {
		op.WALLevel = ""
	}
	if s.MaxReplicationSlots >= need {
		op.MaxReplicationSlots = 0
	}
	if s.MaxWALSenders >= need {
		op.MaxWALSenders = 0
	}
	// Workers matter on blue only once it subscribes (the reverse feed):
	// raised with the rest when a restart is due anyway.
	if len(op.Statements()) == 0 || s.MaxLogicalReplicationWorkers >= minWorkers {
		op.MaxLogicalReplicationWorkers = 0
	}
	if op.MaxLogicalReplicationWorkers == 0 || s.MaxWorkerProcesses >= minWorkerProcesses {
		op.MaxWorkerProcesses = 0
	}
	return op, nil
}

func planEnableLogicalReplication(ctx context.Context, e *Env) ([]Action, error) {
	if e.Config.IsAWS() {
		return []Action{{Target: Operator, Kind: "operator", Text: "set rds.logical_replication=1, max_replication_slots, max_wal_senders, max_logical_replication_workers and max_worker_processes in blue's parameter group, then reboot the writer (automated with issue #7); the check reads the settings back"}}, nil
	}
	op, err := logicalSettingsOp(ctx, e)
	if err != nil {
		return nil, err
	}
	ss := op.Statements()
	if len(ss) == 0 {
		return []Action{note(Blue, "blue already runs with wal_level = logical and room for the run's slots and walsenders: nothing to change")}, nil
	}
	out := []Action{note(Blue, "pgbluegreen does not restart blue: the step refuses with these lines for the operator to run")}
	out = append(out, stmts(ss...)...)
	return append(out, Action{Target: Operator, Kind: "operator", Text: "restart blue (pg_ctl restart, or your service manager); the check reads the settings back"}), nil
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
	if e.Config.IsAWS() {
		return e.refuse("%s; the parameter-group change is automated with issue #7: set rds.logical_replication=1, max_replication_slots, max_wal_senders=25, max_logical_replication_workers=25, max_worker_processes=50 in blue's parameter group, reboot the writer, then run this step again", res.Detail)
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	op, err := logicalSettingsOp(ctx, e)
	if err != nil {
		return err
	}
	var lines []string
	for _, s := range op.Statements() {
		lines = append(lines, s.String())
	}
	return e.refuse("%s; a restart is needed, which pgbluegreen does not do: on blue run %s; restart blue, then run again", res.Detail, strings.Join(lines, "; "))
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

// replicationRoleOp is what create-replication-role does now: live, with
// blue's database name, whether blue has rds_replication, and the schemas
// checked to exist (missing names a schema that does not); offline, with
// placeholders. The verifier is added by the run alone.
func replicationRoleOp(ctx context.Context, e *Env) (op pg.ReplicationRoleParams, missing []string, err error) {
	op = pg.ReplicationRoleParams{On: "blue", Role: e.Config.Replication.Role, RDS: e.Config.IsAWS(),
		Database: pg.Placeholder("blue's database"), Schemas: e.Config.Schemas}
	if e.Blue == nil {
		return op, nil, nil
	}
	if op.RDS, err = pg.HasRDSReplication(ctx, e.Blue); err != nil {
		return op, nil, err
	}
	if op.Database, err = pg.CurrentDatabase(ctx, e.Blue); err != nil {
		return op, nil, err
	}
	missing, err = pg.MissingSchemas(ctx, e.Blue, op.Schemas)
	return op, missing, err
}

func planReplicationRole(ctx context.Context, e *Env) ([]Action, error) {
	op, missing, err := replicationRoleOp(ctx, e)
	if err != nil {
		return nil, err
	}
	out := []Action{note(Blue, "password from %s, sent only as a SCRAM-SHA-256 verifier, with statement logging off", e.Config.Replication.Password.Describe())}
	if len(missing) > 0 {
		out = append(out, note(Blue, "refused now: schema %s does not exist on blue", strings.Join(missing, ", ")))
	}
	return append(out, stmts(op.Statements()...)...), nil
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
	op, missing, err := replicationRoleOp(ctx, e)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return e.refuse("schema %s does not exist on blue: fix `schemas` in the configuration (or omit it: every schema of blue)", strings.Join(missing, ", "))
	}
	verifier, err := pg.ScramVerifier(pw)
	if err != nil {
		return err
	}
	op.Verifier = pg.Secret(verifier)
	e.Logf("creating role %s on blue (password from %s, sent as a SCRAM verifier with statement logging off)", op.Role, e.Config.Replication.Password.Describe())
	return op.Exec(ctx, e.Blue)
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
	if _, ok := e.Value("replica_identity_full_tables"); !ok {
		// Nothing needed it: this run sets FULL on no table, and says so, so
		// that revert-replica-identity finds its value and reverts nothing.
		if err := e.Record("replica_identity_full_tables", "none"); err != nil {
			return CheckResult{}, err
		}
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
	all := parseRelList(e.V0("replica_identity_full_tables"))
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
