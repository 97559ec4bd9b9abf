package aws_test

import (
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

func TestCloneClusterSendsCopyOnWriteRestoreAndWriter(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()

	res, err := f.c.CloneCluster(f.ctx, aws.CloneClusterParams{SourceClusterID: "blue", ClusterID: "green"})
	if err != nil {
		t.Fatalf("CloneCluster: %v", err)
	}
	if !res.CreatedCluster || !res.CreatedWriter {
		t.Fatalf("created cluster %v writer %v, want both", res.CreatedCluster, res.CreatedWriter)
	}
	restore := only(t, f.srv, "RestoreDBClusterToPointInTime")
	wantParams(t, "restore", restore.Params, map[string]string{
		"Version":                                  "2014-10-31",
		"DBClusterIdentifier":                      "green",
		"SourceDBClusterIdentifier":                "blue",
		"RestoreType":                              "copy-on-write",
		"UseLatestRestorableTime":                  "true",
		"DBSubnetGroupName":                        "blue-subnets",
		"VpcSecurityGroupIds.VpcSecurityGroupId.1": "sg-111",
		"VpcSecurityGroupIds.VpcSecurityGroupId.2": "sg-222",
		"DeletionProtection":                       "true",
		"EnableCloudwatchLogsExports.member.1":     "postgresql",
		"DBClusterParameterGroupName":              "blue-cluster-pg15",
	})
	create := only(t, f.srv, "CreateDBInstance")
	wantParams(t, "create writer", create.Params, map[string]string{
		"DBClusterIdentifier":  "green",
		"DBInstanceIdentifier": "green-writer",
		"DBInstanceClass":      "db.r6g.large", // blue writer's
		"Engine":               "aurora-postgresql",
	})
	if _, ok := create.Params["DBParameterGroupName"]; ok {
		t.Errorf("DBParameterGroupName sent though none was asked for")
	}

	var cp, ip progress
	cl, err := f.c.WaitClusterAvailable(f.ctx, aws.WaitParams{ID: "green", Progress: cp.fn})
	if err != nil {
		t.Fatalf("WaitClusterAvailable: %v", err)
	}
	if got := cp.String(); got != "creating,creating,available" {
		t.Errorf("cluster progress %q, want creating,creating,available", got)
	}
	w, err := f.c.WaitInstanceAvailable(f.ctx, aws.WaitParams{ID: res.Writer.ID, Progress: ip.fn})
	if err != nil {
		t.Fatalf("WaitInstanceAvailable: %v", err)
	}
	if got := ip.String(); got != "creating,creating,available" {
		t.Errorf("writer progress %q", got)
	}
	if !strings.HasPrefix(cl.Endpoint, "green.cluster-") || cl.Writer() != "green-writer" || w.ClusterID != "green" {
		t.Errorf("green endpoint %q writer %q instance cluster %q", cl.Endpoint, cl.Writer(), w.ClusterID)
	}
	if !cl.DeletionProtection || len(cl.LogExports) != 1 || cl.LogExports[0] != "postgresql" {
		t.Errorf("green deletion protection %v log exports %v", cl.DeletionProtection, cl.LogExports)
	}
	model, _ := f.srv.GetCluster("green")
	if model.SourceID != "blue" || model.RestoreType != "copy-on-write" {
		t.Errorf("model clone of %q type %q", model.SourceID, model.RestoreType)
	}
}

func TestCloneClusterOverridesAndIdempotence(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()
	p := aws.CloneClusterParams{
		SourceClusterID: "blue", ClusterID: "green", WriterInstanceID: "green-1",
		WriterClass: "db.r7g.xlarge", SubnetGroup: "green-subnets", SecurityGroupIDs: []string{"sg-999"},
		ClusterParameterGroup: "green-cpg", InstanceParameterGroup: "green-ipg", DisableDeletionProtection: true,
	}
	if _, err := f.c.CloneCluster(f.ctx, p); err != nil {
		t.Fatalf("first CloneCluster: %v", err)
	}
	wantParams(t, "restore", only(t, f.srv, "RestoreDBClusterToPointInTime").Params, map[string]string{
		"DBSubnetGroupName": "green-subnets", "VpcSecurityGroupIds.VpcSecurityGroupId.1": "sg-999",
		"DeletionProtection": "false", "DBClusterParameterGroupName": "green-cpg",
	})
	wantParams(t, "writer", only(t, f.srv, "CreateDBInstance").Params, map[string]string{
		"DBInstanceIdentifier": "green-1", "DBInstanceClass": "db.r7g.xlarge", "DBParameterGroupName": "green-ipg",
	})

	// A second run (after a crash, say) finds both and creates nothing.
	res, err := f.c.CloneCluster(f.ctx, p)
	if err != nil {
		t.Fatalf("second CloneCluster: %v", err)
	}
	if res.CreatedCluster || res.CreatedWriter {
		t.Errorf("second run created cluster %v writer %v", res.CreatedCluster, res.CreatedWriter)
	}
	if n := f.srv.Count("RestoreDBClusterToPointInTime"); n != 1 {
		t.Errorf("RestoreDBClusterToPointInTime called %d times in all, want 1", n)
	}
	if n := f.srv.Count("CreateDBInstance"); n != 1 {
		t.Errorf("CreateDBInstance called %d times in all, want 1", n)
	}
	if res.Cluster.ID != "green" || res.Writer.ID != "green-1" {
		t.Errorf("found %q / %q", res.Cluster.ID, res.Writer.ID)
	}
}

func TestCloneClusterResumesAfterRestoreOnly(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()
	// The restore got through, then the writer's creation failed.
	f.srv.Fail("CreateDBInstance", awstestFault("AccessDenied", 403, 1))
	p := aws.CloneClusterParams{SourceClusterID: "blue", ClusterID: "green", WriterClass: "db.r6g.large"}
	if _, err := f.c.CloneCluster(f.ctx, p); err == nil {
		t.Fatal("first CloneCluster succeeded though CreateDBInstance failed")
	}
	res, err := f.c.CloneCluster(f.ctx, p)
	if err != nil {
		t.Fatalf("second CloneCluster: %v", err)
	}
	if res.CreatedCluster || !res.CreatedWriter {
		t.Errorf("resume created cluster %v writer %v, want only the writer", res.CreatedCluster, res.CreatedWriter)
	}
	if n := f.srv.Count("RestoreDBClusterToPointInTime"); n != 1 {
		t.Errorf("RestoreDBClusterToPointInTime called %d times, want 1", n)
	}
}

func TestCloneClusterRefusesAnInstanceOfAnotherCluster(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()
	_, err := f.c.CloneCluster(f.ctx, aws.CloneClusterParams{SourceClusterID: "blue", ClusterID: "green", WriterInstanceID: "blue-reader"})
	if err == nil || !strings.Contains(err.Error(), "exists already in cluster blue") {
		t.Fatalf("err = %v, want a refusal naming cluster blue", err)
	}
	if n := f.srv.Count("CreateDBInstance"); n != 0 {
		t.Errorf("CreateDBInstance called %d times", n)
	}
}

func TestUpgradeClusterAndWaitForVersion(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()
	res, err := f.c.UpgradeCluster(f.ctx, aws.UpgradeClusterParams{
		ClusterID: "blue", EngineVersion: "16.4",
		ClusterParameterGroup: "cpg-16", InstanceParameterGroup: "ipg-16",
	})
	if err != nil {
		t.Fatalf("UpgradeCluster: %v", err)
	}
	if res.AlreadyAtVersion || res.Cluster.Status != "upgrading" {
		t.Errorf("result %+v", res)
	}
	wantParams(t, "modify", only(t, f.srv, "ModifyDBCluster").Params, map[string]string{
		"DBClusterIdentifier": "blue", "EngineVersion": "16.4", "AllowMajorVersionUpgrade": "true",
		"ApplyImmediately": "true", "DBClusterParameterGroupName": "cpg-16", "DBInstanceParameterGroupName": "ipg-16",
	})
	var pr progress
	cl, err := f.c.WaitClusterAvailable(f.ctx, aws.WaitParams{ID: "blue", EngineVersion: "16.4", Progress: pr.fn})
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if cl.EngineVersion != "16.4" || cl.ParameterGroup != "cpg-16" || pr.String() != "upgrading,upgrading,available" {
		t.Errorf("after wait: version %q group %q progress %q", cl.EngineVersion, cl.ParameterGroup, pr.String())
	}
	again, err := f.c.UpgradeCluster(f.ctx, aws.UpgradeClusterParams{ClusterID: "blue", EngineVersion: "16.4"})
	if err != nil || !again.AlreadyAtVersion {
		t.Fatalf("second UpgradeCluster: %+v, %v", again, err)
	}
	if n := f.srv.Count("ModifyDBCluster"); n != 1 {
		t.Errorf("ModifyDBCluster called %d times", n)
	}
}

func TestCreateReaderTakesEngineFromCluster(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()
	tier := int32(2)
	res, err := f.c.CreateClusterInstance(f.ctx, aws.CreateClusterInstanceParams{ClusterID: "blue", InstanceID: "blue-reader-2", Class: "db.r6g.large", PromotionTier: &tier})
	if err != nil || !res.Created {
		t.Fatalf("CreateClusterInstance: %+v, %v", res, err)
	}
	wantParams(t, "reader", only(t, f.srv, "CreateDBInstance").Params, map[string]string{
		"DBClusterIdentifier": "blue", "Engine": "aurora-postgresql", "PromotionTier": "2",
	})
	if in, _ := f.srv.GetInstance("blue-reader-2"); in.Writer {
		t.Error("a third instance became the writer")
	}
}
