package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest/awslab"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// The AWS strategies end to end from the command line, `run --through
// decommission` against the AWS stand-in (the real SDK clients, sent there
// by the SDK's own AWS_ENDPOINT_URL) with the lab behind it (awslab: the
// clone or the restore is a real copy of blue, upgraded with pg_upgrade),
// so every step runs, the cutover included. Each AWS step is first shown
// with --dry-run, which makes read calls only and shows the live values;
// the journal is read back: every API call under its step, no secret.

// awsLabConfig writes the lab's own configuration turned into strategy,
// with an AWS section.
func awsLabConfig(t *testing.T, info *lab.Info, strategy, awsSection string) string {
	t.Helper()
	b, err := os.ReadFile(info.Config)
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "strategy: clone", "strategy: "+strategy, 1) + "aws:\n  poll_interval: 1ms\n" + awsSection
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

func sqlExec(t *testing.T, conninfo, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, conninfo)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
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
		if l := out[e.Step]; len(l) > 0 && l[len(l)-1] == call && (strings.Contains(call, "Describe") || strings.Contains(call, "GetChange")) {
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

// dryRunReadsOnly runs `run STEP --dry-run` and fails unless every call it
// made is a read, and the output shows each want.
func dryRunReadsOnly(t *testing.T, srv *awstest.Server, g []string, id string, want ...string) {
	t.Helper()
	before := len(srv.Requests())
	out := must(t, append([]string{"run", id, "--dry-run"}, g...)...)
	for _, r := range srv.Requests()[before:] {
		if !strings.HasPrefix(r.Action, "Describe") && !strings.HasPrefix(r.Action, "Get") && !strings.HasPrefix(r.Action, "List") && r.Action != "DownloadDBLogFilePortion" {
			t.Errorf("%s --dry-run made %s %s", id, r.Service, r.Action)
		}
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s --dry-run lacks %q:\n%s", id, w, out)
		}
	}
}

// throughDecommission runs every step of the strategy from the command
// line, the optional AWS ones included, ending with run --through
// decommission; the AWS steps after a dry run each.
func throughDecommission(t *testing.T, srv *awstest.Server, info *lab.Info, g []string, provision map[string][]string) {
	t.Helper()
	sqlExec(t, info.Blue.Conninfo, "CREATE ROLE rds_replication") // RDS has it built in
	must(t, append([]string{"run", "--through", "create-slots", "--yes"}, g...)...)
	for _, id := range []string{"clone-cluster", "snapshot-blue", "upgrade-snapshot", "restore-green", "green-start-lsn", "upgrade-green", "create-green-readers"} {
		want, ok := provision[id]
		if !ok {
			continue
		}
		if id == "upgrade-green" {
			must(t, append([]string{"run", "drop-cloned-replication", "--yes"}, g...)...)
		}
		dryRunReadsOnly(t, srv, g, id, want...)
		must(t, append([]string{"run", "--through", id, "--yes"}, g...)...)
	}
	// The optional DDL recorder in its place; removed at cleanup below.
	must(t, append([]string{"run", "--through", "compare-schema", "--yes"}, g...)...)
	must(t, append([]string{"run", "record-ddl", "--yes"}, g...)...)
	must(t, append([]string{"run", "--through", "verify-data", "--yes"}, g...)...)
	must(t, append([]string{"run", "copy-unlogged", "--yes"}, g...)...)
	dryRunReadsOnly(t, srv, g, "traffic-to-pgbouncer", "ssm DeleteParameter Name=/app/db/proxy")
	must(t, append([]string{"run", "traffic-to-pgbouncer", "--yes"}, g...)...)
	// The cutover under the lab's load on both databases.
	stop := labtest.StartLoad(t, info.Dir, labtest.LoadParams{Rate: 100, Clients: 2})
	out := must(t, append([]string{"run", "--through", "cutover", "--yes"}, g...)...)
	ledgersWhole(t, info, stop())
	if !strings.Contains(out, "drain (billing)") || !strings.Contains(out, "drain (app)") {
		t.Errorf("the cutover did not drain both databases:\n%s", out)
	}
	dryRunReadsOnly(t, srv, g, "switch-traffic", "secretsmanager PutSecretValue SecretId=app/db SecretString=(secret)")
	must(t, append([]string{"run", "switch-traffic", "--yes"}, g...)...)
	must(t, append([]string{"run", "readers-to-green", "--yes"}, g...)...)
	must(t, append([]string{"run", "--through", "revert-replica-identity", "--yes"}, g...)...)
	must(t, append([]string{"run", "remove-ddl-recorder", "--yes"}, g...)...)
	dryRunReadsOnly(t, srv, g, "decommission", "[operator operator]")
	must(t, append([]string{"run", "--through", "decommission", "--yes"}, g...)...)
	var st struct {
		Steps []struct {
			ID, Status string
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(must(t, append([]string{"status", "--json"}, g...)...)), &st); err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Steps {
		if s.Status != "done" && s.ID != "rollback" {
			t.Errorf("step %s is %s after run --through decommission", s.ID, s.Status)
		}
	}
}

// clonedFeeds are the feeds an Aurora clone carries from blue, in each of
// the lab's databases.
var clonedFeeds = map[string][]string{lab.AppDB: {"pgbg_all"}, lab.BillingDB: {"pgbg_all_billing"}}

// ledgersWhole checks that the load wrote to both of the lab's databases
// and that every write it was told of is where PgBouncer sends each now,
// once.
func ledgersWhole(t *testing.T, info *lab.Info, res lab.LoadResult) {
	t.Helper()
	v, err := lab.Verify(context.Background(), info.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Databases) != 2 {
		t.Fatalf("lab verify checked %d databases, want app and billing: %+v", len(v.Databases), v)
	}
	for _, d := range v.Databases {
		t.Logf("%s: %d writes acknowledged, %d lost, %d duplicated (target %s)", d.Database, d.LedgerEntries, d.Lost, d.Duplicated, d.Target)
		if d.LedgerEntries == 0 || d.Lost != 0 || d.Duplicated != 0 {
			t.Errorf("%s after the cutover: %+v (load %+v)", d.Database, d, res)
		}
	}
}

// trafficSeeds are the application's settings in the stand-in.
func trafficSeeds(t *testing.T, srv *awstest.Server) string {
	srv.AddSecret("app/db", `{"host":"blue","password":"blue-pw"}`)
	srv.AddParameter("/app/db/proxy", "proxy.internal", "String")
	srv.AddHostedZone("Z0123")
	t.Setenv("PGBG_TEST_PGBOUNCER", `{"host":"pgbouncer","password":"never-journaled-1"}`)
	return srv.AddSecret("app/db-green", `{"host":"green","password":"never-journaled-2"}`)
}

const trafficYAML = `  pre_cutover:
    secret_id: app/db
    secret_value_from: PGBG_TEST_PGBOUNCER
    ssm_delete: [/app/db/proxy]
  switch:
    secret_id: app/db
    secret_value_from: %s
    route53:
      hosted_zone_id: Z0123
      record: db.example.com
`

func TestAuroraCloneThroughCLI(t *testing.T) {
	info := labtest.Start(t, labtest.StartParams{Strategy: "clone"})
	srv := awstest.New(t)
	srv.Env(t)
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "blue-cluster-pg15", Cluster: true})
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "green-cluster-pg17", Cluster: true, Family: "aurora-postgresql17", Values: map[string]string{"rds.logical_replication": "1"}})
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "green-pg17", Family: "aurora-postgresql17"})
	srv.AddCluster(awstest.Cluster{ID: "blue", EngineVersion: "15.4", ParameterGroup: "blue-cluster-pg15",
		SubnetGroup: "blue-subnets", SecurityGroupIDs: []string{"sg-111"}})
	srv.AddInstance(awstest.Instance{ID: "blue-writer", ClusterID: "blue", Class: "db.r6g.large"})
	greenARN := trafficSeeds(t, srv)
	cfg := awsLabConfig(t, info, "aurora-clone", `  blue_cluster: blue
  green_cluster: green
  engine_version: "17.5"
  cluster_parameter_group: green-cluster-pg17
  instance_parameter_group: green-pg17
  readers:
    - id: green-reader-1
`+fmt.Sprintf(trafficYAML, greenARN))
	st := filepath.Join(t.TempDir(), "state.json")
	g := []string{"--config", cfg, "--state", st}
	srv.Backend = awslab.Aurora(awslab.Params{Clone: cloneParams(info), Relics: clonedFeeds})

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
	throughDecommission(t, srv, info, g, map[string][]string{
		// The dry run shows what the offline plan leaves as <blue's ...>.
		"clone-cluster":        {"DBSubnetGroupName=blue-subnets VpcSecurityGroupIds=sg-111", "DBInstanceClass=db.r6g.large Engine=aurora-postgresql PubliclyAccessible=false"},
		"green-start-lsn":      {"it answers "},
		"upgrade-green":        {"rds DescribeDBEngineVersions Engine=aurora-postgresql EngineVersion=15.4"},
		"create-green-readers": {"rds CreateDBInstance DBClusterIdentifier=green DBInstanceIdentifier=green-reader-1"},
	})
	if cl, _ := srv.GetCluster("green"); cl.EngineVersion != "17.5" || cl.SourceID != "blue" || cl.RestoreType != "copy-on-write" {
		t.Errorf("green: %+v", cl)
	}
	if _, ok := srv.GetSnapshot("blue-final-pgbg", true); !ok {
		t.Error("no final snapshot of blue")
	}
	checkJournal(t, st, "aurora-clone", []string{"preflight", "enable-logical-replication", "clone-cluster", "green-start-lsn", "upgrade-green",
		"create-green-readers", "traffic-to-pgbouncer", "switch-traffic", "readers-to-green", "decommission"})
}

func TestRDSSnapshotThroughCLI(t *testing.T) {
	info := labtest.Start(t, labtest.StartParams{Strategy: "clone"})
	srv := awstest.New(t)
	srv.Env(t)
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "blue-pg15"})
	srv.AddParameterGroup(awstest.ParameterGroup{Name: "green-pg17", Family: "postgres17", Values: map[string]string{"rds.logical_replication": "1"}})
	srv.AddInstance(awstest.Instance{ID: "blue-1", Class: "db.m6g.large", Engine: "postgres", EngineVersion: "15.7",
		ParameterGroup: "blue-pg15", SubnetGroup: "blue-subnets", SecurityGroupIDs: []string{"sg-333"}})
	greenARN := trafficSeeds(t, srv)
	cfg := awsLabConfig(t, info, "rds-snapshot", `  blue_instance: blue-1
  green_instance: green-1
  engine_version: "17.5"
  instance_parameter_group: green-pg17
  multi_az: true
  iam_auth: true
`+fmt.Sprintf(trafficYAML, greenARN))
	st := filepath.Join(t.TempDir(), "state.json")
	g := []string{"--config", cfg, "--state", st}
	srv.Backend = awslab.RDS(awslab.Params{Clone: cloneParams(info)})
	throughDecommission(t, srv, info, g, map[string][]string{
		"snapshot-blue":    {"rds CreateDBSnapshot DBInstanceIdentifier=blue-1 DBSnapshotIdentifier=green-1-from-blue"},
		"upgrade-snapshot": {"rds DescribeDBEngineVersions Engine=postgres EngineVersion=15.7"},
		"restore-green":    {"DBInstanceClass=db.m6g.large DBParameterGroupName=green-pg17 DBSubnetGroupName=blue-subnets VpcSecurityGroupIds=sg-333", "DeletionProtection=true"},
		"green-start-lsn":  {"rds DescribeDBLogFiles DBInstanceIdentifier=green-1 FileLastWritten=", "LogFileName=error/postgresql.log."},
	})
	out := must(t, append([]string{"status", "--json"}, g...)...)
	if !strings.Contains(out, `"key": "green_start_lsn"`) || !strings.Contains(out, `"key": "green_redo_done"`) {
		t.Errorf("status lacks the seed:\n%s", out)
	}
	if in, _ := srv.GetInstance("green-1"); in.PubliclyAccessible || !in.DeletionProtection || in.EngineVersion != "17.5" {
		t.Errorf("green: %+v", in)
	}
	if _, ok := srv.GetSnapshot("blue-1-final-pgbg", false); !ok {
		t.Error("no final snapshot of blue")
	}
	checkJournal(t, st, "rds-snapshot", []string{"preflight", "enable-logical-replication", "snapshot-blue", "upgrade-snapshot", "restore-green",
		"green-start-lsn", "traffic-to-pgbouncer", "switch-traffic", "readers-to-green", "decommission"})
}

// checkJournal reads the API calls back: each under its step, no secret
// value anywhere, and logs the calls by step for the closing note.
func checkJournal(t *testing.T, st, strategy string, order []string) {
	t.Helper()
	calls, entries := apiCalls(t, st)
	for _, e := range entries {
		if strings.Contains(e.Text, "never-journaled") || strings.Contains(e.Error, "never-journaled") {
			t.Errorf("a secret value in the journal: %s", e.Text)
		}
	}
	t.Logf("%s, API calls by step (journal, polls collapsed):\n%s", strategy, report(order, calls))
}

// cloneParams is the lab's clone as its configuration describes it.
func cloneParams(info *lab.Info) pg.CloneParams {
	return pg.CloneParams{BlueConninfo: info.Blue.Conninfo, GreenConninfo: info.Clone.Conninfo, BlueBindir: info.Blue.BinDir,
		GreenBindir: info.Green.BinDir, DataDir: info.Clone.DataDir, Port: info.Clone.Port, OSUser: info.OSUser}
}
