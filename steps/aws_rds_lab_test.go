package steps

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// seedRDSBlue is blue in the fake: an RDS PostgreSQL 15 instance with its
// own DB parameter group at the engine's defaults; and green's group for
// 17, with logical replication on.
func seedRDSBlue(srv *awstest.Server) {
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "blue-pg15"})
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "green-pg17", Family: "postgres17", Values: map[string]string{"rds.logical_replication": "1"}})
	srv.AddInstance(awstest.Instance{ID: "blue-1", Class: "db.m6g.large", Engine: "postgres", EngineVersion: "15.7",
		ParameterGroup: "blue-pg15", SubnetGroup: "blue-subnets", SecurityGroupIDs: []string{"sg-333"}})
}

func rdsConfig(c *config.Config) {
	c.Strategy = "rds-snapshot"
	c.AWS = config.AWS{Region: awstest.Region, BlueInstance: "blue-1", GreenInstance: "green-1", EngineVersion: "17.5",
		InstanceParameterGroup: "green-pg17", MultiAZ: true, IAMAuth: true, FinalSnapshot: "blue-1-final"}
}

// TestAWSRDSSnapshotSteps runs the rds-snapshot strategy's AWS steps
// through the runner against the fake AWS with the lab behind it: the
// snapshot is a real base backup of blue taken after the slots, the
// restore its real recovery (whose `redo done at` RDS's log shows) and
// pg_upgrade; the seed is read from green's logs (+ 1 byte) and validated
// against blue's slots.
func TestAWSRDSSnapshotSteps(t *testing.T) {
	a := startAWSLab(t, "rds-snapshot", awsLabParams{})
	srv, log, r := a.srv, a.log, a.Runner
	ctx := context.Background()

	runStep(t, r, "preflight", "")
	runStep(t, r, "enable-logical-replication", "")
	wantParams(t, onlyCall(t, srv, "ModifyDBParameterGroup"), map[string]string{"DBParameterGroupName": "blue-pg15",
		"Parameters.Parameter.1.ParameterName": "rds.logical_replication", "Parameters.Parameter.1.ParameterValue": "1",
		"Parameters.Parameter.1.ApplyMethod": "pending-reboot"})
	wantParams(t, onlyCall(t, srv, "RebootDBInstance"), map[string]string{"DBInstanceIdentifier": "blue-1"})
	assertPlanned(t, planText(r, "enable-logical-replication"), log.of("enable-logical-replication"))

	runStep(t, r, "create-replication-role", "")
	runStep(t, r, "replica-identity-full", "")
	runStep(t, r, "create-publications", "")
	if why := refusedStep(t, r, "snapshot-blue", "test: the slot is not there yet"); !strings.Contains(why, "run create-slots first") {
		t.Errorf("refusal: %s", why)
	}
	runStep(t, r, "create-slots", "")
	runStep(t, r, "snapshot-blue", "")
	wantParams(t, onlyCall(t, srv, "CreateDBSnapshot"), map[string]string{"DBInstanceIdentifier": "blue-1", "DBSnapshotIdentifier": "green-1-from-blue"})
	runStep(t, r, "upgrade-snapshot", "")
	wantParams(t, onlyCall(t, srv, "ModifyDBSnapshot"), map[string]string{"DBSnapshotIdentifier": "green-1-from-blue", "EngineVersion": "17.5"})
	runStep(t, r, "restore-green", "")
	wantParams(t, onlyCall(t, srv, "RestoreDBInstanceFromDBSnapshot"), map[string]string{
		"DBSnapshotIdentifier": "green-1-from-blue", "DBInstanceIdentifier": "green-1", "DBInstanceClass": "db.m6g.large",
		"DBParameterGroupName": "green-pg17", "DBSubnetGroupName": "blue-subnets", "VpcSecurityGroupIds.VpcSecurityGroupId.1": "sg-333",
		"MultiAZ": "true", "EnableIAMDatabaseAuthentication": "true", "PubliclyAccessible": "false", "DeletionProtection": "true",
		"EnableCloudwatchLogsExports.member.1": "postgresql"})
	if in, _ := srv.GetInstance("green-1"); in.EngineVersion != "17.5" || in.PubliclyAccessible || !in.DeletionProtection {
		t.Errorf("green: %+v", in)
	}
	for _, id := range []string{"snapshot-blue", "upgrade-snapshot", "restore-green"} {
		assertPlanned(t, planText(r, id), log.of(id))
	}

	runStep(t, r, "green-start-lsn", "")
	redo, _ := r.Env("").Value("green_redo_done")
	redoLSN, _ := pg.ParseLSN(strings.Fields(redo)[0])
	want, _ := redoLSN.Add(1)
	if got, _ := r.Env("").Value("green_start_lsn"); got != want.String() {
		t.Errorf("green_start_lsn = %s, want redo done %s + 1 = %s", got, redo, want)
	}
	if srv.Count("DescribeDBLogFiles") == 0 || srv.Count("DownloadDBLogFilePortion") == 0 {
		t.Error("the seed was not read from green's logs")
	}
	assertPlanned(t, planText(r, "green-start-lsn"), log.of("green-start-lsn"))

	// A second pass finds everything done: no second snapshot or restore.
	for _, id := range []string{"snapshot-blue", "upgrade-snapshot", "restore-green", "green-start-lsn"} {
		s, _ := r.Find(id)
		if res, err := s.Check(WithStep(ctx, id), r.Env(id)); err != nil || !res.Done {
			t.Errorf("%s check after the run: %+v %v", id, res, err)
		}
	}
	if srv.Count("CreateDBSnapshot") != 1 || srv.Count("RestoreDBInstanceFromDBSnapshot") != 1 {
		t.Error("a check made something")
	}

	// decommission with aws.delete_blue: deleted with its final snapshot.
	a.Config.AWS.DeleteBlue = true
	runStep(t, r, "decommission", "test: the SQL steps between are not under test")
	wantParams(t, onlyCall(t, srv, "DeleteDBInstance"), map[string]string{"DBInstanceIdentifier": "blue-1",
		"SkipFinalSnapshot": "false", "FinalDBSnapshotIdentifier": "blue-1-final"})
	assertPlanned(t, planText(r, "decommission"), log.of("decommission"))
	t.Logf("rds-snapshot calls by step:\n%s", callReport(log, r))
}

// TestAWSRDSSeedBeforeSlotRefused: a restored instance whose recovery ended
// before the slot was created (its snapshot predates the slot) is refused,
// whatever the logs say after it; nothing is recorded.
func TestAWSRDSSeedBeforeSlotRefused(t *testing.T) {
	le, _ := startLab(t, "copy")
	srv := awstest.New(t)
	seedRDSBlue(srv)
	rdsConfig(le.Config)
	r := le.Runner
	r.Steps, r.AWS = Strategy("rds-snapshot"), newAWSClient(t, srv, &apiLog{}, time.Millisecond)
	skipSQL(t, r, "preflight", "enable-logical-replication", "create-replication-role")
	for _, id := range []string{"replica-identity-full", "create-publications", "create-slots"} {
		runStep(t, r, id, "")
	}
	restored := time.Now().Add(-time.Hour)
	srv.AddInstance(awstest.Instance{ID: "green-1", Class: "db.m6g.large", Engine: "postgres", EngineVersion: "17.5"})
	srv.AddLogFile("green-1", awstest.LogFile{Name: "error/postgresql.log.1", LastWritten: restored.Add(time.Minute),
		Data: "2026-11-21 10:00:00 UTC::@:[500]:LOG:  redo done at 0/1000028 system usage: CPU: user: 0.00 s\n"})
	srv.AddLogFile("green-1", awstest.LogFile{Name: "error/postgresql.log.2", LastWritten: restored.Add(2 * time.Minute),
		Data: "2026-11-21 10:01:00 UTC::@:[600]:LOG:  redo done at FF/0 system usage: CPU: user: 0.00 s\n"})
	env := r.Env("green-start-lsn")
	for k, v := range map[string]string{"snapshot_id": "green-1-from-blue", "restore_time": restored.UTC().Format(time.RFC3339)} {
		if err := env.Record(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"snapshot-blue", "upgrade-snapshot", "restore-green"} {
		if err := r.Skip(id, "test: green seeded in the fake"); err != nil {
			t.Fatal(err)
		}
	}
	why := refusedStep(t, r, "green-start-lsn", "")
	if !strings.Contains(why, "seed 0/1000029") || !strings.Contains(why, "the clone predates the slot") {
		t.Errorf("refusal: %s", why)
	}
	if _, ok := r.Env("").Value("green_start_lsn"); ok {
		t.Error("a refused seed was recorded")
	}
}
