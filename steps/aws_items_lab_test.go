package steps

import (
	"context"
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// TestIssue14Item1WriterAfterTheCluster: the old order (the writer right
// after the restore) is refused by the stand-in as by RDS; clone-cluster
// waits for the cluster to be available first.
func TestIssue14Item1WriterAfterTheCluster(t *testing.T) {
	srv := awstest.New(t)
	srv.Ticks = 3
	seedAuroraBlue(srv)
	le, _ := anchorOnCopyLab(t, srv, func(c *config.Config) {
		c.Strategy = "aurora-clone"
		c.AWS = config.AWS{Region: awstest.Region, BlueCluster: "blue", GreenCluster: "green", EngineVersion: "17.5", ClusterParameterGroup: "green-cluster-pg17"}
	})
	r, ctx := le.Runner, context.Background()
	if err := r.Skip("enable-logical-replication", "test: not under test"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"replica-identity-full", "create-publications", "create-slots"} {
		runStep(t, r, id, "")
	}
	// The old order, by hand: refused.
	p := aws.RestoreCloneParams{SourceClusterID: "blue", ClusterID: "old-order", SubnetGroup: "s", ClusterParameterGroup: "blue-cluster-pg15"}
	if _, err := r.AWS.RestoreClone(ctx, p); err != nil {
		t.Fatal(err)
	}
	_, err := r.AWS.CreateClusterInstance(ctx, aws.CreateClusterInstanceParams{ClusterID: "old-order", InstanceID: "old-order-writer", Class: "db.r6g.large", Engine: "aurora-postgresql"})
	if aws.KindOf(err) != aws.KindInvalidState || !strings.Contains(err.Error(), "InvalidDBClusterStateFault") {
		t.Fatalf("the old order: %v", err)
	}
	runStep(t, r, "clone-cluster", "")
	var seen []string
	for _, q := range srv.Requests() {
		if q.Params["DBClusterIdentifier"] == "green" || q.Params["DBInstanceIdentifier"] == "green-writer" {
			seen = append(seen, q.Action)
		}
	}
	// The check's look, the builder's, the restore, then polls until
	// available (Ticks 3: three "creating"), and only then the writer.
	want := "DescribeDBClusters DescribeDBClusters DescribeDBInstances RestoreDBClusterToPointInTime DescribeDBClusters DescribeDBClusters DescribeDBClusters DescribeDBClusters CreateDBInstance"
	if got := strings.Join(seen, " "); !strings.HasPrefix(got, want) {
		t.Errorf("calls for green:\n got %s\nwant %s ...", got, want)
	}
}

// TestIssue14Item2RebootAfterApplying: right after the change RDS says
// "applying" (the old step read that as "no reboot pending" and was done);
// the step waits until it says pending-reboot, reboots, and is done only
// with wal_level = logical read over SQL.
func TestIssue14Item2RebootAfterApplying(t *testing.T) {
	srv := awstest.New(t)
	srv.Ticks = 3
	seedRDSBlue(srv)
	le, log := anchorOnCopyLab(t, srv, rdsConfig)
	r := le.Runner
	runStep(t, r, "enable-logical-replication", "")
	var after []string
	modified := false
	for _, c := range log.of("enable-logical-replication") {
		modified = modified || c.call == "rds ModifyDBParameterGroup"
		if modified {
			after = append(after, c.call)
		}
	}
	if got := strings.Join(after, ", "); !strings.HasPrefix(got, "rds ModifyDBParameterGroup, rds DescribeDBInstances, rds DescribeDBInstances, rds DescribeDBInstances, rds DescribeDBInstances, rds RebootDBInstance, rds DescribeDBInstances") {
		t.Errorf("after the change: %s", got)
	}
	if in, _ := srv.GetInstance("blue-1"); in.PendingReboot || in.Status != "available" {
		t.Errorf("blue after the step: %+v", in)
	}
	checkDone(t, r, "enable-logical-replication")
	assertPlanned(t, planText(r, "enable-logical-replication"), log.of("enable-logical-replication"))
	// What the old check missed: applied in the API, not in the server.
	for _, o := range []logicalReplicationOp{{status: "applying", walLevel: "logical"}, {status: "in-sync", walLevel: "replica"}, {status: "pending-reboot", walLevel: "logical"}} {
		if !o.needsReboot() {
			t.Errorf("%+v needs no reboot?", o)
		}
	}
	if (&logicalReplicationOp{status: "in-sync", walLevel: "logical"}).needsReboot() {
		t.Error("applied and logical, yet a reboot")
	}
}

// TestIssue14Item3DefaultGroup: blue on a default group (RDS refuses to
// modify it, and so does the stand-in): the step makes a group of the same
// family, named in the plan, sets it, attaches it, reboots once.
func TestIssue14Item3DefaultGroup(t *testing.T) {
	srv := awstest.New(t)
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "green-pg17", Family: "postgres17", Values: map[string]string{"rds.logical_replication": "1"}})
	srv.AddInstance(awstest.Instance{ID: "blue-1", Class: "db.m6g.large", Engine: "postgres", EngineVersion: "15.7"})
	le, log := anchorOnCopyLab(t, srv, rdsConfig)
	r := le.Runner
	if err := r.AWS.SetParameters(context.Background(), aws.SetParametersParams{Group: "default.postgres15", Settings: aws.LogicalReplicationSettings}); err == nil {
		t.Fatal("a default group modified")
	}
	dry := dryRunText(t, r, srv, "enable-logical-replication")
	for _, want := range []string{
		"rds DescribeDBParameterGroups DBParameterGroupName=blue-1-pgbluegreen  -- blue's default.postgres15 is a default group",
		"rds CreateDBParameterGroup DBParameterGroupName=blue-1-pgbluegreen DBParameterGroupFamily=postgres15",
		"rds ModifyDBParameterGroup DBParameterGroupName=blue-1-pgbluegreen Parameters=rds.logical_replication=1",
		"rds ModifyDBInstance DBInstanceIdentifier=blue-1 DBParameterGroupName=blue-1-pgbluegreen ApplyImmediately=true",
		"rds RebootDBInstance DBInstanceIdentifier=blue-1",
	} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run lacks %q:\n%s", want, dry)
		}
	}
	runStep(t, r, "enable-logical-replication", "")
	if n := srv.Count("RebootDBInstance"); n != 1 {
		t.Errorf("%d reboots", n)
	}
	in, _ := srv.GetInstance("blue-1")
	if in.ParameterGroup != "blue-1-pgbluegreen" || in.PendingReboot {
		t.Errorf("blue after the step: %+v", in)
	}
	if vals, _ := srv.GetParameters("blue-1-pgbluegreen"); vals["rds.logical_replication"] != "1" || vals["max_worker_processes"] != "50" {
		t.Errorf("the new group: %v", vals)
	}
	checkDone(t, r, "enable-logical-replication")
	assertPlanned(t, dry, log.of("enable-logical-replication"))
}

// TestIssue14Item7OldAuroraReadsTheLog: an Aurora PostgreSQL 12.9 clone
// has no aurora_volume_logical_start_lsn(): the seed is the first `redo
// done at` of the clone writer's log, + 1 byte (000's get-start-lsn.sh);
// here the real clone's recovery.
func TestIssue14Item7OldAuroraReadsTheLog(t *testing.T) {
	a := startAWSLab(t, "aurora-clone", awsLabParams{NoStartFunction: true})
	r := a.Runner
	for _, id := range []string{"preflight", "enable-logical-replication", "create-replication-role", "replica-identity-full",
		"create-publications", "create-slots", "clone-cluster"} {
		runStep(t, r, id, "")
	}
	dry := dryRunText(t, r, a.srv, "green-start-lsn")
	if !strings.Contains(dry, "rds DescribeDBLogFiles DBInstanceIdentifier=green-writer FileLastWritten=") ||
		!strings.Contains(dry, "rds DownloadDBLogFilePortion DBInstanceIdentifier=green-writer LogFileName=error/postgresql.log.") {
		t.Errorf("dry run:\n%s", dry)
	}
	runStep(t, r, "green-start-lsn", "")
	redo, _ := r.Env("").Value("green_redo_done")
	real, err := a.Runner.Env("").cloneParams().RedoDone()
	if err != nil || !strings.HasPrefix(redo, real.String()+" in ") {
		t.Fatalf("green_redo_done %q, the clone's recovery ended at %s (%v)", redo, real, err)
	}
	want, _ := real.Add(1)
	if seed, _ := r.Env("").Value("green_start_lsn"); seed != want.String() {
		t.Errorf("green_start_lsn %s, want the clone's redo done (%s) + 1 = %s", seed, real, want)
	}
	if _, err := a.Green.Exec(context.Background(), "SELECT aurora_volume_logical_start_lsn()"); err == nil {
		t.Error("the clone has the function")
	}
	assertPlanned(t, dry, a.log.of("green-start-lsn"))
}
