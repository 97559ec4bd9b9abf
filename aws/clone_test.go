package aws_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
)

func cloneParams() aws.RestoreCloneParams {
	return aws.RestoreCloneParams{SourceClusterID: "blue", ClusterID: "green", SubnetGroup: "blue-subnets",
		SecurityGroupIDs: []string{"sg-111", "sg-222"}, ClusterParameterGroup: "blue-cluster-pg15", DeletionProtection: true}
}

// TestCloneWriterOnlyOnceTheClusterIsAvailable (issue 14 item 1): the
// stand-in refuses an instance in a cluster that is still creating, as RDS
// does; after WaitClusterAvailable the writer is made, never public.
func TestCloneWriterOnlyOnceTheClusterIsAvailable(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()
	cl, err := f.c.RestoreClone(f.ctx, cloneParams())
	if err != nil || cl.Status != "creating" {
		t.Fatalf("RestoreClone: %+v, %v", cl, err)
	}
	wantParams(t, "restore", only(t, f.srv, "RestoreDBClusterToPointInTime").Params, map[string]string{
		"Version": "2014-10-31", "DBClusterIdentifier": "green", "SourceDBClusterIdentifier": "blue",
		"RestoreType": "copy-on-write", "UseLatestRestorableTime": "true", "DBSubnetGroupName": "blue-subnets",
		"VpcSecurityGroupIds.VpcSecurityGroupId.1": "sg-111", "VpcSecurityGroupIds.VpcSecurityGroupId.2": "sg-222",
		"DeletionProtection": "true", "EnableCloudwatchLogsExports.member.1": "postgresql",
		"DBClusterParameterGroupName": "blue-cluster-pg15",
	})
	writer := aws.CreateClusterInstanceParams{ClusterID: "green", InstanceID: "green-writer", Class: "db.r6g.large", Engine: "aurora-postgresql"}
	// The old order: the writer right after the restore.
	_, err = f.c.CreateClusterInstance(f.ctx, writer)
	var api interface{ ErrorCode() string }
	if !errors.As(err, &api) || api.ErrorCode() != "InvalidDBClusterStateFault" || aws.KindOf(err) != aws.KindInvalidState {
		t.Fatalf("writer in a creating cluster: %v, want InvalidDBClusterStateFault", err)
	}
	var cp progress
	cl, err = f.c.WaitClusterAvailable(f.ctx, aws.WaitParams{ID: "green", Progress: cp.fn})
	if err != nil || cp.String() != "creating,creating,available" {
		t.Fatalf("WaitClusterAvailable: %q, %v", cp.String(), err)
	}
	w, err := f.c.CreateClusterInstance(f.ctx, writer)
	if err != nil || w.Status != "creating" {
		t.Fatalf("writer once available: %+v, %v", w, err)
	}
	wantParams(t, "writer", f.srv.Calls("CreateDBInstance")[1].Params, map[string]string{
		"DBClusterIdentifier": "green", "DBInstanceIdentifier": "green-writer", "DBInstanceClass": "db.r6g.large",
		"Engine": "aurora-postgresql", "PubliclyAccessible": "false",
	})
	if _, err := f.c.WaitInstanceAvailable(f.ctx, aws.WaitParams{ID: "green-writer"}); err != nil {
		t.Fatal(err)
	}
	cl, _ = f.c.DescribeCluster(f.ctx, aws.DescribeClusterParams{ClusterID: "green"})
	if !strings.HasPrefix(cl.Endpoint, "green.cluster-") || cl.Writer() != "green-writer" || !cl.DeletionProtection || cl.Created.IsZero() {
		t.Errorf("green = %+v", cl)
	}
	if in, _ := f.srv.GetInstance("green-writer"); in.PubliclyAccessible {
		t.Error("the writer is publicly accessible")
	}
	// Left out, PubliclyAccessible is RDS's default: public in a default VPC.
	status, _ := f.srv.RawRDS(t, "CreateDBInstance", "DBClusterIdentifier", "green", "DBInstanceIdentifier", "green-reader", "DBInstanceClass", "db.r6g.large", "Engine", "aurora-postgresql")
	if in, _ := f.srv.GetInstance("green-reader"); status != 200 || !in.PubliclyAccessible {
		t.Errorf("an instance created without PubliclyAccessible: status %d public %v", status, in.PubliclyAccessible)
	}
}

// TestUpgradeTargetsAreValidated (issue 14 item 4): DescribeDBEngineVersions
// lists the valid targets; the stand-in refuses any other, and a parameter
// group of another family.
func TestUpgradeTargetsAreValidated(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()
	f.srv.SetUpgradeTargets("aurora-postgresql", "15.4", "15.7", "16.4")
	v, found, err := f.c.DescribeEngineVersion(f.ctx, aws.EngineVersionParams{Engine: "aurora-postgresql", Version: "15.4"})
	if err != nil || !found || v.Family != "aurora-postgresql15" || v.Targets() != "15.7, 16.4" || !v.CanUpgradeTo("16.4") || v.CanUpgradeTo("17.5") {
		t.Fatalf("DescribeEngineVersion = %+v %v %v", v, found, err)
	}
	if !v.UpgradeTargets[1].Major || v.UpgradeTargets[0].Major {
		t.Errorf("major flags %+v", v.UpgradeTargets)
	}
	if _, found, err := f.c.DescribeEngineVersion(f.ctx, aws.EngineVersionParams{Engine: "aurora-postgresql", Version: "9.6.1"}); err != nil || found {
		t.Errorf("unknown version: found %v, %v", found, err)
	}
	_, err = f.c.UpgradeCluster(f.ctx, aws.UpgradeClusterParams{ClusterID: "blue", EngineVersion: "17.5"})
	if err == nil || !strings.Contains(err.Error(), "Cannot upgrade aurora-postgresql from 15.4 to 17.5") {
		t.Errorf("invalid target: %v", err)
	}
	_, err = f.c.UpgradeCluster(f.ctx, aws.UpgradeClusterParams{ClusterID: "blue", EngineVersion: "16.4", ClusterParameterGroup: "blue-cluster-pg15"})
	if err == nil || !strings.Contains(err.Error(), "Use a parameter group with DBParameterGroupFamily aurora-postgresql16") {
		t.Errorf("group of the old family: %v", err)
	}
	if cl, _ := f.srv.GetCluster("blue"); cl.EngineVersion != "15.4" || cl.Status != "available" {
		t.Fatalf("a refused upgrade changed blue: %+v", cl)
	}
	cl, err := f.c.UpgradeCluster(f.ctx, aws.UpgradeClusterParams{ClusterID: "blue", EngineVersion: "16.4", ClusterParameterGroup: "cpg-16", InstanceParameterGroup: "ipg-16"})
	if err != nil || cl.Status != "upgrading" {
		t.Fatalf("UpgradeCluster: %+v, %v", cl, err)
	}
	var pr progress
	cl, err = f.c.WaitClusterAvailable(f.ctx, aws.WaitParams{ID: "blue", EngineVersion: "16.4", Started: true, Progress: pr.fn})
	if err != nil || cl.EngineVersion != "16.4" || cl.ParameterGroup != "cpg-16" || pr.String() != "upgrading,upgrading,available" {
		t.Fatalf("after the wait: %+v %q %v", cl, pr.String(), err)
	}
}

// TestUpgradeWithLogicalSlotsFails: Aurora's precheck refuses a major
// upgrade while logical slots exist, after accepting the call; the wait
// ends (never spins on "available at the old version") with RDS's reason.
func TestUpgradeWithLogicalSlotsFails(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()
	f.srv.SetLogicalSlots("blue", 1)
	if _, err := f.c.UpgradeCluster(f.ctx, aws.UpgradeClusterParams{ClusterID: "blue", EngineVersion: "16.4"}); err != nil {
		t.Fatalf("the call itself is accepted: %v", err)
	}
	_, err := f.c.WaitClusterAvailable(f.ctx, aws.WaitParams{ID: "blue", EngineVersion: "16.4", Started: true})
	if !errors.Is(err, aws.ErrChangeNotMade) || !strings.Contains(err.Error(), "available again at 15.4, not 16.4") ||
		!strings.Contains(err.Error(), "RDS says: Database cluster is in a state that cannot be upgraded") || !strings.Contains(err.Error(), "logical replication slots") {
		t.Fatalf("err = %v", err)
	}
	if f.srv.Count("DescribeEvents") != 1 {
		t.Error("the reason was not read from the cluster's events")
	}
}

func TestCreateReaderWithPromotionTier(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()
	tier := int32(2)
	if _, err := f.c.CreateClusterInstance(f.ctx, aws.CreateClusterInstanceParams{ClusterID: "blue", InstanceID: "blue-reader-2", Class: "db.r6g.large", Engine: "aurora-postgresql", PromotionTier: &tier}); err != nil {
		t.Fatalf("CreateClusterInstance: %v", err)
	}
	wantParams(t, "reader", only(t, f.srv, "CreateDBInstance").Params, map[string]string{
		"DBClusterIdentifier": "blue", "Engine": "aurora-postgresql", "PromotionTier": "2", "PubliclyAccessible": "false",
	})
	if in, _ := f.srv.GetInstance("blue-reader-2"); in.Writer {
		t.Error("a third instance became the writer")
	}
	f.srv.AddParameterGroup(awstest.ParameterGroup{Name: "pg17", Family: "aurora-postgresql17"})
	_, err := f.c.CreateClusterInstance(f.ctx, aws.CreateClusterInstanceParams{ClusterID: "blue", InstanceID: "blue-reader-3", Class: "db.r6g.large", Engine: "aurora-postgresql", ParameterGroup: "pg17"})
	if err == nil || !strings.Contains(err.Error(), "DBParameterGroupFamily aurora-postgresql15") {
		t.Errorf("a reader with a group of another family: %v", err)
	}
}
