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
	f.srv.AddInstance(awstest.Instance{ID: "blue", Class: "db.m6g.large", EngineVersion: "14.10", ParameterGroup: "blue-pg14"})
	f.srv.RedoLSN = "1A/2B3C4DFF"

	// 001 §2: snapshot blue, wait.
	snap, err := f.c.CreateSnapshot(f.ctx, aws.CreateSnapshotParams{InstanceID: "blue", SnapshotID: "green-snap"})
	if err != nil || !snap.Created || snap.Snapshot.Status != "creating" {
		t.Fatalf("CreateSnapshot: %+v, %v", snap, err)
	}
	wantParams(t, "snapshot", only(t, f.srv, "CreateDBSnapshot").Params, map[string]string{"DBInstanceIdentifier": "blue", "DBSnapshotIdentifier": "green-snap"})
	var p1 progress
	if _, err := f.c.WaitSnapshotAvailable(f.ctx, aws.WaitParams{ID: "green-snap", Progress: p1.fn}); err != nil {
		t.Fatalf("wait snapshot: %v", err)
	}
	if p1.String() != "creating,creating,available" {
		t.Errorf("snapshot progress %q", p1.String())
	}
	again, err := f.c.CreateSnapshot(f.ctx, aws.CreateSnapshotParams{InstanceID: "blue", SnapshotID: "green-snap"})
	if err != nil || again.Created || f.srv.Count("CreateDBSnapshot") != 1 {
		t.Fatalf("second CreateSnapshot: %+v, %v, %d calls", again, err, f.srv.Count("CreateDBSnapshot"))
	}

	// 001 §3: upgrade the snapshot's engine, wait for the version.
	up, err := f.c.UpgradeSnapshot(f.ctx, aws.UpgradeSnapshotParams{SnapshotID: "green-snap", EngineVersion: "16.3"})
	if err != nil || up.AlreadyAtVersion {
		t.Fatalf("UpgradeSnapshot: %+v, %v", up, err)
	}
	wantParams(t, "modify snapshot", only(t, f.srv, "ModifyDBSnapshot").Params, map[string]string{"DBSnapshotIdentifier": "green-snap", "EngineVersion": "16.3"})
	var p2 progress
	s, err := f.c.WaitSnapshotAvailable(f.ctx, aws.WaitParams{ID: "green-snap", EngineVersion: "16.3", Progress: p2.fn})
	if err != nil || s.EngineVersion != "16.3" {
		t.Fatalf("wait upgraded snapshot: %+v, %v", s, err)
	}
	if p2.String() != "upgrading,upgrading,available" {
		t.Errorf("upgrade progress %q", p2.String())
	}

	// 001 §4: restore green, wait, endpoint.
	r, err := f.c.RestoreInstanceFromSnapshot(f.ctx, aws.RestoreInstanceParams{
		SnapshotID: "green-snap", InstanceID: "green", Class: "db.m6g.xlarge", ParameterGroup: "green-pg16",
		SubnetGroup: "db-subnets", SecurityGroupIDs: []string{"sg-1", "sg-2"}, MultiAZ: true, IAMAuth: true,
	})
	if err != nil || !r.Created {
		t.Fatalf("RestoreInstanceFromSnapshot: %+v, %v", r, err)
	}
	wantParams(t, "restore", only(t, f.srv, "RestoreDBInstanceFromDBSnapshot").Params, map[string]string{
		"DBSnapshotIdentifier": "green-snap", "DBInstanceIdentifier": "green", "DBInstanceClass": "db.m6g.xlarge",
		"DBParameterGroupName": "green-pg16", "DBSubnetGroupName": "db-subnets",
		"VpcSecurityGroupIds.VpcSecurityGroupId.1": "sg-1", "VpcSecurityGroupIds.VpcSecurityGroupId.2": "sg-2",
		"MultiAZ": "true", "EnableIAMDatabaseAuthentication": "true", "PubliclyAccessible": "false",
		"EnableCloudwatchLogsExports.member.1": "postgresql",
	})
	green, err := f.c.WaitInstanceAvailable(f.ctx, aws.WaitParams{ID: "green"})
	if err != nil {
		t.Fatalf("wait green: %v", err)
	}
	if !strings.HasPrefix(green.Endpoint, "green.") || green.Port != 5432 || green.EngineVersion != "16.3" || !green.MultiAZ {
		t.Errorf("green = %+v", green)
	}
	if again, err := f.c.RestoreInstanceFromSnapshot(f.ctx, aws.RestoreInstanceParams{SnapshotID: "green-snap", InstanceID: "green"}); err != nil || again.Created {
		t.Errorf("second restore: %+v, %v", again, err)
	}
	if n := f.srv.Count("RestoreDBInstanceFromDBSnapshot"); n != 1 {
		t.Errorf("RestoreDBInstanceFromDBSnapshot called %d times", n)
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
