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
	if _, found, err := f.c.FindClusterSnapshot(f.ctx, aws.DescribeClusterSnapshotParams{SnapshotID: "blue-final"}); err != nil || found {
		t.Fatalf("FindClusterSnapshot before: %v %v", found, err)
	}
	if err := f.c.CreateClusterSnapshot(f.ctx, aws.CreateClusterSnapshotParams{ClusterID: "blue", SnapshotID: "blue-final"}); err != nil {
		t.Fatalf("CreateClusterSnapshot: %v", err)
	}
	wantParams(t, "snapshot", only(t, f.srv, "CreateDBClusterSnapshot").Params, map[string]string{"DBClusterIdentifier": "blue", "DBClusterSnapshotIdentifier": "blue-final"})
	var pr progress
	if _, err := f.c.WaitClusterSnapshotAvailable(f.ctx, aws.WaitParams{ID: "blue-final", Progress: pr.fn}); err != nil || pr.String() != "creating,creating,available" {
		t.Fatalf("wait: %q, %v", pr.String(), err)
	}
	if err := f.c.DeleteCluster(f.ctx, aws.DeleteClusterParams{ClusterID: "blue"}); err == nil || !strings.Contains(err.Error(), "final snapshot") {
		t.Fatalf("DeleteCluster without a final snapshot: %v", err)
	}
	if n := f.srv.Count("DeleteDBCluster") + f.srv.Count("DeleteDBInstance"); n != 0 {
		t.Fatalf("%d delete calls sent without a final snapshot", n)
	}
	// Without its members first, Aurora refuses the cluster's deletion.
	if err := f.c.DeleteCluster(f.ctx, aws.DeleteClusterParams{ClusterID: "blue", FinalSnapshotID: "x"}); err == nil || !strings.Contains(err.Error(), "still contains DB instances") {
		t.Fatalf("DeleteCluster without its members: %v", err)
	}
	err := f.c.DeleteCluster(f.ctx, aws.DeleteClusterParams{ClusterID: "blue", Members: []string{"blue-writer", "blue-reader"}, FinalSnapshotID: "blue-final-2"})
	if err != nil {
		t.Fatalf("DeleteCluster: %v", err)
	}
	wantParams(t, "delete", f.srv.Calls("DeleteDBCluster")[1].Params, map[string]string{
		"DBClusterIdentifier": "blue", "SkipFinalSnapshot": "false", "FinalDBSnapshotIdentifier": "blue-final-2",
	})
	if _, ok := f.srv.GetSnapshot("blue-final-2", true); !ok {
		t.Error("no final snapshot in the model")
	}
}

func TestDeleteClusterRefusesDeletionProtection(t *testing.T) {
	f := newFixture(t)
	f.srv.AddCluster(awstest.Cluster{ID: "green", EngineVersion: "16.4", DeletionProtection: true})
	err := f.c.DeleteCluster(f.ctx, aws.DeleteClusterParams{ClusterID: "green", FinalSnapshotID: "x"})
	if err == nil || !strings.Contains(err.Error(), "Cannot delete protected Cluster") {
		t.Fatalf("err = %v", err)
	}
}

func TestDeleteRDSInstanceWithFinalSnapshot(t *testing.T) {
	f := newFixture(t)
	f.srv.AddInstance(awstest.Instance{ID: "blue", Class: "db.m6g.large", EngineVersion: "15.7"})
	f.srv.AddInstance(awstest.Instance{ID: "green", Class: "db.m6g.large", EngineVersion: "17.5", DeletionProtection: true})
	if err := f.c.DeleteInstance(f.ctx, aws.DeleteInstanceParams{InstanceID: "blue"}); err == nil {
		t.Fatal("DeleteInstance without a final snapshot succeeded")
	}
	if err := f.c.DeleteInstance(f.ctx, aws.DeleteInstanceParams{InstanceID: "blue", FinalSnapshotID: "blue-final"}); err != nil {
		t.Fatalf("DeleteInstance: %v", err)
	}
	wantParams(t, "delete", only(t, f.srv, "DeleteDBInstance").Params, map[string]string{
		"DBInstanceIdentifier": "blue", "SkipFinalSnapshot": "false", "FinalDBSnapshotIdentifier": "blue-final",
	})
	if _, ok := f.srv.GetSnapshot("blue-final", false); !ok {
		t.Error("no final snapshot in the model")
	}
	if err := f.c.DeleteInstance(f.ctx, aws.DeleteInstanceParams{InstanceID: "green", FinalSnapshotID: "g-final"}); err == nil || !strings.Contains(err.Error(), "Cannot delete protected DB Instance") {
		t.Errorf("a protected instance: %v", err)
	}
}
