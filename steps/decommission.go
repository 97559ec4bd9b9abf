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
		Plan:  offline(decommissionPlan),
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
	if !e.Config.isAWS() {
		out = append([]string{"take a final backup of blue (pg_basebackup or your backup tool), then stop and remove blue"}, out...)
	} else if !e.Config.AWS.DeleteBlue {
		out = append([]string{"delete blue yourself once the application has run well on green (its final snapshot is " + e.Config.finalSnapshotID() + "); aws.delete_blue: true makes this step delete it instead"}, out...)
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
	if e.Config.isAWS() {
		if err := e.awsDecommission(ctx); err != nil {
			return err
		}
	}
	for _, line := range decommissionChecklist(e) {
		e.Logf("[operator] %s", line)
	}
	return e.Record("decommission_confirmed", "confirmed by the operator at "+time.Now().UTC().Format(time.RFC3339))
}

func (e *Env) awsDecommission(ctx context.Context) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	a, final := e.Config.AWS, e.Config.finalSnapshotID()
	aurora := e.Config.Strategy == "aurora-clone"
	if a.DeleteBlue {
		if aurora {
			res, err := c.DeleteCluster(ctx, aws.DeleteClusterParams{ClusterID: a.BlueCluster, FinalSnapshotID: final})
			if err != nil {
				return err
			}
			e.Logf("deleting blue cluster %s (instances %s); final snapshot %s", a.BlueCluster, strings.Join(res.DeletedInstances, ", "), final)
		} else {
			if _, err := c.DeleteInstance(ctx, aws.DeleteInstanceParams{InstanceID: a.BlueInstance, FinalSnapshotID: final}); err != nil {
				return err
			}
			e.Logf("deleting blue instance %s; final snapshot %s", a.BlueInstance, final)
		}
		return e.Record("final_snapshot_id", final)
	}
	if aurora {
		res, err := c.CreateClusterSnapshot(ctx, aws.CreateClusterSnapshotParams{ClusterID: a.BlueCluster, SnapshotID: final})
		if err != nil {
			return err
		}
		e.Logf("final snapshot %s of blue cluster %s %s", final, a.BlueCluster, createdOrFound(res.Created))
		if _, err := c.WaitClusterSnapshotAvailable(ctx, e.wait(final, "", "final snapshot "+final)); err != nil {
			return err
		}
	} else {
		res, err := c.CreateSnapshot(ctx, aws.CreateSnapshotParams{InstanceID: a.BlueInstance, SnapshotID: final})
		if err != nil {
			return err
		}
		e.Logf("final snapshot %s of blue instance %s %s", final, a.BlueInstance, createdOrFound(res.Created))
		if _, err := c.WaitSnapshotAvailable(ctx, e.wait(final, "", "final snapshot "+final)); err != nil {
			return err
		}
	}
	e.Logf("blue is not deleted: aws.delete_blue is off")
	return e.Record("final_snapshot_id", final)
}

func decommissionPlan(e *Env) []Action {
	var out []Action
	if e.Config.isAWS() {
		a, final := e.Config.AWS, e.Config.finalSnapshotID()
		aurora := e.Config.Strategy == "aurora-clone"
		switch {
		case a.DeleteBlue && aurora:
			out = append(out, api("rds DescribeDBClusters DBClusterIdentifier=%s  -- refused while deletion protection is on", a.BlueCluster))
			out = append(out, planned(aws.DeleteClusterParams{ClusterID: a.BlueCluster, FinalSnapshotID: final}.Plan())...)
		case a.DeleteBlue:
			out = append(out, planned(aws.DeleteInstanceParams{InstanceID: a.BlueInstance, FinalSnapshotID: final}.Plan())...)
		case aurora:
			out = append(out, planned(aws.CreateClusterSnapshotParams{ClusterID: a.BlueCluster, SnapshotID: final}.Plan())...)
			out = append(out, api("rds DescribeDBClusterSnapshots DBClusterSnapshotIdentifier=%s  -- every %s until available; blue is not deleted (aws.delete_blue is off)", final, a.PollInterval))
		default:
			out = append(out, planned(aws.CreateSnapshotParams{InstanceID: a.BlueInstance, SnapshotID: final}.Plan())...)
			out = append(out, api("rds DescribeDBSnapshots DBSnapshotIdentifier=%s  -- every %s until available; blue is not deleted (aws.delete_blue is off)", final, a.PollInterval))
		}
	}
	for _, line := range decommissionChecklist(e) {
		out = append(out, Action{Target: Operator, Kind: "operator", Text: line})
	}
	return append(out, note(Operator, "recorded: decommission_confirmed = %s (the operator's confirmation: --yes, or the database's name typed)", e.V("decommission_confirmed")))
}
