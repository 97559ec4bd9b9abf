package steps

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// seedAuroraBlue is blue in the fake: an Aurora PostgreSQL 15 cluster with
// a writer and a reader, its cluster parameter group at the engine's
// defaults (logical replication off), in a subnet group with two security
// groups.
func seedAuroraBlue(srv *awstest.Server) {
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "blue-cluster-pg15", Cluster: true})
	srv.AddCluster(awstest.Cluster{ID: "blue", EngineVersion: "15.4", ParameterGroup: "blue-cluster-pg15",
		SubnetGroup: "blue-subnets", SecurityGroupIDs: []string{"sg-111", "sg-222"}})
	srv.AddInstance(awstest.Instance{ID: "blue-writer", ClusterID: "blue", Class: "db.r6g.large"})
	srv.AddInstance(awstest.Instance{ID: "blue-reader", ClusterID: "blue", Class: "db.r6g.large"})
}

// TestAWSAuroraCloneSteps runs every AWS step of aurora-clone through the
// runner against the fake AWS, with real PostgreSQL for what is SQL: blue's
// slots (made by the real create-slots), and as green a second PostgreSQL
// 15 server standing for the clone. It asserts the parameters of every
// call, the refusals (no slot yet, green upgraded before its seed was read,
// slots left on green), error lines, a cancelled wait found again by its
// check (the clone is not made twice), and that each call was in the plan.
func TestAWSAuroraCloneSteps(t *testing.T) {
	le, _ := startLab(t, "copy")
	twin, _ := startLab(t, "clone") // its blue (15) stands for the Aurora clone
	ctx := context.Background()

	srv := awstest.New(t)
	seedAuroraBlue(srv)
	srv.AddSecret("app/db", `{"host":"blue.example.internal","password":"blue-pw"}`)
	srv.AddParameter("/app/db/host", "blue.example.internal", "String")
	srv.AddParameter("/app/db/proxy", "proxy.example.internal", "String")
	srv.AddHostedZone("Z0123")
	log := &apiLog{}
	client := newAWSClient(t, srv, log, time.Millisecond)
	t.Setenv("PGBG_TEST_GREEN_SETTINGS", `{"host":"green","password":"green-pw-never-journaled"}`)

	c := le.Config
	c.Strategy = "aurora-clone"
	c.AWS = AWS{Region: awstest.Region, BlueCluster: "blue", GreenCluster: "green", EngineVersion: "17.5",
		ClusterParameterGroup: "green-cluster-pg17", InstanceParameterGroup: "green-pg17",
		Readers: []AWSReader{{ID: "green-reader-1"}},
		Switch: Switch{SecretID: "app/db", SecretValueFrom: "PGBG_TEST_GREEN_SETTINGS", SSMParameter: "/app/db/host",
			SSMDelete: []string{"/app/db/proxy"}, Route53: Route53{HostedZoneID: "Z0123", Record: "db.example.com"}}}
	if p := c.Validate(); len(p) > 0 {
		t.Fatalf("config: %v", p)
	}
	r := le.Runner
	r.Steps, r.AWS, r.Green = Strategy("aurora-clone"), client, twin.Blue

	skipSQL(t, r, "preflight")

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

	skipSQL(t, r, "create-replication-role") // rds_replication exists on RDS only
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
	// check and CloneCluster find the clone: it is not made twice.
	slow := newAWSClient(t, srv, log, time.Hour)
	r.AWS = slow
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		for srv.Count("CreateDBInstance") == 0 {
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
	r.AWS = client
	runStep(t, r, "clone-cluster", "")
	// Two restores: the one denied, the one that made the clone; none after
	// the cancel.
	restores := srv.Calls("RestoreDBClusterToPointInTime")
	if len(restores) != 2 {
		t.Fatalf("RestoreDBClusterToPointInTime called %d times, want 2 (denied, then made)", len(restores))
	}
	wantParams(t, restores[1], map[string]string{"DBClusterIdentifier": "green", "SourceDBClusterIdentifier": "blue",
		"RestoreType": "copy-on-write", "UseLatestRestorableTime": "true", "DBSubnetGroupName": "blue-subnets",
		"VpcSecurityGroupIds.VpcSecurityGroupId.1": "sg-111", "VpcSecurityGroupIds.VpcSecurityGroupId.2": "sg-222",
		"DeletionProtection": "true", "EnableCloudwatchLogsExports.member.1": "postgresql", "DBClusterParameterGroupName": "blue-cluster-pg15"})
	wantParams(t, onlyCall(t, srv, "CreateDBInstance"), map[string]string{"DBClusterIdentifier": "green",
		"DBInstanceIdentifier": "green-writer", "DBInstanceClass": "db.r6g.large", "Engine": "aurora-postgresql"})
	endpoint, _ := r.Env("").Value("green_endpoint")
	if !strings.HasPrefix(endpoint, "green.cluster-") {
		t.Errorf("green_endpoint = %q", endpoint)
	}
	assertPlanned(t, planText(r, "clone-cluster"), log.of("clone-cluster"))

	// The seed. The clone's start point is blue's WAL position after the
	// slot; aurora_volume_logical_start_lsn() is Aurora's, so the stand-in
	// for the clone answers it with a SQL function (the one thing not real).
	seed := queryOne[string](t, le.Blue, "SELECT pg_logical_emit_message(false, 'pgbg-test', 'after the slot')::text")
	seedAfter := queryOne[string](t, le.Blue, "SELECT pg_current_wal_insert_lsn()::text")
	setStart := func(lsn string) {
		t.Helper()
		if _, err := twin.Blue.Exec(ctx, fmt.Sprintf("CREATE OR REPLACE FUNCTION aurora_volume_logical_start_lsn() RETURNS pg_lsn LANGUAGE sql AS $$ SELECT %s::pg_lsn $$", quoteLiteral(lsn))); err != nil {
			t.Fatal(err)
		}
	}
	// Green on another major than blue (the lab's green is 17): upgraded
	// already, its start point is meaningless.
	r.Green = le.Green
	if why := refusedStep(t, r, "green-start-lsn", ""); !strings.Contains(why, "green runs PostgreSQL 17 and blue 15") {
		t.Errorf("refusal: %s", why)
	}
	r.Green = twin.Blue
	setStart("0/10") // before the slot: the clone would miss rows
	if why := refusedStep(t, r, "green-start-lsn", ""); !strings.Contains(why, "the clone predates the slot") {
		t.Errorf("refusal: %s", why)
	}
	setStart(seedAfter)
	runStep(t, r, "green-start-lsn", "")
	if got, _ := r.Env("").Value("green_start_lsn"); got != mustLSN(t, seedAfter) {
		t.Errorf("green_start_lsn = %s, want %s (emitted at %s)", got, seedAfter, seed)
	}

	// Trap 4: the slots inherited by the clone block the upgrade.
	if _, err := twin.Blue.Exec(ctx, "CREATE PUBLICATION pgbg_all FOR ALL TABLES"); err != nil {
		t.Fatal(err)
	}
	if _, err := twin.Blue.Exec(ctx, "SELECT pg_create_logical_replication_slot('pgbg_all', 'pgoutput')"); err != nil {
		t.Fatal(err)
	}
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
	assertPlanned(t, planText(r, "upgrade-green"), log.of("upgrade-green"))

	runStep(t, r, "create-green-readers", "")
	readers := srv.Calls("CreateDBInstance")
	if len(readers) != 2 {
		t.Fatalf("CreateDBInstance calls: %d", len(readers))
	}
	wantParams(t, readers[1], map[string]string{"DBClusterIdentifier": "green", "DBInstanceIdentifier": "green-reader-1",
		"DBInstanceClass": "db.r6g.large", "Engine": "aurora-postgresql", "DBParameterGroupName": "green-pg17"})

	runStep(t, r, "switch-traffic", "test: the SQL steps between are not under test")
	assertSwitched(t, srv, endpoint)
	assertPlanned(t, planText(r, "switch-traffic"), log.of("switch-traffic"))
	// Found done by its check the next time.
	sw, _ := r.Find("switch-traffic")
	if res, err := sw.Check(WithStep(ctx, sw.ID), r.Env(sw.ID)); err != nil || !res.Done {
		t.Errorf("switch-traffic check after the run: %+v %v", res, err)
	}

	runStep(t, r, "decommission", "test: the SQL steps between are not under test")
	wantParams(t, onlyCall(t, srv, "CreateDBClusterSnapshot"), map[string]string{"DBClusterIdentifier": "blue", "DBClusterSnapshotIdentifier": "blue-final-pgbg"})
	if _, ok := srv.GetCluster("blue"); !ok || srv.Count("DeleteDBCluster") != 0 {
		t.Error("decommission deleted blue without aws.delete_blue")
	}

	for _, call := range log.calls {
		if call.step == "" {
			t.Errorf("%s was made outside a step", call.call)
		}
	}
	journal, err := os.ReadFile(le.JournalPath)
	if err != nil || strings.Contains(string(journal), "green-pw-never-journaled") {
		t.Errorf("the new secret value reached the journal (or it is unreadable: %v)", err)
	}
	t.Logf("aurora-clone calls by step:\n%s", callReport(log, r))
}

// assertSwitched checks the secret, the parameters and the CNAME.
func assertSwitched(t *testing.T, srv *awstest.Server, endpoint string) {
	t.Helper()
	if v, _ := srv.SecretValue("app/db"); !strings.Contains(v, "green-pw-never-journaled") {
		t.Errorf("secret after switch-traffic: %q", v)
	}
	if v, _ := srv.ParameterValue("/app/db/host"); v != endpoint {
		t.Errorf("/app/db/host = %q, want %q", v, endpoint)
	}
	if _, ok := srv.ParameterValue("/app/db/proxy"); ok {
		t.Error("/app/db/proxy was not deleted")
	}
	rec, ok := srv.GetRecord("Z0123", "db.example.com.", "CNAME")
	if !ok || len(rec.Values) != 1 || strings.TrimSuffix(rec.Values[0], ".") != endpoint || rec.TTL != 60 {
		t.Errorf("CNAME after switch-traffic: %+v", rec)
	}
	if srv.Count("GetChange") == 0 {
		t.Error("no wait for INSYNC")
	}
}

func mustLSN(t *testing.T, s string) string {
	t.Helper()
	l, err := pg.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l.String()
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
