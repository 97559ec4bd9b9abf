package aws_test

import (
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
)

func TestFinalClusterSnapshotThenDelete(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()

	snap, err := f.c.CreateClusterSnapshot(f.ctx, aws.CreateClusterSnapshotParams{ClusterID: "blue", SnapshotID: "blue-final"})
	if err != nil || !snap.Created {
		t.Fatalf("CreateClusterSnapshot: %+v, %v", snap, err)
	}
	wantParams(t, "snapshot", only(t, f.srv, "CreateDBClusterSnapshot").Params, map[string]string{"DBClusterIdentifier": "blue", "DBClusterSnapshotIdentifier": "blue-final"})
	var pr progress
	if _, err := f.c.WaitClusterSnapshotAvailable(f.ctx, aws.WaitParams{ID: "blue-final", Progress: pr.fn}); err != nil || pr.String() != "creating,creating,available" {
		t.Fatalf("wait: %q, %v", pr.String(), err)
	}
	if again, err := f.c.CreateClusterSnapshot(f.ctx, aws.CreateClusterSnapshotParams{ClusterID: "blue", SnapshotID: "blue-final"}); err != nil || again.Created {
		t.Errorf("second CreateClusterSnapshot: %+v, %v", again, err)
	}

	if _, err := f.c.DeleteCluster(f.ctx, aws.DeleteClusterParams{ClusterID: "blue"}); err == nil || !strings.Contains(err.Error(), "final snapshot") {
		t.Fatalf("DeleteCluster without a final snapshot: %v", err)
	}
	if n := f.srv.Count("DeleteDBCluster") + f.srv.Count("DeleteDBInstance"); n != 0 {
		t.Fatalf("%d delete calls sent without a final snapshot", n)
	}
	res, err := f.c.DeleteCluster(f.ctx, aws.DeleteClusterParams{ClusterID: "blue", FinalSnapshotID: "blue-final-2"})
	if err != nil {
		t.Fatalf("DeleteCluster: %v", err)
	}
	if len(res.DeletedInstances) != 2 {
		t.Errorf("deleted instances %v", res.DeletedInstances)
	}
	wantParams(t, "delete", only(t, f.srv, "DeleteDBCluster").Params, map[string]string{
		"DBClusterIdentifier": "blue", "SkipFinalSnapshot": "false", "FinalDBSnapshotIdentifier": "blue-final-2",
	})
	if _, ok := f.srv.GetSnapshot("blue-final-2", true); !ok {
		t.Error("no final snapshot in the model")
	}
}

func TestDeleteClusterRefusesDeletionProtection(t *testing.T) {
	f := newFixture(t)
	f.srv.AddCluster(awstest.Cluster{ID: "green", EngineVersion: "16.4", DeletionProtection: true})
	f.srv.AddInstance(awstest.Instance{ID: "green-writer", ClusterID: "green", Class: "db.r6g.large"})
	_, err := f.c.DeleteCluster(f.ctx, aws.DeleteClusterParams{ClusterID: "green", FinalSnapshotID: "x"})
	if err == nil || !strings.Contains(err.Error(), "deletion protection is on") {
		t.Fatalf("err = %v", err)
	}
	if n := f.srv.Count("DeleteDBInstance"); n != 0 {
		t.Errorf("%d instances deleted before the refusal", n)
	}
}

func TestDeleteRDSInstanceWithFinalSnapshot(t *testing.T) {
	f := newFixture(t)
	f.srv.AddInstance(awstest.Instance{ID: "blue", Class: "db.m6g.large", EngineVersion: "14.10"})
	if _, err := f.c.DeleteInstance(f.ctx, aws.DeleteInstanceParams{InstanceID: "blue"}); err == nil {
		t.Fatal("DeleteInstance without a final snapshot succeeded")
	}
	if _, err := f.c.DeleteInstance(f.ctx, aws.DeleteInstanceParams{InstanceID: "blue", FinalSnapshotID: "blue-final"}); err != nil {
		t.Fatalf("DeleteInstance: %v", err)
	}
	wantParams(t, "delete", only(t, f.srv, "DeleteDBInstance").Params, map[string]string{
		"DBInstanceIdentifier": "blue", "SkipFinalSnapshot": "false", "FinalDBSnapshotIdentifier": "blue-final",
	})
	if _, ok := f.srv.GetSnapshot("blue-final", false); !ok {
		t.Error("no final snapshot in the model")
	}
}
