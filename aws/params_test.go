package aws_test

import (
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
)

// TestLogicalReplicationOnAuroraCluster: the five settings written with
// pending-reboot, then "applying" for a while (issue 14 item 2: rebooting
// then would not apply them), then "pending-reboot" until the writer's
// reboot.
func TestLogicalReplicationOnAuroraCluster(t *testing.T) {
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
	if err := f.c.SetParameters(f.ctx, aws.SetParametersParams{Group: "blue-cluster-pg15", Cluster: true, Settings: todo}); err != nil {
		t.Fatalf("SetParameters: %v", err)
	}
	wantParams(t, "modify", only(t, f.srv, "ModifyDBClusterParameterGroup").Params, map[string]string{
		"DBClusterParameterGroupName":           "blue-cluster-pg15",
		"Parameters.Parameter.1.ParameterName":  "rds.logical_replication",
		"Parameters.Parameter.1.ParameterValue": "1",
		"Parameters.Parameter.1.ApplyMethod":    "pending-reboot",
		"Parameters.Parameter.5.ParameterName":  "max_worker_processes",
		"Parameters.Parameter.5.ParameterValue": "50",
	})
	cl, err := f.c.DescribeCluster(f.ctx, aws.DescribeClusterParams{ClusterID: "blue"})
	if m, _ := cl.Member("blue-writer"); err != nil || m.ParameterGroupStatus != "applying" {
		t.Fatalf("right after the change the writer is %q (%v), want applying", m.ParameterGroupStatus, err)
	}
	var pr progress
	st, err := f.c.WaitParametersApplied(f.ctx, aws.WaitAppliedParams{ClusterID: "blue", InstanceID: "blue-writer", Progress: pr.fn})
	if err != nil || st != "pending-reboot" {
		t.Fatalf("WaitParametersApplied = %q, %v (%s)", st, err, pr.String())
	}
	if err := f.c.RebootInstance(f.ctx, aws.RebootParams{InstanceID: "blue-writer"}); err != nil {
		t.Fatal(err)
	}
	pr = progress{}
	if _, err := f.c.WaitInstanceAvailable(f.ctx, aws.WaitParams{ID: "blue-writer", Progress: pr.fn}); err != nil || pr.String() != "rebooting,rebooting,available" {
		t.Fatalf("reboot: %q, %v", pr.String(), err)
	}
	cl, _ = f.c.DescribeCluster(f.ctx, aws.DescribeClusterParams{ClusterID: "blue"})
	if w, _ := cl.Member("blue-writer"); w.ParameterGroupStatus != "in-sync" {
		t.Errorf("writer after its reboot: %q", w.ParameterGroupStatus)
	}
	if r, _ := cl.Member("blue-reader"); r.ParameterGroupStatus != "pending-reboot" {
		t.Errorf("reader (not rebooted): %q", r.ParameterGroupStatus)
	}
}

// TestDefaultGroupGetsACustomOne (issue 14 item 3): RDS refuses any change
// to a default group; the way forward is a custom group of the same family
// (it starts with the engine defaults, what the default group holds),
// attached, applied by one reboot.
func TestDefaultGroupGetsACustomOne(t *testing.T) {
	f := newFixture(t)
	f.srv.AddInstance(awstest.Instance{ID: "blue", Class: "db.m6g.large", EngineVersion: "15.7"})
	in, err := f.c.DescribeInstance(f.ctx, aws.DescribeInstanceParams{InstanceID: "blue"})
	if err != nil || in.ParameterGroups[0].Name != "default.postgres15" || !aws.IsDefaultGroup(in.ParameterGroups[0].Name) {
		t.Fatalf("blue's group: %+v, %v", in.ParameterGroups, err)
	}
	// What the old step sent: refused by the stand-in as by RDS; the
	// client does not even send it.
	status, body := f.srv.RawRDS(t, "ModifyDBParameterGroup", "DBParameterGroupName", "default.postgres15",
		"Parameters.Parameter.1.ParameterName", "rds.logical_replication", "Parameters.Parameter.1.ParameterValue", "1",
		"Parameters.Parameter.1.ApplyMethod", "pending-reboot")
	if status != 400 || !strings.Contains(body, "InvalidDBParameterGroupState") {
		t.Fatalf("modify of a default group: %d %s", status, body)
	}
	if err := f.c.SetParameters(f.ctx, aws.SetParametersParams{Group: "default.postgres15", Settings: aws.LogicalReplicationSettings}); err == nil || !strings.Contains(err.Error(), "create a custom group") {
		t.Fatalf("SetParameters on a default group: %v", err)
	}
	g, found, err := f.c.FindParameterGroup(f.ctx, aws.DescribeParameterGroupParams{Name: "default.postgres15"})
	if err != nil || !found || g.Family != "postgres15" {
		t.Fatalf("FindParameterGroup: %+v %v %v", g, found, err)
	}
	if _, found, err := f.c.FindParameterGroup(f.ctx, aws.DescribeParameterGroupParams{Name: "blue-pgbluegreen"}); err != nil || found {
		t.Fatalf("a missing group: found %v, %v", found, err)
	}
	create := aws.CreateParameterGroupParams{Name: "blue-pgbluegreen", Family: g.Family, Description: "blue with logical replication (pgbluegreen)"}
	if err := f.c.CreateParameterGroup(f.ctx, create); err != nil {
		t.Fatalf("CreateParameterGroup: %v", err)
	}
	if err := f.c.SetParameters(f.ctx, aws.SetParametersParams{Group: "blue-pgbluegreen", Settings: aws.LogicalReplicationSettings}); err != nil {
		t.Fatalf("SetParameters: %v", err)
	}
	if err := f.c.AttachParameterGroup(f.ctx, aws.AttachParameterGroupParams{InstanceID: "blue", Group: "blue-pgbluegreen"}); err != nil {
		t.Fatalf("AttachParameterGroup: %v", err)
	}
	wantParams(t, "attach", only(t, f.srv, "ModifyDBInstance").Params, map[string]string{
		"DBInstanceIdentifier": "blue", "DBParameterGroupName": "blue-pgbluegreen", "ApplyImmediately": "true"})
	st, err := f.c.WaitParametersApplied(f.ctx, aws.WaitAppliedParams{InstanceID: "blue"})
	if err != nil || st != "pending-reboot" {
		t.Fatalf("after the attach: %q, %v", st, err)
	}
	if err := f.c.RebootInstance(f.ctx, aws.RebootParams{InstanceID: "blue"}); err != nil {
		t.Fatal(err)
	}
	in, err = f.c.WaitInstanceAvailable(f.ctx, aws.WaitParams{ID: "blue"})
	if err != nil || aws.ApplyStatus(nil, in) != "in-sync" || in.ParameterGroups[0].Name != "blue-pgbluegreen" {
		t.Fatalf("after the reboot: %+v, %v", in.ParameterGroups, err)
	}
	if err := f.c.CreateParameterGroup(f.ctx, create); err == nil || !strings.Contains(err.Error(), "DBParameterGroupAlreadyExists") {
		t.Errorf("a second create: %v", err)
	}
}

// TestStaticParametersOnlyPendingReboot: RDS refuses ApplyMethod=immediate
// for a static parameter; the stand-in too.
func TestStaticParametersOnlyPendingReboot(t *testing.T) {
	f := newFixture(t)
	f.srv.AddParameterGroup(awstest.ParameterGroup{Name: "blue-pg15"})
	status, body := f.srv.RawRDS(t, "ModifyDBParameterGroup", "DBParameterGroupName", "blue-pg15",
		"Parameters.Parameter.1.ParameterName", "rds.logical_replication", "Parameters.Parameter.1.ParameterValue", "1",
		"Parameters.Parameter.1.ApplyMethod", "immediate")
	if status != 400 || !strings.Contains(body, "cannot use immediate apply method for static parameter") {
		t.Fatalf("immediate on a static parameter: %d %s", status, body)
	}
	set := aws.SetParametersParams{Group: "blue-pg15", Settings: aws.LogicalReplicationSettings}
	for _, p := range set.Plan() {
		if p.Get("ApplyMethod") != "pending-reboot" {
			t.Errorf("%s", p)
		}
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
	if err := f.c.SetParameters(f.ctx, aws.SetParametersParams{Group: "big", Settings: settings}); err != nil {
		t.Fatalf("SetParameters: %v", err)
	}
	if n := f.srv.Count("ModifyDBParameterGroup"); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

func names(s []aws.Setting) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Name)
	}
	return out
}
