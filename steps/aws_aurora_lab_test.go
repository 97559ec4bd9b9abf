package steps

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// seedAuroraBlue is blue in the fake: an Aurora PostgreSQL 15 cluster with
// a writer and a reader, its cluster parameter group at the engine's
// defaults (logical replication off), in a subnet group with two security
// groups; and green's groups for 17 (the cluster's with logical
// replication on).
func seedAuroraBlue(srv *awstest.Server) {
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "blue-cluster-pg15", Cluster: true})
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "green-cluster-pg17", Cluster: true, Family: "aurora-postgresql17", Values: map[string]string{"rds.logical_replication": "1"}})
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "green-pg17", Family: "aurora-postgresql17"})
	srv.AddCluster(awstest.Cluster{ID: "blue", EngineVersion: "15.4", ParameterGroup: "blue-cluster-pg15",
		SubnetGroup: "blue-subnets", SecurityGroupIDs: []string{"sg-111", "sg-222"}})
	srv.AddInstance(awstest.Instance{ID: "blue-writer", ClusterID: "blue", Class: "db.r6g.large"})
	srv.AddInstance(awstest.Instance{ID: "blue-reader", ClusterID: "blue", Class: "db.r6g.large"})
}

// TestAWSAuroraCloneSteps runs the AWS steps of aurora-clone through the
// runner against the fake AWS with the lab behind it: the clone is a real
// clone of blue, its upgrade a real pg_upgrade. It asserts the parameters
// of every call, the refusals (no slot yet, a seed before the slot, slots
// left on green, a green already upgraded), error lines, a cancelled wait
// found again by its check (the clone is not made twice), and that each
// call was in the plan.
func TestAWSAuroraCloneSteps(t *testing.T) {
	a := startAWSLab(t, "aurora-clone", awsLabParams{})
	srv, log, r, c := a.srv, a.log, a.Runner, a.Config
	ctx := context.Background()
	c.AWS.Readers = []config.AWSReader{{ID: "green-reader-1"}}

	runStep(t, r, "preflight", "")
	assertPlanned(t, planText(r, "preflight"), log.of("preflight"))
	if srv.Count("DescribeDBEngineVersions") == 0 {
		t.Error("preflight did not check the upgrade's target")
	}

	// An unknown cluster is one readable line naming the call.
	c.AWS.BlueCluster = "bleu"
	_, err := r.Run(ctx, "enable-logical-replication", RunParams{Confirmed: true})
	if err == nil || !strings.Contains(err.Error(), "rds DescribeDBClusters") || !strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("unknown cluster: %v", err)
	}
	c.AWS.BlueCluster = "blue"
	// Throttling is retried by the SDK: the step does not see it.
	srv.Fail("DescribeDBClusterParameters", awstest.Fault{Code: "Throttling", Message: "Rate exceeded", Times: 1})
	runStep(t, r, "enable-logical-replication", "")
	mod := onlyCall(t, srv, "ModifyDBClusterParameterGroup")
	wantParams(t, mod, map[string]string{"DBClusterParameterGroupName": "blue-cluster-pg15",
		"Parameters.Parameter.1.ParameterName": "rds.logical_replication", "Parameters.Parameter.1.ParameterValue": "1",
		"Parameters.Parameter.1.ApplyMethod": "pending-reboot", "Parameters.Parameter.5.ParameterName": "max_worker_processes",
		"Parameters.Parameter.5.ParameterValue": "50"})
	wantParams(t, onlyCall(t, srv, "RebootDBInstance"), map[string]string{"DBInstanceIdentifier": "blue-writer"})
	if got, _ := srv.GetParameters("blue-cluster-pg15"); got["max_replication_slots"] != "25" || got["rds.logical_replication"] != "1" {
		t.Errorf("blue's parameter group after the step: %v", got)
	}
	assertPlanned(t, planText(r, "enable-logical-replication"), log.of("enable-logical-replication"))
	s, _ := r.Find("enable-logical-replication")
	if res, err := s.Check(WithStep(ctx, s.ID), r.Env(s.ID)); err != nil || !res.Done {
		t.Errorf("check after the run: %+v %v", res, err)
	}

	runStep(t, r, "create-replication-role", "")
	runStep(t, r, "replica-identity-full", "")
	runStep(t, r, "create-publications", "")

	// Trap 3: no clone before the slots exist; nothing is sent.
	if why := refusedStep(t, r, "clone-cluster", "test: the slot is not there yet"); !strings.Contains(why, "run create-slots first") {
		t.Errorf("refusal: %s", why)
	}
	if n := srv.Count("RestoreDBClusterToPointInTime"); n != 0 {
		t.Fatalf("a refused clone-cluster sent %d restores", n)
	}
	runStep(t, r, "create-slots", "")

	// Access denied: one line naming the call, the step failed, nothing made.
	srv.Fail("RestoreDBClusterToPointInTime", awstest.Fault{Code: "AccessDenied", Message: "User: arn:aws:iam::123456789012:user/ops is not authorized", Status: 403, Times: 1})
	_, err = r.Run(ctx, "clone-cluster", RunParams{Confirmed: true})
	if err == nil || !strings.Contains(err.Error(), "rds RestoreDBClusterToPointInTime") || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("access denied: %v", err)
	}
	if st := stepStatus(r, "clone-cluster"); st != state.Failed {
		t.Fatalf("clone-cluster is %s after access denied", st)
	}

	// A wait cancelled mid-way leaves the step interrupted; the next run's
	// check and builder find the clone: it is not made twice.
	slow := newAWSClientJournal(t, srv, log, time.Hour, r.Journal)
	fast := r.AWS
	r.AWS = slow
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		for srv.Count("RestoreDBClusterToPointInTime") < 2 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if _, err := r.Run(cctx, "clone-cluster", RunParams{Confirmed: true}); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("cancelled wait: %v", err)
	}
	if st := stepStatus(r, "clone-cluster"); st != state.Interrupted {
		t.Fatalf("clone-cluster is %s after cancel, want interrupted", st)
	}
	r.AWS = fast
	runStep(t, r, "clone-cluster", "")
	restores := srv.Calls("RestoreDBClusterToPointInTime")
	if len(restores) != 2 {
		t.Fatalf("RestoreDBClusterToPointInTime called %d times, want 2 (denied, then made)", len(restores))
	}
	wantParams(t, restores[1], map[string]string{"DBClusterIdentifier": "green", "SourceDBClusterIdentifier": "blue",
		"RestoreType": "copy-on-write", "UseLatestRestorableTime": "true", "DBSubnetGroupName": "blue-subnets",
		"VpcSecurityGroupIds.VpcSecurityGroupId.1": "sg-111", "VpcSecurityGroupIds.VpcSecurityGroupId.2": "sg-222",
		"DeletionProtection": "true", "EnableCloudwatchLogsExports.member.1": "postgresql", "DBClusterParameterGroupName": "blue-cluster-pg15"})
	// Issue 14 item 1: the writer once the cluster is available (the
	// stand-in refuses it before), never public.
	wantParams(t, onlyCall(t, srv, "CreateDBInstance"), map[string]string{"DBClusterIdentifier": "green",
		"DBInstanceIdentifier": "green-writer", "DBInstanceClass": "db.r6g.large", "Engine": "aurora-postgresql", "PubliclyAccessible": "false"})
	endpoint, _ := r.Env("").Value("green_endpoint")
	if !strings.HasPrefix(endpoint, "green.cluster-") {
		t.Errorf("green_endpoint = %q", endpoint)
	}
	assertPlanned(t, planText(r, "clone-cluster"), log.of("clone-cluster"))

	// The seed: the clone's real start point. One before the slot is refused.
	good := queryOne[string](t, a.Green, "SELECT aurora_volume_logical_start_lsn()::text")
	setStart := func(lsn string) {
		t.Helper()
		if _, err := a.Green.Exec(ctx, fmt.Sprintf("CREATE OR REPLACE FUNCTION aurora_volume_logical_start_lsn() RETURNS pg_lsn LANGUAGE sql AS $$ SELECT %s::pg_lsn $$", pg.QuoteLiteral(lsn))); err != nil {
			t.Fatal(err)
		}
	}
	setStart("0/10")
	if why := refusedStep(t, r, "green-start-lsn", ""); !strings.Contains(why, "the clone predates the slot") {
		t.Errorf("refusal: %s", why)
	}
	setStart(good)
	runStep(t, r, "green-start-lsn", "")
	if got, _ := r.Env("").Value("green_start_lsn"); got != mustLSN(t, good) {
		t.Errorf("green_start_lsn = %s, want %s", got, good)
	}

	// Trap 4: the slot inherited by the clone blocks the upgrade.
	if why := refusedStep(t, r, "upgrade-green", "test: before drop-cloned-replication"); !strings.Contains(why, "logical slot pgbg_all") {
		t.Errorf("refusal: %s", why)
	}
	if n := srv.Count("ModifyDBCluster"); n != 0 {
		t.Fatalf("a refused upgrade sent %d ModifyDBCluster", n)
	}
	runStep(t, r, "drop-cloned-replication", "")
	runStep(t, r, "upgrade-green", "")
	wantParams(t, onlyCall(t, srv, "ModifyDBCluster"), map[string]string{"DBClusterIdentifier": "green", "EngineVersion": "17.5",
		"AllowMajorVersionUpgrade": "true", "ApplyImmediately": "true", "DBClusterParameterGroupName": "green-cluster-pg17",
		"DBInstanceParameterGroupName": "green-pg17"})
	if cl, _ := srv.GetCluster("green"); cl.EngineVersion != "17.5" || cl.Status != "available" {
		t.Errorf("green after the upgrade: %+v", cl)
	}
	if v := queryOne[string](t, a.Green, "SHOW server_version_num"); !strings.HasPrefix(v, "17") {
		t.Errorf("green runs %s after upgrade-green", v)
	}
	assertPlanned(t, planText(r, "upgrade-green"), log.of("upgrade-green"))
	// Upgraded, green no longer tells where the clone started.
	gs, _ := r.Find("green-start-lsn")
	if err := gs.Run(WithStep(ctx, gs.ID), r.Env(gs.ID)); !IsRefused(err) || !strings.Contains(err.Error(), "green runs PostgreSQL 17 and blue 15") {
		t.Errorf("green-start-lsn on an upgraded green: %v", err)
	}

	runStep(t, r, "create-green-readers", "")
	readers := srv.Calls("CreateDBInstance")
	if len(readers) != 2 {
		t.Fatalf("CreateDBInstance calls: %d", len(readers))
	}
	wantParams(t, readers[1], map[string]string{"DBClusterIdentifier": "green", "DBInstanceIdentifier": "green-reader-1",
		"DBInstanceClass": "db.r6g.large", "Engine": "aurora-postgresql", "DBParameterGroupName": "green-pg17", "PubliclyAccessible": "false"})
	assertPlanned(t, planText(r, "create-green-readers"), log.of("create-green-readers"))

	runStep(t, r, "decommission", "test: the SQL steps between are not under test")
	wantParams(t, onlyCall(t, srv, "CreateDBClusterSnapshot"), map[string]string{"DBClusterIdentifier": "blue", "DBClusterSnapshotIdentifier": "blue-final-pgbg"})
	if _, ok := srv.GetCluster("blue"); !ok || srv.Count("DeleteDBCluster") != 0 {
		t.Error("decommission deleted blue without aws.delete_blue")
	}
	assertPlanned(t, planText(r, "decommission"), log.of("decommission"))
	for _, call := range log.calls {
		if call.step == "" {
			t.Errorf("%s was made outside a step", call.call)
		}
	}
	t.Logf("aurora-clone calls by step:\n%s", callReport(log, r))
}

func mustLSN(t *testing.T, s string) string {
	t.Helper()
	l, err := parseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// callReport lists each step's calls in order, polls collapsed.
func callReport(l *apiLog, r *Runner) string {
	var b strings.Builder
	for _, s := range r.Steps {
		if n := names(l.of(s.ID)); len(n) > 0 {
			fmt.Fprintf(&b, "%s: %s\n", s.ID, strings.Join(n, ", "))
		}
	}
	return b.String()
}
