package steps

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// The traffic steps against the stand-in: switch-traffic records each
// previous value before changing it, sends nothing twice, says what a
// half-done switch did and did not do, and revertTraffic puts every
// previous value back (issue 11 item 4); runbook 000's steps around the
// cutover use the same record (issue 14 item 5).

const blueHost = "blue-1.cfake0000000.us-east-1.rds.amazonaws.com"

// trafficRunner is an rds-snapshot runner without pools whose AWS client
// journals into the run's journal, with the application's settings at
// blue: a secret, an SSM parameter for the host, one for the proxy and a
// CNAME of 300 s.
func trafficRunner(t *testing.T, edit func(*config.Config)) (*Runner, *awstest.Server, *apiLog, string) {
	t.Helper()
	srv := awstest.New(t)
	seedRDSBlue(srv)
	srv.AddSecret("app/db", `{"host":"`+blueHost+`","password":"blue-pw"}`)
	srv.AddParameter("/app/db/host", blueHost, "String")
	srv.AddParameter("/app/db/proxy", "proxy.example.internal", "String")
	srv.AddHostedZone("Z0123")
	r, _, jpath := offlineRunner(t, srv, func(c *config.Config) {
		rdsConfig(c)
		c.AWS.Switch = config.Switch{SecretID: "app/db", SecretValueFrom: "PGBG_TEST_GREEN_SETTINGS", SSMParameter: "/app/db/host",
			SSMDelete: []string{"/app/db/proxy"}, Route53: config.Route53{HostedZoneID: "Z0123", Record: "db.example.com"}}
		edit(c)
	})
	// The record as the application found it before the switch.
	if _, err := newDryRunClient(t, srv).ChangeRecord(context.Background(), changeCNAME("db.example.com", blueHost, 300)); err != nil {
		t.Fatal(err)
	}
	log := &apiLog{}
	r.Steps = Strategy("rds-snapshot")
	r.AWS = newAWSClientJournal(t, srv, log, time.Millisecond, r.Journal)
	t.Setenv("PGBG_TEST_GREEN_SETTINGS", `{"host":"green","password":"green-pw-never-journaled"}`)
	if err := r.Env("").Record("green_endpoint", "green-1.cfake0000000.us-east-1.rds.amazonaws.com"); err != nil {
		t.Fatal(err)
	}
	return r, srv, log, jpath
}

// TestSwitchTrafficThenRevert (issue 11 item 4): switch, switch again (a
// re-run sends nothing and AWSPREVIOUS keeps blue's version), then revert:
// every previous value is back, the DNS change waited for until in sync.
func TestSwitchTrafficThenRevert(t *testing.T) {
	r, srv, log, jpath := trafficRunner(t, func(*config.Config) {})
	ctx := context.Background()
	blueVersion := srv.SecretStages("app/db")["AWSCURRENT"]
	blueParam, _ := srv.ParameterVersion("/app/db/host")
	green, _ := r.Env("").Value("green_endpoint")

	// The dry run shows the switch with the values read live.
	dry := dryRunText(t, r, srv, "switch-traffic")
	for _, want := range []string{
		"secretsmanager GetSecretValue SecretId=app/db  -- its current version",
		"secretsmanager PutSecretValue SecretId=app/db SecretString=(secret)  -- recorded first: previous version " + blueVersion,
		"ssm PutParameter Name=/app/db/host Value=" + green + " Type=String Overwrite=true  -- recorded first: version 1",
		"ssm DeleteParameter Name=/app/db/proxy  -- recorded first: its value and type (String)",
		"route53 ChangeResourceRecordSets HostedZoneId=Z0123 Action=UPSERT Name=db.example.com Type=CNAME TTL=60 Value=" + green,
		"  -- recorded first: CNAME TTL 300 " + blueHost,
	} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run lacks %q:\n%s", want, dry)
		}
	}

	runStep(t, r, "switch-traffic", "test: the cutover is not under test")
	assertSwitched(t, srv, green)
	if st := srv.SecretStages("app/db"); st["AWSPREVIOUS"] != blueVersion {
		t.Fatalf("AWSPREVIOUS after the switch: %v, want blue's %s", st, blueVersion)
	}
	assertPlanned(t, planText(r, "switch-traffic"), log.of("switch-traffic"))
	rec, _ := r.Env("").loadChanges("switch-traffic")
	if len(rec) != 4 || rec[0].Kind != "secret" || rec[0].PrevVersion != blueVersion || !rec[0].Done || rec[1].PrevValue != blueHost || rec[3].PrevTTL != 300 {
		t.Fatalf("the record: %+v", rec)
	}

	// Again (a re-run after a crash): nothing is sent twice.
	s, _ := r.Find("switch-traffic")
	if err := s.Run(WithStep(ctx, s.ID), r.Env(s.ID)); err != nil {
		t.Fatal(err)
	}
	for action, n := range map[string]int{"PutSecretValue": 1, "PutParameter": 1, "DeleteParameter": 1, "ChangeResourceRecordSets": 2} {
		if got := srv.Count(action); got != n {
			t.Errorf("%s sent %d times after a re-run, want %d", action, got, n)
		}
	}
	if st := srv.SecretStages("app/db"); st["AWSPREVIOUS"] != blueVersion {
		t.Errorf("AWSPREVIOUS after a re-run: %v", st)
	}

	// The rollback's revert, shown first, then made.
	env := r.Env("rollback")
	acts, err := env.revertTrafficPlan(WithStep(ctx, "rollback"))
	if err != nil {
		t.Fatal(err)
	}
	plan := actionsText(acts)
	for _, want := range []string{
		"route53 ChangeResourceRecordSets HostedZoneId=Z0123 Action=UPSERT Name=db.example.com Type=CNAME TTL=300 Value=" + blueHost,
		"ssm PutParameter Name=/app/db/proxy Value=proxy.example.internal Type=String Overwrite=true",
		"ssm PutParameter Name=/app/db/host Value=" + blueHost + " Type=String Overwrite=true",
		"secretsmanager UpdateSecretVersionStage SecretId=app/db VersionStage=AWSCURRENT MoveToVersionId=" + blueVersion,
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("revert plan lacks %q:\n%s", want, plan)
		}
	}
	insync := srv.Count("GetChange")
	if err := env.revertTraffic(WithStep(ctx, "rollback")); err != nil {
		t.Fatal(err)
	}
	if v, _ := srv.SecretValue("app/db"); !strings.Contains(v, "blue-pw") {
		t.Errorf("secret after the revert: %q", v)
	}
	if st := srv.SecretStages("app/db"); st["AWSCURRENT"] != blueVersion || srv.SecretVersionCount("app/db") != 2 {
		t.Errorf("secret stages after the revert: %v (%d versions: the old value is never written again)", st, srv.SecretVersionCount("app/db"))
	}
	if p, _ := srv.ParameterVersion("/app/db/host"); p.Value != blueHost || p.Type != blueParam.Type {
		t.Errorf("/app/db/host after the revert: %+v", p)
	}
	if v, ok := srv.ParameterValue("/app/db/proxy"); !ok || v != "proxy.example.internal" {
		t.Errorf("/app/db/proxy after the revert: %q %v", v, ok)
	}
	if rec, ok := srv.GetRecord("Z0123", "db.example.com", "CNAME"); !ok || rec.TTL != 300 || rec.Values[0] != blueHost {
		t.Errorf("CNAME after the revert: %+v", rec)
	}
	if srv.Count("GetChange") <= insync {
		t.Error("the revert did not wait for the DNS change to be in sync")
	}
	for _, c := range log.of("rollback") {
		if !shownByDryRun(c.text, strings.Split(plan, "\n")) && c.err == nil {
			t.Errorf("the revert made %s, which its plan did not show", c.text)
		}
	}
	// Twice: nothing is sent again.
	moves := srv.Count("UpdateSecretVersionStage")
	if err := env.revertTraffic(ctx); err != nil || srv.Count("UpdateSecretVersionStage") != moves {
		t.Errorf("a second revert: %v, %d moves", err, srv.Count("UpdateSecretVersionStage"))
	}
	if b, err := os.ReadFile(jpath); err != nil || strings.Contains(string(b), "green-pw-never-journaled") || strings.Contains(string(b), "blue-pw") {
		t.Errorf("a secret value reached the journal (or it is unreadable: %v)", err)
	}
}

// TestSwitchTrafficHalfDone (issue 14 item 6): a switch stopped by a
// refused call says what it did and did not do; the re-run finishes it
// without putting the secret again.
func TestSwitchTrafficHalfDone(t *testing.T) {
	r, srv, _, _ := trafficRunner(t, func(*config.Config) {})
	blueVersion := srv.SecretStages("app/db")["AWSCURRENT"]
	srv.Fail("PutParameter", awstest.Fault{Code: "AccessDeniedException", Message: "not authorized to perform ssm:PutParameter", Times: 1})
	_, err := r.Run(context.Background(), "switch-traffic", RunParams{Confirmed: true, Override: "test"})
	if err == nil || !strings.Contains(err.Error(), "switch-traffic stopped half-way: done: secret app/db; NOT done: parameter /app/db/host, parameter /app/db/proxy deleted, DNS record db.example.com") ||
		!strings.Contains(err.Error(), "ssm PutParameter: access denied") || !strings.Contains(err.Error(), "run switch-traffic again to finish") {
		t.Fatalf("half-done: %v", err)
	}
	runStep(t, r, "switch-traffic", "test")
	if n := srv.Count("PutSecretValue"); n != 1 {
		t.Errorf("the secret was put %d times", n)
	}
	if st := srv.SecretStages("app/db"); st["AWSPREVIOUS"] != blueVersion {
		t.Errorf("AWSPREVIOUS: %v, want blue's %s", st, blueVersion)
	}
	assertSwitched(t, srv, r.Env("").V("green_endpoint"))
}

// TestSwitchTrafficDoneByPgBouncer (issue 11 item 4): nothing configured to
// switch and the cutover moved the traffic through PgBouncer: done, not a
// refusal to skip by hand.
func TestSwitchTrafficDoneByPgBouncer(t *testing.T) {
	r, _, _ := offlineRunner(t, awstest.New(t), func(c *config.Config) {})
	if why := refusedStep(t, r, "switch-traffic", "test"); !strings.Contains(why, "pgbluegreen skip switch-traffic") {
		t.Errorf("before the cutover: %s", why)
	}
	if err := r.Env("cutover").Record(CutoverDoneAtKey, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		t.Fatal(err)
	}
	if out := runStep(t, r, "switch-traffic", "test"); out != OutcomeFoundDone {
		t.Errorf("after a PgBouncer cutover: %s, want found done", out)
	}
}

// TestRunbook000TrafficSteps (issue 14 item 5): before the cutover the
// proxy and reader settings go and the secret points at PgBouncer; after
// it, the secret at green, the reader secret at green's readers, the reader
// settings back. Each step records what it changed; the rollback puts back
// the switch and the readers (the application then reaches blue through
// PgBouncer, as set before the cutover).
func TestRunbook000TrafficSteps(t *testing.T) {
	r, srv, _, _ := trafficRunner(t, func(c *config.Config) {
		c.AWS.Switch = config.Switch{SecretID: "prod/DatabaseSecrets", SecretValueFrom: "PGBG_DB_GREEN"}
		c.AWS.PreCutover = config.TrafficChanges{SecretID: "prod/DatabaseSecrets", SecretValueFrom: "PGBG_DB_PGBOUNCER",
			SSMDelete: []string{"/medplum/prod/databaseProxyEndpoint", "/medplum/prod/ReaderDatabaseSecrets", "/medplum/prod/readonlyDatabase.disableConnectionConfiguration"}}
		c.AWS.PostCutover = config.TrafficChanges{SecretID: "prod/ReaderDatabaseSecrets", SecretValueFrom: "PGBG_READER_GREEN",
			SSMRestore: []string{"/medplum/prod/ReaderDatabaseSecrets"},
			SSMPut:     []config.SSMValue{{Name: "/medplum/prod/readonlyDatabase.disableConnectionConfiguration", Value: "true"}}}
	})
	ctx := context.Background()
	readerARN := srv.AddSecret("prod/ReaderDatabaseSecrets", `{"host":"blue-ro","password":"r"}`)
	srv.AddSecret("prod/DatabaseSecrets", `{"host":"blue","password":"b"}`)
	srv.AddParameter("/medplum/prod/databaseProxyEndpoint", "proxy.internal", "String")
	srv.AddParameter("/medplum/prod/ReaderDatabaseSecrets", readerARN, "String")
	t.Setenv("PGBG_DB_PGBOUNCER", `{"host":"pgbouncer","password":"b"}`)
	t.Setenv("PGBG_DB_GREEN", `{"host":"green","password":"g"}`)
	t.Setenv("PGBG_READER_GREEN", `{"host":"green-ro","password":"g"}`)
	blueDB, blueReader := srv.SecretStages("prod/DatabaseSecrets")["AWSCURRENT"], srv.SecretStages("prod/ReaderDatabaseSecrets")["AWSCURRENT"]

	// Offline, readers-to-green says where its restored value comes from.
	if plan := planText(r, "readers-to-green"); !strings.Contains(plan, "Value=<") || !strings.Contains(plan, "as traffic-to-pgbouncer records it>") {
		t.Errorf("offline plan:\n%s", plan)
	}
	if why := refusedStep(t, r, "readers-to-green", "test: out of order"); !strings.Contains(why, "run traffic-to-pgbouncer first") {
		t.Errorf("readers-to-green before traffic-to-pgbouncer: %s", why)
	}
	runStep(t, r, "traffic-to-pgbouncer", "test")
	if v, _ := srv.SecretValue("prod/DatabaseSecrets"); !strings.Contains(v, "pgbouncer") {
		t.Errorf("DatabaseSecrets before the cutover: %s", v)
	}
	for _, n := range []string{"/medplum/prod/databaseProxyEndpoint", "/medplum/prod/ReaderDatabaseSecrets"} {
		if _, ok := srv.ParameterValue(n); ok {
			t.Errorf("%s still there", n)
		}
	}
	checkDone(t, r, "traffic-to-pgbouncer")
	pgbVersion := srv.SecretStages("prod/DatabaseSecrets")["AWSCURRENT"]
	runStep(t, r, "switch-traffic", "test: the cutover is not under test")
	runStep(t, r, "readers-to-green", "test")
	if v, _ := srv.SecretValue("prod/ReaderDatabaseSecrets"); !strings.Contains(v, "green-ro") {
		t.Errorf("reader secret after the cutover: %s", v)
	}
	if v, _ := srv.ParameterValue("/medplum/prod/ReaderDatabaseSecrets"); v != readerARN {
		t.Errorf("ReaderDatabaseSecrets parameter after the cutover: %q, want the ARN recorded before it (%s)", v, readerARN)
	}
	if v, _ := srv.ParameterValue("/medplum/prod/readonlyDatabase.disableConnectionConfiguration"); v != "true" {
		t.Errorf("disableConnectionConfiguration: %q", v)
	}
	checkDone(t, r, "readers-to-green")

	if err := r.Env("rollback").revertTraffic(WithStep(ctx, "rollback")); err != nil {
		t.Fatal(err)
	}
	if st := srv.SecretStages("prod/DatabaseSecrets"); st["AWSCURRENT"] != pgbVersion {
		t.Errorf("DatabaseSecrets after the rollback: %v, want PgBouncer's %s (blue's was %s)", st, pgbVersion, blueDB)
	}
	if st := srv.SecretStages("prod/ReaderDatabaseSecrets"); st["AWSCURRENT"] != blueReader {
		t.Errorf("reader secret after the rollback: %v, want %s", st, blueReader)
	}
	for _, n := range []string{"/medplum/prod/ReaderDatabaseSecrets", "/medplum/prod/readonlyDatabase.disableConnectionConfiguration"} {
		if _, ok := srv.ParameterValue(n); ok {
			t.Errorf("%s is there after the rollback; it was not before readers-to-green", n)
		}
	}
	if rec, _ := r.Env("").loadChanges("traffic-to-pgbouncer"); len(rec) != 3 || rec[0].Reverted {
		t.Errorf("traffic-to-pgbouncer's record after the rollback: %+v", rec)
	}
}

// TestSSMDeleteRefusesSecureString: a SecureString's value would be lost
// (pgbluegreen never stores one): deleting it is refused, nothing sent.
func TestSSMDeleteRefusesSecureString(t *testing.T) {
	r, srv, _, _ := trafficRunner(t, func(c *config.Config) {
		c.AWS.PreCutover = config.TrafficChanges{SSMDelete: []string{"/app/secret"}}
	})
	srv.AddParameter("/app/secret", "s3cr3t", "SecureString")
	if why := refusedStep(t, r, "traffic-to-pgbouncer", "test"); !strings.Contains(why, "is a SecureString") {
		t.Errorf("refusal: %s", why)
	}
	if srv.Count("DeleteParameter") != 0 {
		t.Error("a SecureString was deleted")
	}
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

// dryRunText is a step's dry run as `run STEP --dry-run` shows it: a
// client that journals nothing, the live values read.
func dryRunText(t *testing.T, r *Runner, srv *awstest.Server, id string) string {
	t.Helper()
	s, _ := r.Find(id)
	e := r.Env(id)
	e.AWS = newDryRunClient(t, srv)
	acts, err := s.RenderPlan(context.Background(), e)
	if err != nil {
		t.Fatalf("%s dry run: %v", id, err)
	}
	return actionsText(acts)
}

func actionsText(acts []Action) string {
	var b strings.Builder
	for _, a := range acts {
		b.WriteString(a.Text + "\n")
	}
	return b.String()
}

// checkDone fails unless a step's check finds it done.
func checkDone(t *testing.T, r *Runner, id string) {
	t.Helper()
	s, _ := r.Find(id)
	if res, err := s.Check(WithStep(context.Background(), id), r.Env(id)); err != nil || !res.Done {
		t.Errorf("%s check: %+v %v", id, res, err)
	}
}
