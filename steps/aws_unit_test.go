package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// Tests of the AWS steps that need no PostgreSQL: the fake AWS, a state
// file and a journal in a temporary folder, and a runner without pools.

// offlineRunner is a runner for strategy on the fake, with its journal path.
func offlineRunner(t *testing.T, srv *awstest.Server, edit func(*config.Config)) (*Runner, *apiLog, string) {
	t.Helper()
	c, err := config.Parse([]byte(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	edit(c)
	if p := c.Validate(); len(p) > 0 {
		t.Fatalf("config: %v", p)
	}
	dir := t.TempDir()
	store, err := state.Open(filepath.Join(dir, "state.json"), state.OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	jpath := filepath.Join(dir, "journal.jsonl")
	j, err := state.OpenJournal(jpath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close(); store.Close() })
	log := &apiLog{}
	r := NewRunner(c, store, j)
	r.AWS = newAWSClient(t, srv, log, time.Millisecond)
	return r, log, jpath
}

// TestAWSErrorsOneLine: access denied, invalid state and not found each
// fail the step with one line naming the call, its kind and the fix.
func TestAWSErrorsOneLine(t *testing.T) {
	cases := []struct {
		name, action, step, want string
		fault                    awstest.Fault
	}{
		{"access denied", "ModifyDBParameterGroup", "enable-logical-replication", "rds ModifyDBParameterGroup",
			awstest.Fault{Code: "AccessDenied", Message: "not authorized to perform rds:ModifyDBParameterGroup", Status: 403}},
		{"invalid state", "RebootDBInstance", "enable-logical-replication", "rds RebootDBInstance",
			awstest.Fault{Code: "InvalidDBInstanceState", Message: "Instance blue-1 is not currently in the available state."}},
		{"not found", "", "upgrade-snapshot", "rds DescribeDBSnapshots", awstest.Fault{}},
	}
	kinds := map[string]string{"access denied": "access denied", "invalid state": "invalid state", "not found": "not found"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := awstest.New(t)
			seedRDSBlue(srv)
			r, _, _ := offlineRunner(t, srv, rdsConfig)
			r.Steps = Strategy("rds-snapshot")
			if tc.action != "" {
				srv.Fail(tc.action, tc.fault)
			}
			// upgrade-snapshot: the snapshot recorded does not exist.
			if err := r.Env("").Record("snapshot_id", "gone"); err != nil {
				t.Fatal(err)
			}
			_, err := r.Run(context.Background(), tc.step, RunParams{Confirmed: true, Override: "test"})
			if st := stepStatus(r, tc.step); st != state.Failed {
				t.Errorf("status %s, want failed", st)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), kinds[tc.name]) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line naming %s and %q", err, tc.want, kinds[tc.name])
			}
			t.Log(err)
		})
	}
}

// TestSwitchTrafficSelfManaged: the copy strategy switches traffic through
// AWS too when configured: the SSM parameter and the CNAME point at green's
// host from green.conninfo, the secret gets the value from the environment
// (never journaled), and the check then finds it all done.
func TestSwitchTrafficSelfManaged(t *testing.T) {
	srv := awstest.New(t)
	srv.AddSecret("app/db", `{"host":"blue"}`)
	srv.AddHostedZone("Z9")
	t.Setenv("PGBG_TEST_SWITCH", `{"host":"127.0.0.1","password":"never-in-the-journal"}`)
	r, log, jpath := offlineRunner(t, srv, func(c *config.Config) {
		c.AWS.Region = awstest.Region
		c.AWS.Switch = config.Switch{SecretID: "app/db", SecretValueFrom: "PGBG_TEST_SWITCH", SSMParameter: "/app/db/host",
			Route53: config.Route53{HostedZoneID: "Z9", Record: "db.internal", TTL: 30}}
	})
	if !r.Config.NeedsAWS() {
		t.Fatal("a copy strategy with a switch must get an AWS client")
	}
	if _, err := r.Run(context.Background(), "switch-traffic", RunParams{Override: "test"}); !IsRefused(err) || !strings.Contains(err.Error(), "destructive") {
		t.Fatalf("without confirmation: %v", err)
	}
	runStep(t, r, "switch-traffic", "test")
	if v, _ := srv.ParameterValue("/app/db/host"); v != "127.0.0.1" {
		t.Errorf("/app/db/host = %q", v)
	}
	if rec, ok := srv.GetRecord("Z9", "db.internal.", "CNAME"); !ok || rec.TTL != 30 || strings.TrimSuffix(rec.Values[0], ".") != "127.0.0.1" {
		t.Errorf("CNAME: %+v", rec)
	}
	if v, _ := srv.SecretValue("app/db"); !strings.Contains(v, "never-in-the-journal") {
		t.Errorf("secret: %q", v)
	}
	s, _ := r.Find("switch-traffic")
	if res, err := s.Check(WithStep(context.Background(), s.ID), r.Env(s.ID)); err != nil || !res.Done {
		t.Errorf("check after the switch: %+v %v", res, err)
	}
	assertPlanned(t, planText(r, "switch-traffic"), log.of("switch-traffic"))
	if b, err := os.ReadFile(jpath); err != nil || strings.Contains(string(b), "never-in-the-journal") {
		t.Errorf("the secret reached the journal (or it is unreadable: %v)", err)
	}
	for _, c := range log.of("switch-traffic") {
		for _, v := range c.params {
			if strings.Contains(v, "never-in-the-journal") {
				t.Errorf("%s journaled the secret", c.call)
			}
		}
	}
}

// TestSwitchTrafficNotConfigured refuses and says how to go on.
func TestSwitchTrafficNotConfigured(t *testing.T) {
	r, _, _ := offlineRunner(t, awstest.New(t), func(c *config.Config) {})
	if why := refusedStep(t, r, "switch-traffic", "test"); !strings.Contains(why, "pgbluegreen skip switch-traffic") {
		t.Errorf("refusal: %s", why)
	}
}

// TestDecommissionSelfManaged records the operator's confirmation; no AWS.
func TestDecommissionSelfManaged(t *testing.T) {
	r, _, _ := offlineRunner(t, awstest.New(t), func(c *config.Config) {})
	r.AWS = nil
	if _, err := r.Run(context.Background(), "decommission", RunParams{Override: "test"}); !IsRefused(err) {
		t.Fatalf("without confirmation: %v", err)
	}
	runStep(t, r, "decommission", "test")
	if v, ok := r.Env("").Value("decommission_confirmed"); !ok || !strings.HasPrefix(v, "confirmed by the operator") {
		t.Errorf("decommission_confirmed = %q", v)
	}
}

// TestDecommissionRefusesProtectedBlue: with aws.delete_blue, a blue with
// deletion protection is refused before anything is deleted.
func TestDecommissionRefusesProtectedBlue(t *testing.T) {
	srv := awstest.New(t)
	srv.AddCluster(awstest.Cluster{ID: "blue", EngineVersion: "15.4", DeletionProtection: true})
	srv.AddInstance(awstest.Instance{ID: "blue-writer", ClusterID: "blue", Class: "db.r6g.large"})
	r, _, _ := offlineRunner(t, srv, func(c *config.Config) {
		c.Strategy = "aurora-clone"
		c.AWS = config.AWS{Region: awstest.Region, BlueCluster: "blue", GreenCluster: "green", EngineVersion: "17.5", DeleteBlue: true}
	})
	r.Steps = Strategy("aurora-clone")
	_, err := r.Run(context.Background(), "decommission", RunParams{Confirmed: true, Override: "test"})
	if !IsRefused(err) || !strings.Contains(err.Error(), "has deletion protection on") {
		t.Fatalf("protected blue: %v", err)
	}
	if srv.Count("DeleteDBInstance")+srv.Count("DeleteDBCluster") != 0 {
		t.Error("something was deleted")
	}
}

// TestReplicationPasswordFromSecretARN: the password of a JSON secret, read
// through the runner's client; without AWS access, a clear error.
func TestReplicationPasswordFromSecretARN(t *testing.T) {
	srv := awstest.New(t)
	arn := srv.AddSecret("pgbg/repl", `{"username":"pgbg_repl","password":"from-secrets-manager"}`)
	r, _, _ := offlineRunner(t, srv, func(c *config.Config) {
		c.AWS.Region = awstest.Region
		c.Replication.Password = config.PasswordSource{SecretARN: arn}
	})
	if _, err := r.Config.ReplicationPassword(); err == nil || !strings.Contains(err.Error(), "needs AWS access") {
		t.Fatalf("before a client: %v", err)
	}
	r.Config.UseAWS(r.AWS) // as main.go does when it builds the client
	env := r.Env("create-replication-role")
	pw, err := env.Config.ReplicationPassword()
	if err != nil || pw != "from-secrets-manager" {
		t.Fatalf("password %q, %v", pw, err)
	}
	srv.Fail("GetSecretValue", awstest.Fault{Code: "AccessDeniedException", Message: "denied", Status: 400})
	if _, err := env.Config.ReplicationPassword(); err == nil || !strings.Contains(err.Error(), "secretsmanager GetSecretValue") {
		t.Fatalf("denied: %v", err)
	}
}

// TestUpgradeSnapshotIdempotent: a snapshot at the target version already
// is left alone, and the check says so.
func TestUpgradeSnapshotIdempotent(t *testing.T) {
	srv := awstest.New(t)
	seedRDSBlue(srv)
	srv.AddSnapshot(awstest.Snapshot{ID: "green-1-from-blue", SourceID: "blue-1", Status: "available", Engine: "postgres", EngineVersion: "17.5"}, false)
	r, _, _ := offlineRunner(t, srv, rdsConfig)
	r.Steps = Strategy("rds-snapshot")
	if err := r.Env("snapshot-blue").Record("snapshot_id", "green-1-from-blue"); err != nil {
		t.Fatal(err)
	}
	if out := runStep(t, r, "upgrade-snapshot", "test"); out != OutcomeFoundDone {
		t.Errorf("outcome %s, want found done", out)
	}
	if srv.Count("ModifyDBSnapshot") != 0 {
		t.Error("an upgraded snapshot was modified again")
	}
}

// TestUpgradeGreenRefusedWithoutSeed: even past the ordering checks, the
// upgrade is refused until the seed is recorded (the upgrade resets WAL
// positions); nothing is sent.
func TestUpgradeGreenRefusedWithoutSeed(t *testing.T) {
	srv := awstest.New(t)
	srv.AddCluster(awstest.Cluster{ID: "green", EngineVersion: "15.4"})
	r, _, _ := offlineRunner(t, srv, func(c *config.Config) {
		c.Strategy = "aurora-clone"
		c.AWS = config.AWS{Region: awstest.Region, BlueCluster: "blue", GreenCluster: "green", EngineVersion: "17.5"}
	})
	r.Steps = Strategy("aurora-clone")
	if why := refusedStep(t, r, "upgrade-green", "test"); !strings.Contains(why, "green_start_lsn is not recorded") {
		t.Errorf("refusal: %s", why)
	}
	if srv.Count("ModifyDBCluster") != 0 {
		t.Error("a refused upgrade was sent")
	}
}
