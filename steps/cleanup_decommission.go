package steps

import (
	"context"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

// decommission: the operator's checklist, and for the AWS strategies a
// final snapshot (and blue's deletion only when chosen beforehand).

func decommission() *Step {
	return &Step{ID: "decommission", Phase: PhaseCleanup, Target: Operator, Title: "Decommission blue",
		Why:    "A checklist: final snapshot and deletion of blue, PgBouncer, jumpbox and security groups. Never automatic.",
		Source: "000", Destructive: true, Records: []string{"final_snapshot_id", "decommission_confirmed"},
		Plan:  planDecommission,
		Check: checkDecommission,
		Run:   runDecommission,
	}
}

// decommissionChecklist is what the operator does by hand, in 000's order.
func decommissionChecklist(e *Env) []string {
	out := []string{
		"rectify your infrastructure code (CDK, Terraform) with green as the database, without replacing it",
		"shut down PgBouncer and the jumpbox made for the run, delete their security groups and the rules added to the database's",
		"update the dashboards and alarms to green",
		"optionally turn logical replication off on green (a reboot) once no reverse replication is needed",
	}
	if !e.Config.IsAWS() {
		out = append([]string{"take a final backup of blue (pg_basebackup or your backup tool), then stop and remove blue"}, out...)
	} else if !e.Config.AWS.DeleteBlue {
		out = append([]string{"delete blue yourself once the application has run well on green (its final snapshot is " + e.Config.FinalSnapshotID() + "); aws.delete_blue: true makes this step delete it instead"}, out...)
	}
	return out
}

func checkDecommission(ctx context.Context, e *Env) (CheckResult, error) {
	if v, ok := e.Value("decommission_confirmed"); ok {
		return CheckResult{Done: true, Detail: v}, nil
	}
	return CheckResult{Detail: "not confirmed yet"}, nil
}

// runDecommission: AWS strategies take blue's final snapshot and wait for
// it; with aws.delete_blue they delete blue instead, RDS taking the final
// snapshot as part of the deletion (the aws package has no way to skip it).
// Either way the operator's confirmation (the step is destructive) and the
// checklist are recorded.
func runDecommission(ctx context.Context, e *Env) error {
	if e.Config.IsAWS() {
		if err := e.awsDecommission(ctx); err != nil {
			return err
		}
	}
	for _, line := range decommissionChecklist(e) {
		e.Logf("[operator] %s", line)
	}
	return e.Record("decommission_confirmed", "confirmed by the operator at "+time.Now().UTC().Format(time.RFC3339))
}

// decommissionOp is what decommission finds and will do on AWS: blue's
// deletion with a final snapshot (aws.delete_blue), or the final snapshot
// alone.
type decommissionOp struct {
	reads         *awsReads
	deleteCluster *aws.DeleteClusterParams
	deleteInst    *aws.DeleteInstanceParams
	clusterSnap   *aws.CreateClusterSnapshotParams
	snap          *aws.CreateSnapshotParams
	snapFound     bool
}

func (e *Env) decommissionOp(ctx context.Context) (*decommissionOp, error) {
	a, final := e.Config.AWS, e.Config.FinalSnapshotID()
	aurora := e.Config.Strategy == "aurora-clone"
	o := &decommissionOp{reads: e.awsReads()}
	r := o.reads
	switch {
	case a.DeleteBlue && aurora:
		cl, err := r.cluster(ctx, a.BlueCluster, "its members (deleted first: Aurora keeps a cluster that has any) and deletion protection")
		if err != nil {
			return nil, err
		}
		if cl.DeletionProtection {
			return nil, e.refuse("blue cluster %s has deletion protection on: turn it off (Modify in the RDS console) after checking it is the cluster to delete", a.BlueCluster)
		}
		p := aws.DeleteClusterParams{ClusterID: a.BlueCluster, FinalSnapshotID: final}
		for _, m := range cl.Members {
			p.Members = append(p.Members, m.InstanceID)
		}
		o.deleteCluster = &p
	case a.DeleteBlue:
		in, err := r.instance(ctx, a.BlueInstance, "deletion protection")
		if err != nil {
			return nil, err
		}
		if in.DeletionProtection {
			return nil, e.refuse("blue instance %s has deletion protection on: turn it off (Modify in the RDS console) after checking it is the instance to delete", a.BlueInstance)
		}
		o.deleteInst = &aws.DeleteInstanceParams{InstanceID: a.BlueInstance, FinalSnapshotID: final}
	case aurora:
		s, found, err := r.findClusterSnapshot(ctx, final, "an existing final snapshot is found, not taken twice")
		if err != nil {
			return nil, err
		}
		if found && s.ClusterID != a.BlueCluster {
			return nil, e.refuse("snapshot %s exists already and is of cluster %s, not blue: set aws.final_snapshot", final, s.ClusterID)
		}
		o.snapFound = found
		o.clusterSnap = &aws.CreateClusterSnapshotParams{ClusterID: a.BlueCluster, SnapshotID: final}
	default:
		s, found, err := r.findSnapshot(ctx, final, "an existing final snapshot is found, not taken twice", false)
		if err != nil {
			return nil, err
		}
		if found && s.InstanceID != a.BlueInstance {
			return nil, e.refuse("snapshot %s exists already and is of instance %s, not blue: set aws.final_snapshot", final, s.InstanceID)
		}
		o.snapFound = found
		o.snap = &aws.CreateSnapshotParams{InstanceID: a.BlueInstance, SnapshotID: final}
	}
	return o, nil
}

func (e *Env) awsDecommission(ctx context.Context) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	o, err := e.decommissionOp(ctx)
	if err != nil {
		return err
	}
	final := e.Config.FinalSnapshotID()
	switch {
	case o.deleteCluster != nil:
		if err := c.DeleteCluster(ctx, *o.deleteCluster); err != nil {
			return err
		}
		e.Logf("deleting blue cluster %s (instances %s); final snapshot %s", o.deleteCluster.ClusterID, strings.Join(o.deleteCluster.Members, ", "), final)
		return e.Record("final_snapshot_id", final)
	case o.deleteInst != nil:
		if err := c.DeleteInstance(ctx, *o.deleteInst); err != nil {
			return err
		}
		e.Logf("deleting blue instance %s; final snapshot %s", o.deleteInst.InstanceID, final)
		return e.Record("final_snapshot_id", final)
	case o.clusterSnap != nil:
		if !o.snapFound {
			if err := c.CreateClusterSnapshot(ctx, *o.clusterSnap); err != nil {
				return err
			}
		}
		e.Logf("final snapshot %s of blue cluster %s %s", final, o.clusterSnap.ClusterID, createdOrFound(!o.snapFound))
		if _, err := c.WaitClusterSnapshotAvailable(ctx, e.wait(final, "", "final snapshot "+final)); err != nil {
			return err
		}
	default:
		if !o.snapFound {
			if err := c.CreateSnapshot(ctx, *o.snap); err != nil {
				return err
			}
		}
		e.Logf("final snapshot %s of blue instance %s %s", final, o.snap.InstanceID, createdOrFound(!o.snapFound))
		if _, err := c.WaitSnapshotAvailable(ctx, e.wait(final, "", "final snapshot "+final)); err != nil {
			return err
		}
	}
	e.Logf("blue is not deleted: aws.delete_blue is off")
	return e.Record("final_snapshot_id", final)
}

func createdOrFound(created bool) string {
	if created {
		return "created"
	}
	return "found (made by an earlier run)"
}

func planDecommission(ctx context.Context, e *Env) ([]Action, error) {
	var out []Action
	if e.Config.IsAWS() {
		o, err := e.decommissionOp(ctx)
		if err != nil {
			return nil, err
		}
		final := e.Config.FinalSnapshotID()
		out = append(out, o.reads.acts...)
		switch {
		case o.deleteCluster != nil:
			out = append(out, planned(o.deleteCluster.Plan())...)
		case o.deleteInst != nil:
			out = append(out, planned(o.deleteInst.Plan())...)
		case o.clusterSnap != nil:
			if !o.snapFound {
				out = append(out, planned(o.clusterSnap.Plan())...)
			}
			out = append(out, waitAction(aws.DescribeClusterSnapshotParams{SnapshotID: final}.Plan(), e, "available; blue is not deleted (aws.delete_blue is off)"))
		default:
			if !o.snapFound {
				out = append(out, planned(o.snap.Plan())...)
			}
			out = append(out, waitAction(aws.DescribeSnapshotParams{SnapshotID: final}.Plan(), e, "available; blue is not deleted (aws.delete_blue is off)"))
		}
	}
	for _, line := range decommissionChecklist(e) {
		out = append(out, Action{Target: Operator, Kind: "operator", Text: line})
	}
	return append(out, note(Operator, "recorded: decommission_confirmed = %s (the operator's confirmation: --yes, or the database's name typed)", e.V("decommission_confirmed"))), nil
}
