package aws_test

import (
	"testing"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
)

func TestEnableLogicalReplicationOnAuroraCluster(t *testing.T) {
	f := newFixture(t)
	f.srv.PageSize = 2 // nine parameters: five pages
	f.seedAurora()

	got, err := f.c.GetParameters(f.ctx, aws.GetParametersParams{Group: "blue-cluster-pg15", Cluster: true, Names: names(aws.LogicalReplicationSettings)})
	if err != nil {
		t.Fatalf("GetParameters: %v", err)
	}
	if n := f.srv.Count("DescribeDBClusterParameters"); n != 5 {
		t.Errorf("DescribeDBClusterParameters called %d times, want 5 pages", n)
	}
	if len(got.Parameters) != 5 || got.Parameters["rds.logical_replication"].Value != "0" || got.Parameters["rds.logical_replication"].ApplyType != "static" {
		t.Fatalf("parameters read: %+v", got.Parameters)
	}
	todo := aws.Differing(got, aws.LogicalReplicationSettings)
	if len(todo) != 5 {
		t.Fatalf("Differing = %v, want all five", todo)
	}

	if _, err := f.c.SetParameters(f.ctx, aws.SetParametersParams{Group: "blue-cluster-pg15", Cluster: true, Settings: todo}); err != nil {
		t.Fatalf("SetParameters: %v", err)
	}
	wantParams(t, "modify", only(t, f.srv, "ModifyDBClusterParameterGroup").Params, map[string]string{
		"DBClusterParameterGroupName":           "blue-cluster-pg15",
		"Parameters.Parameter.1.ParameterName":  "rds.logical_replication",
		"Parameters.Parameter.1.ParameterValue": "1",
		"Parameters.Parameter.1.ApplyMethod":    "pending-reboot",
		"Parameters.Parameter.2.ParameterName":  "max_replication_slots",
		"Parameters.Parameter.2.ParameterValue": "25",
		"Parameters.Parameter.5.ParameterName":  "max_worker_processes",
		"Parameters.Parameter.5.ParameterValue": "50",
		"Parameters.Parameter.5.ApplyMethod":    "pending-reboot",
	})
	values, _ := f.srv.GetParameters("blue-cluster-pg15")
	if values["max_logical_replication_workers"] != "25" {
		t.Errorf("model holds max_logical_replication_workers=%q", values["max_logical_replication_workers"])
	}

	pend, err := f.c.RebootPending(f.ctx, aws.RebootPendingParams{ClusterID: "blue"})
	if err != nil {
		t.Fatalf("RebootPending: %v", err)
	}
	if !pend.Pending || pend.Writer != "blue-writer" || len(pend.Instances) != 2 {
		t.Fatalf("RebootPending = %+v", pend)
	}

	rb, err := f.c.RebootInstance(f.ctx, aws.RebootParams{InstanceID: pend.Writer})
	if err != nil || rb.Instance.Status != "rebooting" {
		t.Fatalf("RebootInstance: %+v, %v", rb, err)
	}
	var pr progress
	if _, err := f.c.WaitInstanceAvailable(f.ctx, aws.WaitParams{ID: "blue-writer", Progress: pr.fn}); err != nil {
		t.Fatalf("wait: %v", err)
	}
	if pr.String() != "rebooting,rebooting,available" {
		t.Errorf("reboot progress %q", pr.String())
	}
	pend, err = f.c.RebootPending(f.ctx, aws.RebootPendingParams{ClusterID: "blue"})
	if err != nil {
		t.Fatalf("RebootPending after reboot: %v", err)
	}
	if len(pend.Instances) != 1 || pend.Instances[0] != "blue-reader" {
		t.Errorf("after rebooting the writer, pending = %v, want only blue-reader", pend.Instances)
	}

	got, err = f.c.GetParameters(f.ctx, aws.GetParametersParams{Group: "blue-cluster-pg15", Cluster: true, Names: names(aws.LogicalReplicationSettings)})
	if err != nil {
		t.Fatal(err)
	}
	if d := aws.Differing(got, aws.LogicalReplicationSettings); len(d) != 0 {
		t.Errorf("after SetParameters, still differing: %v", d)
	}
}

func TestEnableLogicalReplicationOnRDSInstance(t *testing.T) {
	f := newFixture(t)
	f.srv.AddParameterGroup(awstest.ParameterGroup{Name: "blue-pg15", Values: map[string]string{"max_worker_processes": "50"}})
	f.srv.AddInstance(awstest.Instance{ID: "blue", Class: "db.m6g.large", EngineVersion: "15.5", ParameterGroup: "blue-pg15"})

	got, err := f.c.GetParameters(f.ctx, aws.GetParametersParams{Group: "blue-pg15"})
	if err != nil {
		t.Fatalf("GetParameters: %v", err)
	}
	if len(got.Parameters) != 9 {
		t.Errorf("read %d parameters with no names asked, want all 9", len(got.Parameters))
	}
	todo := aws.Differing(got, aws.LogicalReplicationSettings)
	if len(todo) != 4 {
		t.Fatalf("Differing = %v, want 4 (max_worker_processes is set already)", todo)
	}
	if _, err := f.c.SetParameters(f.ctx, aws.SetParametersParams{Group: "blue-pg15", Settings: todo}); err != nil {
		t.Fatalf("SetParameters: %v", err)
	}
	req := only(t, f.srv, "ModifyDBParameterGroup")
	wantParams(t, "modify", req.Params, map[string]string{"DBParameterGroupName": "blue-pg15", "Parameters.Parameter.4.ParameterName": "max_logical_replication_workers"})
	if _, ok := req.Params["Parameters.Parameter.5.ParameterName"]; ok {
		t.Error("an unchanged parameter was sent")
	}
	pend, err := f.c.RebootPending(f.ctx, aws.RebootPendingParams{InstanceID: "blue"})
	if err != nil || !pend.Pending {
		t.Fatalf("RebootPending = %+v, %v", pend, err)
	}
	if _, err := f.c.RebootInstance(f.ctx, aws.RebootParams{InstanceID: "blue"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.WaitInstanceAvailable(f.ctx, aws.WaitParams{ID: "blue"}); err != nil {
		t.Fatal(err)
	}
	if pend, _ := f.c.RebootPending(f.ctx, aws.RebootPendingParams{InstanceID: "blue"}); pend.Pending {
		t.Error("still pending after the reboot")
	}
}

func TestSetParametersSplitsAtTwenty(t *testing.T) {
	f := newFixture(t)
	vals := map[string]string{}
	var settings []aws.Setting
	for i := range 25 {
		n := "custom_" + string(rune('a'+i))
		vals[n] = "0"
		settings = append(settings, aws.Setting{Name: n, Value: "1"})
	}
	f.srv.AddParameterGroup(awstest.ParameterGroup{Name: "big", Values: vals})
	res, err := f.c.SetParameters(f.ctx, aws.SetParametersParams{Group: "big", Settings: settings})
	if err != nil {
		t.Fatalf("SetParameters: %v", err)
	}
	if n := f.srv.Count("ModifyDBParameterGroup"); n != 2 || len(res.Sent) != 25 {
		t.Errorf("%d calls, %d sent; want 2 calls, 25 sent", n, len(res.Sent))
	}
}

func names(s []aws.Setting) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Name)
	}
	return out
}
