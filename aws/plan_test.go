package aws_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
)

func TestPlansRenderTheCalls(t *testing.T) {
	since := time.UnixMilli(1732183200000)
	for _, tc := range []struct {
		name string
		plan []aws.PlannedCall
		want []string
	}{
		{"parameters", aws.SetParametersParams{Group: "blue-cpg", Cluster: true, Settings: aws.LogicalReplicationSettings}.Plan(), []string{
			"rds ModifyDBClusterParameterGroup DBClusterParameterGroupName=blue-cpg Parameters=rds.logical_replication=1,max_replication_slots=25,max_wal_senders=25,max_logical_replication_workers=25,max_worker_processes=50 ApplyMethod=pending-reboot",
		}},
		{"clone", cloneParams().Plan(), []string{
			"rds RestoreDBClusterToPointInTime DBClusterIdentifier=green SourceDBClusterIdentifier=blue RestoreType=copy-on-write UseLatestRestorableTime=true DBSubnetGroupName=blue-subnets VpcSecurityGroupIds=sg-111,sg-222 DeletionProtection=true EnableCloudwatchLogsExports=postgresql DBClusterParameterGroupName=blue-cluster-pg15",
		}},
		{"writer", aws.CreateClusterInstanceParams{ClusterID: "green", InstanceID: "green-writer", Class: "db.r6g.large", Engine: "aurora-postgresql"}.Plan(), []string{
			"rds CreateDBInstance DBClusterIdentifier=green DBInstanceIdentifier=green-writer DBInstanceClass=db.r6g.large Engine=aurora-postgresql PubliclyAccessible=false",
		}},
		{"secret value hidden", aws.PutSecretParams{SecretID: "prod/db", Value: "hunter2"}.Plan(), []string{
			"secretsmanager PutSecretValue SecretId=prod/db SecretString=(secret)",
		}},
		{"secure string hidden", aws.PutParameterParams{Name: "/x", Value: "hunter2", Type: "SecureString"}.Plan(), []string{
			"ssm PutParameter Name=/x Value=(secret) Type=SecureString Overwrite=true",
		}},
		{"delete keeps the final snapshot", aws.DeleteClusterParams{ClusterID: "blue", Members: []string{"w", "r"}, FinalSnapshotID: "blue-final"}.Plan(), []string{
			"rds DeleteDBInstance DBInstanceIdentifier=w",
			"rds DeleteDBInstance DBInstanceIdentifier=r",
			"rds DeleteDBCluster DBClusterIdentifier=blue SkipFinalSnapshot=false FinalDBSnapshotIdentifier=blue-final",
		}},
		{"dns", aws.ChangeRecordParams{HostedZoneID: "Z1", Name: "db.example.com", Values: []string{"green.example.com"}}.Plan(), []string{
			"route53 ChangeResourceRecordSets HostedZoneId=Z1 Action=UPSERT Name=db.example.com Type=CNAME TTL=60 Value=green.example.com",
		}},
		{"logs in milliseconds", aws.FindRedoDoneParams{InstanceID: "g", Since: since}.Plan(), []string{
			"rds DescribeDBLogFiles DBInstanceIdentifier=g FileLastWritten=1732183200000",
			"rds DownloadDBLogFilePortion DBInstanceIdentifier=g LogFileName=<each file, oldest first, until the line is found> Marker=<0, then each Marker returned>",
		}},
		{"secret stage", aws.MoveStageParams{SecretID: "s", Stage: aws.StageCurrent, MoveTo: "v1", RemoveFrom: "v2"}.Plan(), []string{
			"secretsmanager UpdateSecretVersionStage SecretId=s VersionStage=AWSCURRENT MoveToVersionId=v1 RemoveFromVersionId=v2",
		}},
		{"parameter version", aws.GetParameterParams{Name: "/x", Version: 3, Decrypt: true}.Plan(), []string{
			"ssm GetParameter Name=/x:3 WithDecryption=true",
		}},
	} {
		var got []string
		for _, c := range tc.plan {
			got = append(got, c.String())
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, strings.Join(got, "\n     "), strings.Join(tc.want, "\n     "))
		}
	}
}

// TestJournalIsThePlan runs operations, reads and writes, and checks that
// each journal entry is exactly the line its Params' Plan() shows.
func TestJournalIsThePlan(t *testing.T) {
	f := newFixture(t)
	f.srv.AddInstance(awstest.Instance{ID: "blue", Class: "db.m6g.large", EngineVersion: "15.7"})
	f.srv.AddHostedZone("Z1")
	f.srv.AddSecret("prod/db", "old")
	change := aws.ChangeRecordParams{HostedZoneID: "Z1", Name: "db.example.com", Values: []string{"g"}, TTL: 5}
	ops := []struct {
		plan []aws.PlannedCall
		run  func() error
	}{
		{aws.DescribeInstanceParams{InstanceID: "blue"}.Plan(), func() error {
			_, err := f.c.DescribeInstance(f.ctx, aws.DescribeInstanceParams{InstanceID: "blue"})
			return err
		}},
		{aws.CreateSnapshotParams{InstanceID: "blue", SnapshotID: "s1"}.Plan(), func() error {
			return f.c.CreateSnapshot(f.ctx, aws.CreateSnapshotParams{InstanceID: "blue", SnapshotID: "s1"})
		}},
		{change.Plan(), func() error {
			_, err := f.c.ChangeRecord(f.ctx, change)
			return err
		}},
		{aws.PutSecretParams{SecretID: "prod/db", Value: "hunter2"}.Plan(), func() error {
			_, err := f.c.PutSecret(f.ctx, aws.PutSecretParams{SecretID: "prod/db", Value: "hunter2"})
			return err
		}},
		{aws.EngineVersionParams{Engine: "postgres", Version: "15.7"}.Plan(), func() error {
			_, _, err := f.c.DescribeEngineVersion(f.ctx, aws.EngineVersionParams{Engine: "postgres", Version: "15.7"})
			return err
		}},
	}
	for _, op := range ops {
		n := len(f.j.entries)
		if err := op.run(); err != nil {
			t.Fatalf("%s: %v", op.plan[0].Call, err)
		}
		if got := f.j.entries[n:]; len(got) != 1 || got[0].text != op.plan[0].String() {
			t.Errorf("journal %+v, plan %s", got, op.plan[0])
		}
		if strings.Contains(f.j.entries[n].text, "hunter2") {
			t.Errorf("a secret in the journal: %s", f.j.entries[n].text)
		}
	}
}
