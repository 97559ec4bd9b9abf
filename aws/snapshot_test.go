package aws_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
)

func TestRDSSnapshotStrategy(t *testing.T) {
	f := newFixture(t)
	f.srv.AddParameterGroup(awstest.ParameterGroup{Name: "blue-pg14", Family: "postgres14"})
	f.srv.AddParameterGroup(awstest.ParameterGroup{Name: "green-pg16", Family: "postgres16"})
	f.srv.AddInstance(awstest.Instance{ID: "blue", Class: "db.m6g.large", EngineVersion: "14.6", ParameterGroup: "blue-pg14"})
	f.srv.RedoLSN = "1A/2B3C4DFF"

	// 001 §2: snapshot blue, wait.
	if err := f.c.CreateSnapshot(f.ctx, aws.CreateSnapshotParams{InstanceID: "blue", SnapshotID: "green-snap"}); err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	wantParams(t, "snapshot", only(t, f.srv, "CreateDBSnapshot").Params, map[string]string{"DBInstanceIdentifier": "blue", "DBSnapshotIdentifier": "green-snap"})
	var p1 progress
	if _, err := f.c.WaitSnapshotAvailable(f.ctx, aws.WaitParams{ID: "green-snap", Progress: p1.fn}); err != nil {
		t.Fatalf("wait snapshot: %v", err)
	}
	if p1.String() != "creating,creating,available" {
		t.Errorf("snapshot progress %q", p1.String())
	}
	if s, found, err := f.c.FindSnapshot(f.ctx, aws.DescribeSnapshotParams{SnapshotID: "green-snap"}); err != nil || !found || s.InstanceID != "blue" {
		t.Fatalf("FindSnapshot: %+v %v %v", s, found, err)
	}

	// 001 §3: upgrade the snapshot's engine, wait for the version. A target
	// RDS does not list is refused.
	if _, err := f.c.UpgradeSnapshot(f.ctx, aws.UpgradeSnapshotParams{SnapshotID: "green-snap", EngineVersion: "12.9"}); err == nil || !strings.Contains(err.Error(), "Cannot upgrade postgres snapshot green-snap from 14.6 to 12.9") {
		t.Fatalf("UpgradeSnapshot to an older version: %v", err)
	}
	up, err := f.c.UpgradeSnapshot(f.ctx, aws.UpgradeSnapshotParams{SnapshotID: "green-snap", EngineVersion: "16.4"})
	if err != nil || up.Status != "upgrading" {
		t.Fatalf("UpgradeSnapshot: %+v, %v", up, err)
	}
	wantParams(t, "modify snapshot", f.srv.Calls("ModifyDBSnapshot")[1].Params, map[string]string{"DBSnapshotIdentifier": "green-snap", "EngineVersion": "16.4"})
	var p2 progress
	s, err := f.c.WaitSnapshotAvailable(f.ctx, aws.WaitParams{ID: "green-snap", EngineVersion: "16.4", Started: true, Progress: p2.fn})
	if err != nil || s.EngineVersion != "16.4" {
		t.Fatalf("wait upgraded snapshot: %+v, %v", s, err)
	}
	if p2.String() != "upgrading,upgrading,available" {
		t.Errorf("upgrade progress %q", p2.String())
	}

	// 001 §4: restore green, wait, endpoint.
	p := aws.RestoreInstanceParams{
		SnapshotID: "green-snap", InstanceID: "green", Class: "db.m6g.xlarge", ParameterGroup: "blue-pg14",
		SubnetGroup: "db-subnets", SecurityGroupIDs: []string{"sg-1", "sg-2"}, MultiAZ: true, IAMAuth: true, DeletionProtection: true,
	}
	if err := f.c.RestoreInstanceFromSnapshot(f.ctx, p); err == nil || !strings.Contains(err.Error(), "DBParameterGroupFamily postgres16") {
		t.Fatalf("restore with blue's group (family postgres14): %v", err)
	}
	p.ParameterGroup = "green-pg16"
	if err := f.c.RestoreInstanceFromSnapshot(f.ctx, p); err != nil {
		t.Fatalf("RestoreInstanceFromSnapshot: %v", err)
	}
	wantParams(t, "restore", f.srv.Calls("RestoreDBInstanceFromDBSnapshot")[1].Params, map[string]string{
		"DBSnapshotIdentifier": "green-snap", "DBInstanceIdentifier": "green", "DBInstanceClass": "db.m6g.xlarge",
		"DBParameterGroupName": "green-pg16", "DBSubnetGroupName": "db-subnets",
		"VpcSecurityGroupIds.VpcSecurityGroupId.1": "sg-1", "VpcSecurityGroupIds.VpcSecurityGroupId.2": "sg-2",
		"MultiAZ": "true", "EnableIAMDatabaseAuthentication": "true", "PubliclyAccessible": "false",
		"EnableCloudwatchLogsExports.member.1": "postgresql", "DeletionProtection": "true",
	})
	green, err := f.c.WaitInstanceAvailable(f.ctx, aws.WaitParams{ID: "green"})
	if err != nil {
		t.Fatalf("wait green: %v", err)
	}
	if !strings.HasPrefix(green.Endpoint, "green.") || green.Port != 5432 || green.EngineVersion != "16.4" || !green.MultiAZ ||
		green.PubliclyAccessible || !green.DeletionProtection {
		t.Errorf("green = %+v", green)
	}

	// 001 §7: the seed is the first "redo done at" of green's log, + 1 byte.
	seed, err := f.c.FindRedoDone(f.ctx, aws.FindRedoDoneParams{InstanceID: "green", Since: time.Now().Add(-time.Hour)})
	if err != nil || !seed.Found || seed.LSN.String() != "1A/2B3C4DFF" || seed.SeedLSN.String() != "1A/2B3C4E00" {
		t.Errorf("FindRedoDone = %+v, %v", seed, err)
	}
}

func TestWaitStopsOnFailedStatus(t *testing.T) {
	f := newFixture(t)
	f.srv.AddInstance(awstest.Instance{ID: "green", Class: "db.m6g.large", Status: "incompatible-parameters"})
	_, err := f.c.WaitInstanceAvailable(f.ctx, aws.WaitParams{ID: "green"})
	if aws.KindOf(err) != aws.KindInvalidState || !strings.Contains(err.Error(), "status is incompatible-parameters") {
		t.Fatalf("err = %v", err)
	}
}
