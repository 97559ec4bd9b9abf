package steps

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// One test per item of issue 14: the stand-in refuses what the old code
// did (or shows the state it misread), and the step now does it right.
// Items 5 and 6's half-done switch are in aws_traffic_test.go.

// anchorOnCopyLab runs the SQL steps up to the slots on a copy lab for an
// AWS strategy on srv, so the AWS steps after them may run.
func anchorOnCopyLab(t *testing.T, srv *awstest.Server, edit func(*config.Config)) (*labEnv, *apiLog) {
	t.Helper()
	le, _ := startLab(t, "copy")
	edit(le.Config)
	log := &apiLog{}
	r := le.Runner
	r.Steps, r.AWS = Strategy(le.Config.Strategy), newAWSClient(t, srv, log, time.Millisecond)
	skipSQL(t, r, "preflight", "create-replication-role")
	return le, log
}

// TestIssue14Item4TargetAndGreenGroups: an upgrade target RDS does not list
// and a green group that would leave green without logical replication are
// refused by preflight and by the step, before anything is sent (the
// stand-in refuses the target, as RDS does).
func TestIssue14Item4TargetAndGreenGroups(t *testing.T) {
	srv := awstest.New(t)
	seedRDSBlue(srv)
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "green-pg17-off", Family: "postgres17"})
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "green-pg16", Family: "postgres16", Values: map[string]string{"rds.logical_replication": "1"}})
	srv.SetUpgradeTargets("postgres", "15.7", "15.8", "16.4")
	srv.AddSnapshot(awstest.Snapshot{ID: "green-1-from-blue", SourceID: "blue-1", Engine: "postgres", EngineVersion: "15.7"}, false)
	r, _, _ := offlineRunner(t, srv, rdsConfig)
	r.Steps = Strategy("rds-snapshot")
	ctx := context.Background()
	o, err := r.Env("preflight").awsPreflightOp(ctx)
	if err != nil || len(o.problems) != 1 || !strings.Contains(o.problems[0], "aws.engine_version 17.5 is not a valid upgrade target of postgres 15.7; RDS lists: 15.8, 16.4") {
		t.Fatalf("preflight: %+v %v", o, err)
	}
	if err := r.Env("").Record("snapshot_id", "green-1-from-blue"); err != nil {
		t.Fatal(err)
	}
	if why := refusedStep(t, r, "upgrade-snapshot", "test"); !strings.Contains(why, "not a valid upgrade target") {
		t.Errorf("upgrade-snapshot: %s", why)
	}
	if srv.Count("ModifyDBSnapshot") != 0 {
		t.Error("an invalid upgrade was sent")
	}
	status, _ := srv.RawRDS(t, "ModifyDBSnapshot", "DBSnapshotIdentifier", "green-1-from-blue", "EngineVersion", "17.5")
	if status != 400 {
		t.Errorf("the stand-in let ModifyDBSnapshot to 17.5 through: %d", status)
	}

	// Green's group: empty, without logical replication, of another family.
	srv.SetUpgradeTargets("postgres", "15.7", "17.5")
	srv.AddSnapshot(awstest.Snapshot{ID: "green-1-from-blue", SourceID: "blue-1", Engine: "postgres", EngineVersion: "17.5"}, false)
	for group, want := range map[string]string{
		"":               "aws.instance_parameter_group is empty: green would get RDS's default group (default.postgres17), without rds.logical_replication = 1",
		"green-pg17-off": "aws.instance_parameter_group green-pg17-off has rds.logical_replication = 0",
		"green-pg16":     "aws.instance_parameter_group green-pg16 is of family postgres16; green on 17.5 needs family postgres17",
		"nope":           "aws.instance_parameter_group nope does not exist",
	} {
		r.Config.AWS.InstanceParameterGroup = group
		if why := refusedStep(t, r, "restore-green", "test"); !strings.Contains(why, want) {
			t.Errorf("group %q: %s", group, why)
		}
		if o, err := r.Env("preflight").awsPreflightOp(ctx); err != nil || len(o.problems) != 1 || !strings.Contains(o.problems[0], want) {
			t.Errorf("preflight, group %q: %+v %v", group, o, err)
		}
	}
	if srv.Count("RestoreDBInstanceFromDBSnapshot") != 0 {
		t.Error("a green without logical replication was restored")
	}
}

// TestIssue14Item6Plans: the plans show the lookups made before creating,
// the GetSecretValue of secret_value_from, FileLastWritten in milliseconds.
func TestIssue14Item6Plans(t *testing.T) {
	srv := awstest.New(t)
	r, _, _ := offlineRunner(t, srv, func(c *config.Config) {
		rdsConfig(c)
		c.AWS.Switch = config.Switch{SecretID: "app/db", SecretValueFrom: "arn:aws:secretsmanager:us-east-1:123456789012:secret:green-AbCdEf"}
	})
	r.Steps = Strategy("rds-snapshot")
	restored := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	if err := r.Env("").Record("restore_time", restored.Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"snapshot-blue":   "rds DescribeDBSnapshots DBSnapshotIdentifier=green-1-from-blue  -- an existing snapshot of blue is found, not taken twice",
		"restore-green":   "rds DescribeDBInstances DBInstanceIdentifier=green-1  -- an existing green is found, not restored twice",
		"switch-traffic":  "secretsmanager GetSecretValue SecretId=arn:aws:secretsmanager:us-east-1:123456789012:secret:green-AbCdEf  -- the new value",
		"green-start-lsn": "rds DescribeDBLogFiles DBInstanceIdentifier=green-1 FileLastWritten=" + strconv.FormatInt(restored.UnixMilli(), 10) + "  -- written since restore_time 2026-11-21T10:00:00Z",
	} {
		if plan := planText(r, id); !strings.Contains(plan, want) {
			t.Errorf("%s plan lacks %q:\n%s", id, want, plan)
		}
	}
	if plan := planText(r, "green-start-lsn"); strings.Contains(plan, "<restore_time <") {
		t.Errorf("a nested placeholder:\n%s", plan)
	}
}
