package aws_test

import (
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

const greenSecret = `{"username":"app","password":"s3cr3t-green","host":"green.cluster-x.us-east-1.rds.amazonaws.com"}`

func TestSecretSwitchNeverJournalsTheValue(t *testing.T) {
	f := newFixture(t)
	arn := f.srv.AddSecret("prod/DatabaseSecrets", `{"username":"app","password":"s3cr3t-blue"}`)

	res, err := f.c.PutSecret(f.ctx, aws.PutSecretParams{SecretID: arn, Value: greenSecret})
	if err != nil {
		t.Fatalf("PutSecret: %v", err)
	}
	if res.ARN != arn || res.VersionID == "" {
		t.Errorf("PutSecret = %+v", res)
	}
	put := only(t, f.srv, "PutSecretValue")
	if put.Service != "secretsmanager" || put.Params["SecretId"] != arn || put.Params["SecretString"] != greenSecret {
		t.Errorf("request %+v", put)
	}
	if put.Params["ClientRequestToken"] == "" {
		t.Error("no idempotency token sent (the SDK fills it in)")
	}
	if v, _ := f.srv.SecretValue("prod/DatabaseSecrets"); v != greenSecret {
		t.Errorf("secret now %q", v)
	}
	got, err := f.c.GetSecret(f.ctx, aws.GetSecretParams{SecretID: "prod/DatabaseSecrets"})
	if err != nil || got.Value != greenSecret || got.Name != "prod/DatabaseSecrets" {
		t.Fatalf("GetSecret = %+v, %v", got, err)
	}
	for _, e := range f.j.entries {
		if strings.Contains(e.text, "s3cr3t") {
			t.Errorf("journal entry %s", e.text)
		}
	}
	if calls := f.j.calls(); len(calls) != 2 || calls[0] != "secretsmanager PutSecretValue" || calls[1] != "secretsmanager GetSecretValue" {
		t.Errorf("journal calls %v", calls)
	}
}

func TestReplicationPasswordFromSecret(t *testing.T) {
	f := newFixture(t)
	jsonARN := f.srv.AddSecret("repl-json", `{"username":"repl","password":"p@ss \"quoted\""}`)
	rawARN := f.srv.AddSecret("repl-raw", "just-the-password")
	badARN := f.srv.AddSecret("repl-bad", `{"username":"repl"}`)

	if pw, err := f.c.Password(f.ctx, aws.GetSecretParams{SecretID: jsonARN}); err != nil || pw != `p@ss "quoted"` {
		t.Errorf("JSON secret: %q, %v", pw, err)
	}
	if pw, err := f.c.Password(f.ctx, aws.GetSecretParams{SecretID: rawARN}); err != nil || pw != "just-the-password" {
		t.Errorf("raw secret: %q, %v", pw, err)
	}
	if _, err := f.c.Password(f.ctx, aws.GetSecretParams{SecretID: badARN}); err == nil || !strings.Contains(err.Error(), `"password"`) {
		t.Errorf("secret without password: %v", err)
	}
	if _, err := aws.SecretPassword(`{"password": "x"`); err == nil || strings.Contains(err.Error(), `"x"`) {
		t.Errorf("broken JSON: %v (must not echo the value)", err)
	}
	_, err := f.c.Password(f.ctx, aws.GetSecretParams{SecretID: "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing"})
	if !aws.IsNotFound(err) || !strings.HasPrefix(err.Error(), "secretsmanager GetSecretValue: not found (ResourceNotFoundException): ") {
		t.Errorf("missing secret: %v", err)
	}
}

func TestSSMParameters(t *testing.T) {
	f := newFixture(t)
	f.srv.AddParameter("/medplum/prod/ReaderDatabaseSecrets", "arn:reader-blue", "String")

	got, err := f.c.GetParameter(f.ctx, aws.GetParameterParams{Name: "/medplum/prod/ReaderDatabaseSecrets"})
	if err != nil || got.Value != "arn:reader-blue" || got.Version != 1 {
		t.Fatalf("GetParameter = %+v, %v", got, err)
	}
	put, err := f.c.PutParameter(f.ctx, aws.PutParameterParams{Name: "/medplum/prod/ReaderDatabaseSecrets", Value: "arn:reader-green"})
	if err != nil || put.Version != 2 {
		t.Fatalf("PutParameter = %+v, %v", put, err)
	}
	wantParams(t, "put", only(t, f.srv, "PutParameter").Params, map[string]string{
		"Name": "/medplum/prod/ReaderDatabaseSecrets", "Value": "arn:reader-green", "Type": "String", "Overwrite": "true",
	})
	del, err := f.c.DeleteParameter(f.ctx, aws.DeleteParameterParams{Name: "/medplum/prod/ReaderDatabaseSecrets"})
	if err != nil || !del.Deleted {
		t.Fatalf("DeleteParameter = %+v, %v", del, err)
	}
	// Deleting again is fine (the goal is absence); reading is not found.
	if del, err := f.c.DeleteParameter(f.ctx, aws.DeleteParameterParams{Name: "/medplum/prod/ReaderDatabaseSecrets"}); err != nil || del.Deleted {
		t.Errorf("second DeleteParameter = %+v, %v", del, err)
	}
	_, err = f.c.GetParameter(f.ctx, aws.GetParameterParams{Name: "/medplum/prod/ReaderDatabaseSecrets"})
	if !aws.IsNotFound(err) || !strings.Contains(err.Error(), "ssm GetParameter: not found (ParameterNotFound)") {
		t.Errorf("GetParameter after delete: %v", err)
	}
	if r := f.srv.Calls("GetParameter")[0]; r.Service != "ssm" {
		t.Errorf("service %q", r.Service)
	}
}

func TestDNSSwitchUpsertAndWaitInsync(t *testing.T) {
	f := newFixture(t)
	f.srv.AddHostedZone("Z0123456789")
	up := aws.ChangeRecordParams{HostedZoneID: "Z0123456789", Name: "writer.db.example.com",
		Values: []string{"green.cluster-x.us-east-1.rds.amazonaws.com"}, TTL: 30, Comment: "pgbluegreen cutover"}
	res, err := f.c.ChangeRecord(f.ctx, up)
	if err != nil {
		t.Fatalf("ChangeRecord: %v", err)
	}
	if res.Status != "PENDING" || !strings.HasPrefix(res.ChangeID, "/change/C") {
		t.Errorf("ChangeRecord = %+v", res)
	}
	wantParams(t, "change", only(t, f.srv, "ChangeResourceRecordSets").Params, map[string]string{
		"HostedZoneId": "Z0123456789", "Action": "UPSERT", "Name": "writer.db.example.com", "Type": "CNAME",
		"TTL": "30", "Value": "green.cluster-x.us-east-1.rds.amazonaws.com", "Comment": "pgbluegreen cutover",
	})
	var pr progress
	if err := f.c.WaitChange(f.ctx, aws.WaitChangeParams{ChangeID: res.ChangeID, Progress: pr.fn}); err != nil {
		t.Fatalf("WaitChange: %v", err)
	}
	if pr.String() != "PENDING,PENDING,available" {
		t.Errorf("change progress %q", pr.String())
	}
	// The SDK strips "/change/" from the ID before it builds the path.
	if id := f.srv.Calls("GetChange")[0].Params["Id"]; !strings.HasPrefix(id, "C") {
		t.Errorf("GetChange Id %q", id)
	}
	look, err := f.c.LookupRecord(f.ctx, aws.LookupRecordParams{HostedZoneID: "Z0123456789", Name: "writer.db.example.com"})
	if err != nil || !look.Found || look.Values[0] != "green.cluster-x.us-east-1.rds.amazonaws.com" || look.TTL != 30 || look.Type != "CNAME" {
		t.Errorf("LookupRecord = %+v, %v", look, err)
	}
	none, err := f.c.LookupRecord(f.ctx, aws.LookupRecordParams{HostedZoneID: "Z0123456789", Name: "reader.db.example.com"})
	if err != nil || none.Found {
		t.Errorf("LookupRecord of a missing name = %+v, %v", none, err)
	}
	// A DELETE must name the record exactly as it is.
	del := up
	del.Action, del.TTL = "DELETE", 60
	if _, err := f.c.ChangeRecord(f.ctx, del); err == nil || !strings.Contains(err.Error(), "InvalidChangeBatch") {
		t.Errorf("DELETE with another TTL: %v", err)
	}
	del.TTL = 30
	if _, err := f.c.ChangeRecord(f.ctx, del); err != nil {
		t.Errorf("DELETE as it is: %v", err)
	}
	if _, ok := f.srv.GetRecord("Z0123456789", "writer.db.example.com", "CNAME"); ok {
		t.Error("the record is still there")
	}
	_, err = f.c.ChangeRecord(f.ctx, aws.ChangeRecordParams{HostedZoneID: "ZNOPE", Name: "a.example.com", Values: []string{"b"}})
	if !aws.IsNotFound(err) || !strings.Contains(err.Error(), "route53 ChangeResourceRecordSets: not found (NoSuchHostedZone)") {
		t.Errorf("missing zone: %v", err)
	}
}

// TestSecretStagesMoveBack: a switch is undone by moving AWSCURRENT back
// to the version it replaced, which the tool never reads the value of;
// Secrets Manager refuses a move that does not name the current holder.
func TestSecretStagesMoveBack(t *testing.T) {
	f := newFixture(t)
	f.srv.AddSecret("app/db", "blue-settings")
	blue, err := f.c.GetSecret(f.ctx, aws.GetSecretParams{SecretID: "app/db"})
	if err != nil {
		t.Fatal(err)
	}
	green, err := f.c.PutSecret(f.ctx, aws.PutSecretParams{SecretID: "app/db", Value: "green-settings"})
	if err != nil {
		t.Fatal(err)
	}
	if st := f.srv.SecretStages("app/db"); st["AWSCURRENT"] != green.VersionID || st["AWSPREVIOUS"] != blue.VersionID {
		t.Fatalf("stages after the put: %v", st)
	}
	prev, err := f.c.GetSecret(f.ctx, aws.GetSecretParams{SecretID: "app/db", VersionStage: aws.StagePrevious})
	if err != nil || prev.VersionID != blue.VersionID || prev.Value != "blue-settings" {
		t.Fatalf("AWSPREVIOUS: %+v %v", prev, err)
	}
	if err := f.c.MoveStage(f.ctx, aws.MoveStageParams{SecretID: "app/db", Stage: aws.StageCurrent, MoveTo: blue.VersionID, RemoveFrom: "v-wrong"}); err == nil || !strings.Contains(err.Error(), "currently attached to version "+green.VersionID) {
		t.Fatalf("a move naming the wrong version: %v", err)
	}
	if err := f.c.MoveStage(f.ctx, aws.MoveStageParams{SecretID: "app/db", Stage: aws.StageCurrent, MoveTo: blue.VersionID, RemoveFrom: green.VersionID}); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.srv.SecretValue("app/db"); v != "blue-settings" {
		t.Errorf("current value after the move: %q", v)
	}
	if st := f.srv.SecretStages("app/db"); st["AWSCURRENT"] != blue.VersionID || st["AWSPREVIOUS"] != green.VersionID || f.srv.SecretVersionCount("app/db") != 2 {
		t.Errorf("stages after the move: %v (%d versions)", st, f.srv.SecretVersionCount("app/db"))
	}
}

// TestSSMHistory: a parameter's earlier versions stay readable with the
// "name:version" selector until it is deleted.
func TestSSMHistory(t *testing.T) {
	f := newFixture(t)
	f.srv.AddParameter("/app/host", "blue.example", "String")
	if _, err := f.c.PutParameter(f.ctx, aws.PutParameterParams{Name: "/app/host", Value: "green.example"}); err != nil {
		t.Fatal(err)
	}
	old, err := f.c.GetParameter(f.ctx, aws.GetParameterParams{Name: "/app/host", Version: 1})
	if err != nil || old.Value != "blue.example" || old.Version != 1 {
		t.Fatalf("version 1: %+v %v", old, err)
	}
	if _, err := f.c.GetParameter(f.ctx, aws.GetParameterParams{Name: "/app/host", Version: 7}); err == nil || !strings.Contains(err.Error(), "ParameterVersionNotFound") {
		t.Errorf("a version that never was: %v", err)
	}
	if _, found, err := f.c.FindParameter(f.ctx, aws.GetParameterParams{Name: "/nope"}); err != nil || found {
		t.Errorf("FindParameter of a missing one: %v %v", found, err)
	}
}
