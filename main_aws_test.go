package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// The AWS strategies end to end from the command line: `run --through`
// against the fake AWS (the real SDK clients, sent there by the SDK's own
// AWS_ENDPOINT_URL), the SQL steps that are not AWS's either run for real
// on a lab's PostgreSQL or skipped with `pgbluegreen skip`, and the journal
// read back: every API call is there, under its step, with no secret.

// upLab starts a lab for strategy with the shared lab harness (which skips
// outside CI, and fails under CI=true, when the lab cannot run here).
func upLab(t *testing.T, strategy string) *lab.Info {
	t.Helper()
	return labtest.Start(t, labtest.StartParams{Strategy: strategy})
}

// awsConfig writes a configuration for an AWS strategy on the lab's blue.
func awsConfig(t *testing.T, info *lab.Info, strategy, green, awsSection string) string {
	t.Helper()
	y := fmt.Sprintf(`strategy: %s
blue:
  conninfo: %q
green:
  conninfo: %q
replication:
  role: %s
  password:
    pgpass_file: %s
publications:
  - name: pgbg_all
schemas: [public, inventory]
cutover:
  method: readonly
aws:
  poll_interval: 1ms
%s`, strategy, info.Blue.Conninfo, green, info.ReplicationRole, info.Pgpass, awsSection)
	path := filepath.Join(t.TempDir(), "pgbluegreen.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// must runs the program and fails the test unless it exits 0.
func must(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := cli(t, args...)
	if code != exitOK {
		t.Fatalf("pgbluegreen %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func sqlExec(t *testing.T, conninfo, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, conninfo)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if !strings.HasPrefix(sql, "SELECT") {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return ""
	}
	var out string
	if err := conn.QueryRow(ctx, sql).Scan(&out); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// apiCalls reads the journal's API calls: step -> calls in order, polls of
// a wait collapsed. It fails on a call without a step.
func apiCalls(t *testing.T, statePath string) (map[string][]string, []state.Entry) {
	t.Helper()
	entries, _, err := state.ReadJournal(journalPath(statePath), 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var api []state.Entry
	for _, e := range entries {
		if e.Kind != "api" {
			continue
		}
		api = append(api, e)
		if e.Step == "" || e.Target != "aws" {
			t.Errorf("journal: %s without its step or target", e.Text)
		}
		call := strings.Join(strings.Fields(e.Text)[:2], " ")
		if l := out[e.Step]; len(l) > 0 && l[len(l)-1] == call && strings.Contains(call, "Describe") {
			continue
		}
		out[e.Step] = append(out[e.Step], call)
	}
	return out, api
}

func report(order []string, calls map[string][]string) string {
	var b strings.Builder
	for _, id := range order {
		if len(calls[id]) > 0 {
			fmt.Fprintf(&b, "%s: %s\n", id, strings.Join(calls[id], ", "))
		}
	}
	return b.String()
}

func TestAuroraCloneThroughCLI(t *testing.T) {
	blue, twin := upLab(t, "copy"), upLab(t, "clone") // twin's blue (15) stands for the clone
	srv := awstest.New(t)
	srv.Env(t)
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "blue-cluster-pg15", Cluster: true})
	srv.AddCluster(awstest.Cluster{ID: "blue", EngineVersion: "15.4", ParameterGroup: "blue-cluster-pg15",
		SubnetGroup: "blue-subnets", SecurityGroupIDs: []string{"sg-111"}})
	srv.AddInstance(awstest.Instance{ID: "blue-writer", ClusterID: "blue", Class: "db.r6g.large"})
	secretARN := srv.AddSecret("app/db-green", `{"host":"green","password":"switch-secret-never-journaled"}`)
	srv.AddSecret("app/db", `{"host":"blue","password":"old"}`)
	srv.AddHostedZone("Z0123")
	cfg := awsConfig(t, blue, "aurora-clone", twin.Blue.Conninfo, fmt.Sprintf(`  blue_cluster: blue
  green_cluster: green
  engine_version: "17.5"
  cluster_parameter_group: green-cluster-pg17
  instance_parameter_group: green-pg17
  readers:
    - id: green-reader-1
  switch:
    secret_id: app/db
    secret_value_from: %s
    route53:
      hosted_zone_id: Z0123
      record: db.example.com
`, secretARN))
	st := filepath.Join(t.TempDir(), "state.json")
	g := []string{"--config", cfg, "--state", st}

	// `plan` shows the calls before any is made.
	plan := must(t, append([]string{"plan", "--format", "markdown"}, g...)...)
	for _, want := range []string{
		"rds RestoreDBClusterToPointInTime DBClusterIdentifier=green SourceDBClusterIdentifier=blue RestoreType=copy-on-write UseLatestRestorableTime=true",
		"rds ModifyDBCluster DBClusterIdentifier=green EngineVersion=17.5 AllowMajorVersionUpgrade=true ApplyImmediately=true DBClusterParameterGroupName=green-cluster-pg17 DBInstanceParameterGroupName=green-pg17",
		"secretsmanager PutSecretValue SecretId=app/db SecretString=(secret)",
		"route53 ChangeResourceRecordSets HostedZoneId=Z0123 Action=UPSERT Name=db.example.com Type=CNAME TTL=60",
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	if len(srv.Requests()) != 0 {
		t.Fatalf("plan called AWS: %v", srv.Requests())
	}

	for _, id := range []string{"preflight", "create-replication-role"} {
		must(t, append([]string{"skip", id, "--reason", "SQL step, not under test here (rds_replication exists on RDS only)"}, g...)...)
	}
	must(t, append([]string{"run", "--through", "create-slots", "--yes"}, g...)...)
	// Aurora's function, on the stand-in for the clone: blue's WAL position
	// after the slot (the one thing here that is not the real thing).
	sqlExec(t, blue.Blue.Conninfo, "SELECT pg_logical_emit_message(true, 'pgbg-test', 'after the slot')::text")
	seed := sqlExec(t, blue.Blue.Conninfo, "SELECT pg_current_wal_insert_lsn()::text")
	sqlExec(t, twin.Blue.Conninfo, fmt.Sprintf("CREATE FUNCTION aurora_volume_logical_start_lsn() RETURNS pg_lsn LANGUAGE sql AS $$ SELECT '%s'::pg_lsn $$", seed))
	must(t, append([]string{"run", "--through", "upgrade-green", "--yes"}, g...)...)
	must(t, append([]string{"run", "create-green-readers"}, g...)...)
	must(t, append([]string{"run", "switch-traffic", "--yes", "--force", "test: the cutover's SQL is not under test here"}, g...)...)
	must(t, append([]string{"run", "decommission", "--yes", "--force", "test: the cleanup's SQL is not under test here"}, g...)...)

	out := must(t, append([]string{"status", "--json"}, g...)...)
	for _, want := range []string{`"key": "green_start_lsn"`, `"value": "` + seed + `"`, `"key": "green_endpoint"`, `"key": "final_snapshot_id"`} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %s", want)
		}
	}
	if cl, _ := srv.GetCluster("green"); cl.EngineVersion != "17.5" || cl.SourceID != "blue" || cl.RestoreType != "copy-on-write" {
		t.Errorf("green: %+v", cl)
	}

	// Again through the same steps: all done, nothing sent. A lost state
	// file: the check finds the clone, it is not made twice.
	before := len(srv.Requests())
	must(t, append([]string{"run", "--through", "upgrade-green", "--yes"}, g...)...)
	if len(srv.Requests()) != before {
		t.Errorf("a second run --through called AWS %d times", len(srv.Requests())-before)
	}
	out = must(t, "run", "clone-cluster", "--force", "test: a lost state file", "--config", cfg, "--state", filepath.Join(t.TempDir(), "lost.json"))
	if !strings.Contains(out, "clone-cluster: found done") || srv.Count("RestoreDBClusterToPointInTime") != 1 {
		t.Errorf("second clone-cluster on a lost state: %s (%d restores)", out, srv.Count("RestoreDBClusterToPointInTime"))
	}

	calls, entries := apiCalls(t, st)
	for _, e := range entries {
		if strings.Contains(e.Text, "switch-secret-never-journaled") || strings.Contains(e.Error, "switch-secret-never-journaled") {
			t.Errorf("a secret value in the journal: %s", e.Text)
		}
	}
	t.Logf("aurora-clone, API calls by step (journal):\n%s", report([]string{"enable-logical-replication", "clone-cluster", "green-start-lsn", "upgrade-green", "create-green-readers", "switch-traffic", "decommission"}, calls))
}

func TestRDSSnapshotThroughCLI(t *testing.T) {
	info := upLab(t, "copy")
	srv := awstest.New(t)
	srv.Env(t)
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "blue-pg15"})
	srv.AddInstance(awstest.Instance{ID: "blue-1", Class: "db.m6g.large", Engine: "postgres", EngineVersion: "15.7",
		ParameterGroup: "blue-pg15", SubnetGroup: "blue-subnets", SecurityGroupIDs: []string{"sg-333"}})
	srv.AddParameter("/app/db/host", "blue-1.example", "String")
	cfg := awsConfig(t, info, "rds-snapshot", info.Green.Conninfo, `  blue_instance: blue-1
  green_instance: green-1
  engine_version: "17.5"
  instance_parameter_group: green-pg17
  multi_az: true
  iam_auth: true
  switch:
    ssm_parameter: /app/db/host
`)
	st := filepath.Join(t.TempDir(), "state.json")
	g := []string{"--config", cfg, "--state", st}
	for _, id := range []string{"preflight", "create-replication-role"} {
		must(t, append([]string{"skip", id, "--reason", "SQL step, not under test here (rds_replication exists on RDS only)"}, g...)...)
	}
	must(t, append([]string{"run", "--through", "create-slots", "--yes"}, g...)...)
	sqlExec(t, info.Blue.Conninfo, "SELECT pg_logical_emit_message(true, 'pgbg-test', 'after the slot')::text")
	srv.RedoLSN = sqlExec(t, info.Blue.Conninfo, "SELECT pg_current_wal_insert_lsn()::text")
	must(t, append([]string{"run", "--through", "green-start-lsn", "--yes"}, g...)...)
	must(t, append([]string{"run", "switch-traffic", "--yes", "--force", "test: the cutover's SQL is not under test here"}, g...)...)
	must(t, append([]string{"run", "decommission", "--yes", "--force", "test: the cleanup's SQL is not under test here"}, g...)...)

	out := must(t, append([]string{"status", "--json"}, g...)...)
	if !strings.Contains(out, `"key": "green_start_lsn"`) || !strings.Contains(out, `"key": "green_redo_done"`) {
		t.Errorf("status lacks the seed:\n%s", out)
	}
	if v, _ := srv.ParameterValue("/app/db/host"); !strings.HasPrefix(v, "green-1.") {
		t.Errorf("/app/db/host = %q", v)
	}
	if _, ok := srv.GetSnapshot("blue-1-final-pgbg", false); !ok {
		t.Error("no final snapshot of blue")
	}
	if _, ok := srv.GetInstance("blue-1"); !ok {
		t.Error("blue deleted without aws.delete_blue")
	}
	calls, _ := apiCalls(t, st)
	t.Logf("rds-snapshot, API calls by step (journal):\n%s", report([]string{"enable-logical-replication", "snapshot-blue", "upgrade-snapshot", "restore-green", "green-start-lsn", "switch-traffic", "decommission"}, calls))
}
