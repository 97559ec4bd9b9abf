package aws_test

import (
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
)

func TestPlansRenderTheCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan []aws.PlannedCall
		want []string
	}{
		{"parameters", aws.SetParametersParams{Group: "blue-cpg", Cluster: true, Settings: aws.LogicalReplicationSettings}.Plan(), []string{
			"rds ModifyDBClusterParameterGroup DBClusterParameterGroupName=blue-cpg Parameters=rds.logical_replication=1,max_replication_slots=25,max_wal_senders=25,max_logical_replication_workers=25,max_worker_processes=50 ApplyMethod=pending-reboot",
		}},
		{"clone with blue's defaults", aws.CloneClusterParams{SourceClusterID: "blue", ClusterID: "green"}.Plan(), []string{
			"rds RestoreDBClusterToPointInTime DBClusterIdentifier=green SourceDBClusterIdentifier=blue RestoreType=copy-on-write UseLatestRestorableTime=true DBSubnetGroupName=(blue's) VpcSecurityGroupIds=(blue's) DeletionProtection=true EnableCloudwatchLogsExports=postgresql DBClusterParameterGroupName=(blue's)",
			"rds CreateDBInstance DBClusterIdentifier=green DBInstanceIdentifier=green-writer DBInstanceClass=(blue writer's) Engine=(blue's)",
		}},
		{"secret value hidden", aws.PutSecretParams{SecretID: "prod/db", Value: "hunter2"}.Plan(), []string{
			"secretsmanager PutSecretValue SecretId=prod/db SecretString=(secret)",
		}},
		{"secure string hidden", aws.PutParameterParams{Name: "/x", Value: "hunter2", Type: "SecureString"}.Plan(), []string{
			"ssm PutParameter Name=/x Value=(secret) Type=SecureString Overwrite=true",
		}},
		{"delete keeps the final snapshot", aws.DeleteClusterParams{ClusterID: "blue", FinalSnapshotID: "blue-final"}.Plan(), []string{
			"rds DeleteDBInstance DBInstanceIdentifier=(each member) DBClusterIdentifier=blue",
			"rds DeleteDBCluster DBClusterIdentifier=blue SkipFinalSnapshot=false FinalDBSnapshotIdentifier=blue-final",
		}},
		{"dns", aws.UpsertCNAMEParams{HostedZoneID: "Z1", Name: "db.example.com", Target: "green.example.com"}.Plan(), []string{
			"route53 ChangeResourceRecordSets HostedZoneId=Z1 Action=UPSERT Name=db.example.com Type=CNAME TTL=60 Value=green.example.com",
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

// TestJournalIsThePlan runs operations whose values are all known up front
// and checks that each journal entry holds exactly the plan's parameters.
func TestJournalIsThePlan(t *testing.T) {
	f := newFixture(t)
	f.srv.AddInstance(awstest.Instance{ID: "blue", Class: "db.m6g.large", EngineVersion: "14.10"})
	f.srv.AddHostedZone("Z1")
	f.srv.AddSecret("prod/db", "old")
	ops := []struct {
		plan aws.PlannedCall
		run  func() error
	}{
		{aws.CreateSnapshotParams{InstanceID: "blue", SnapshotID: "s1"}.Plan()[0], func() error {
			_, err := f.c.CreateSnapshot(f.ctx, aws.CreateSnapshotParams{InstanceID: "blue", SnapshotID: "s1"})
			return err
		}},
		{aws.UpsertCNAMEParams{HostedZoneID: "Z1", Name: "db.example.com", Target: "g", TTL: 5}.Plan()[0], func() error {
			_, err := f.c.UpsertCNAME(f.ctx, aws.UpsertCNAMEParams{HostedZoneID: "Z1", Name: "db.example.com", Target: "g", TTL: 5})
			return err
		}},
		{aws.PutSecretParams{SecretID: "prod/db", Value: "hunter2"}.Plan()[0], func() error {
			_, err := f.c.PutSecret(f.ctx, aws.PutSecretParams{SecretID: "prod/db", Value: "hunter2"})
			return err
		}},
	}
	for _, op := range ops {
		if err := op.run(); err != nil {
			t.Fatalf("%s: %v", op.plan.Call, err)
		}
		var entry *journalEntry
		for i := range f.j.entries {
			if f.j.entries[i].call == op.plan.Call {
				entry = &f.j.entries[i]
			}
		}
		if entry == nil {
			t.Fatalf("no journal entry for %s", op.plan.Call)
		}
		want := map[string]string{}
		for _, p := range op.plan.Params {
			if !p.Secret {
				want[p.Key] = p.Value
			}
		}
		if len(entry.params) != len(want) {
			t.Errorf("%s: journal %v, plan %v", op.plan.Call, entry.params, want)
		}
		wantParams(t, op.plan.Call, entry.params, want)
	}
}
