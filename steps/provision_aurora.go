package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Provision green for aurora-clone: clone-cluster, upgrade-green,
// create-green-readers.

func cloneCluster() *Step {
	return &Step{ID: "clone-cluster", Phase: PhaseProvision, Target: AWSTarget, Title: "Clone blue's Aurora cluster",
		Why:    "A copy-on-write clone gives green blue's data without copying it, taken after the slot exists.",
		Source: "000, 002", Records: []string{"green_endpoint"},
		Plan:  offline(awsPlanCloneCluster),
		Check: checkCloneCluster,
		Run:   runCloneCluster,
	}
}

func upgradeGreen() *Step {
	return &Step{ID: "upgrade-green", Phase: PhasePrepareGreen, Target: AWSTarget, Title: "Upgrade green to the new major version",
		Why:    "The clone is on blue's version: upgrade it in place, after the seed is captured and the inherited slots are gone.",
		Source: "000, 002", Needs: []string{"green_start_lsn"},
		Plan:  offline(awsPlanUpgradeGreen),
		Check: checkUpgradeGreen,
		Run:   runUpgradeGreen,
	}
}

func createGreenReaders() *Step {
	return &Step{ID: "create-green-readers", Phase: PhasePrepareGreen, Target: AWSTarget, Title: "Add readers to green (optional)",
		Why:    "Readers in green's cluster, so green matches blue's topology before the cutover.",
		Source: "000", Optional: true,
		Plan:  offline(awsPlanReaders),
		Check: checkGreenReaders,
		Run:   runGreenReaders,
	}
}

// cloneClusterParams are clone-cluster's parameters. The cluster parameter group
// is left to blue's: the clone runs blue's version until upgrade-green.
func (c *Config) cloneClusterParams() aws.CloneClusterParams {
	a := c.AWS
	return aws.CloneClusterParams{
		SourceClusterID: a.BlueCluster, ClusterID: a.GreenCluster, WriterInstanceID: c.greenWriterID(),
		WriterClass: a.GreenInstanceClass, SubnetGroup: a.SubnetGroup, SecurityGroupIDs: a.SecurityGroups,
		DisableDeletionProtection: !a.deletionProtection(),
	}
}

func checkCloneCluster(ctx context.Context, e *Env) (CheckResult, error) {
	c, err := e.needAWS()
	if err != nil {
		return CheckResult{}, err
	}
	a := e.Config.AWS
	cl, found, err := c.FindCluster(ctx, aws.DescribeClusterParams{ClusterID: a.GreenCluster})
	if err != nil || !found {
		return CheckResult{Detail: "no cluster " + a.GreenCluster + " yet"}, err
	}
	if cl.Status != "available" {
		return CheckResult{Detail: fmt.Sprintf("cluster %s is %s", cl.ID, cl.Status)}, nil
	}
	w, found, err := c.FindInstance(ctx, aws.DescribeInstanceParams{InstanceID: e.Config.greenWriterID()})
	if err != nil || !found || w.Status != "available" {
		return CheckResult{Detail: fmt.Sprintf("cluster %s exists; its writer %s is not available yet", cl.ID, e.Config.greenWriterID())}, err
	}
	if err := e.recordIfChanged("green_endpoint", cl.Endpoint); err != nil {
		return CheckResult{}, err
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("clone %s (%s %s) available; writer %s; endpoint %s", cl.ID, cl.Engine, cl.EngineVersion, w.ID, cl.Endpoint)}, nil
}

func runCloneCluster(ctx context.Context, e *Env) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	if err := e.requireSlotsOnBlue(ctx, "a clone"); err != nil {
		return err
	}
	p := e.Config.cloneClusterParams()
	res, err := c.CloneCluster(ctx, p)
	if err != nil {
		return err
	}
	e.Logf("cluster %s %s; writer %s %s", p.ClusterID, createdOrFound(res.CreatedCluster), res.Writer.ID, createdOrFound(res.CreatedWriter))
	cl, err := c.WaitClusterAvailable(ctx, e.wait(p.ClusterID, "", "cluster "+p.ClusterID))
	if err != nil {
		return err
	}
	if _, err := c.WaitInstanceAvailable(ctx, e.wait(p.WriterInstanceID, "", "writer "+p.WriterInstanceID)); err != nil {
		return err
	}
	e.Logf("green's writer endpoint is %s:%d: green.conninfo must point at it", cl.Endpoint, cl.Port)
	return e.Record("green_endpoint", cl.Endpoint)
}

func createdOrFound(created bool) string {
	if created {
		return "created"
	}
	return "found (made by an earlier run)"
}

func (c *Config) upgradeClusterParams() aws.UpgradeClusterParams {
	a := c.AWS
	return aws.UpgradeClusterParams{ClusterID: a.GreenCluster, EngineVersion: a.EngineVersion,
		ClusterParameterGroup: a.ClusterParameterGroup, InstanceParameterGroup: a.InstanceParameterGroup}
}

func checkUpgradeGreen(ctx context.Context, e *Env) (CheckResult, error) {
	c, err := e.needAWS()
	if err != nil {
		return CheckResult{}, err
	}
	cl, err := c.DescribeCluster(ctx, aws.DescribeClusterParams{ClusterID: e.Config.AWS.GreenCluster})
	if err != nil {
		return CheckResult{}, err
	}
	if cl.EngineVersion != e.Config.AWS.EngineVersion || cl.Status != "available" {
		return CheckResult{Detail: fmt.Sprintf("cluster %s is %s at %s (target %s)", cl.ID, cl.Status, cl.EngineVersion, e.Config.AWS.EngineVersion)}, nil
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("cluster %s available at %s", cl.ID, cl.EngineVersion)}, nil
}

// runUpgradeGreen refuses (trap 4) until the seed is recorded (the upgrade
// resets WAL positions: aurora_volume_logical_start_lsn() means nothing
// after it) and green has no logical slot left (Aurora refuses a major
// upgrade with one).
func runUpgradeGreen(ctx context.Context, e *Env) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	if _, ok := e.Value("green_start_lsn"); !ok {
		return e.refuse("green_start_lsn is not recorded: read it with green-start-lsn before the upgrade, which resets WAL positions")
	}
	if err := e.needGreen(); err != nil {
		return err
	}
	qctx, cancel := e.bounded(ctx)
	slots, err := pg.LogicalSlots(qctx, e.Green)
	cancel()
	if err != nil {
		return err
	}
	if len(slots) > 0 {
		names := make([]string, len(slots))
		for i, s := range slots {
			names[i] = s.Name
		}
		return e.refuse("green still has logical slot %s (inherited from blue): Aurora refuses a major upgrade with logical slots; run drop-cloned-replication", strings.Join(names, ", "))
	}
	p := e.Config.upgradeClusterParams()
	res, err := c.UpgradeCluster(ctx, p)
	if err != nil {
		return err
	}
	if res.AlreadyAtVersion {
		e.Logf("cluster %s is at %s already", p.ClusterID, p.EngineVersion)
	} else {
		e.Logf("upgrade of %s to %s started; blue's slots retain WAL meanwhile (the lag gauge shows it)", p.ClusterID, p.EngineVersion)
	}
	_, err = c.WaitClusterAvailable(ctx, e.wait(p.ClusterID, p.EngineVersion, "upgrade of "+p.ClusterID+" to "+p.EngineVersion))
	return err
}

// readerParams are the readers to add; an empty class is the writer's
// (writerClass, a placeholder in a plan).
func (c *Config) readerParams(writerClass string) []aws.CreateClusterInstanceParams {
	out := make([]aws.CreateClusterInstanceParams, len(c.AWS.Readers))
	for i, r := range c.AWS.Readers {
		out[i] = aws.CreateClusterInstanceParams{ClusterID: c.AWS.GreenCluster, InstanceID: r.ID,
			Class: or(r.Class, or(c.AWS.GreenInstanceClass, writerClass)), ParameterGroup: c.AWS.InstanceParameterGroup}
	}
	return out
}

func checkGreenReaders(ctx context.Context, e *Env) (CheckResult, error) {
	c, err := e.needAWS()
	if err != nil {
		return CheckResult{}, err
	}
	if len(e.Config.AWS.Readers) == 0 {
		return CheckResult{Done: true, Detail: "no aws.readers configured: green keeps its writer only"}, nil
	}
	var ready []string
	for _, r := range e.Config.AWS.Readers {
		in, found, err := c.FindInstance(ctx, aws.DescribeInstanceParams{InstanceID: r.ID})
		if err != nil {
			return CheckResult{}, err
		}
		if !found || in.Status != "available" {
			return CheckResult{Detail: fmt.Sprintf("reader %s is not available yet", r.ID)}, nil
		}
		ready = append(ready, in.ID+" ("+in.Class+")")
	}
	return CheckResult{Done: true, Detail: "readers available: " + strings.Join(ready, ", ")}, nil
}

func runGreenReaders(ctx context.Context, e *Env) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	if len(e.Config.AWS.Readers) == 0 {
		e.Logf("no aws.readers configured: nothing to add")
		return nil
	}
	w, err := c.DescribeInstance(ctx, aws.DescribeInstanceParams{InstanceID: e.Config.greenWriterID()})
	if err != nil {
		return err
	}
	params := e.Config.readerParams(w.Class)
	for _, p := range params {
		res, err := c.CreateClusterInstance(ctx, p)
		if err != nil {
			return err
		}
		e.Logf("reader %s (%s) %s", p.InstanceID, p.Class, createdOrFound(res.Created))
	}
	for _, p := range params {
		if _, err := c.WaitInstanceAvailable(ctx, e.wait(p.InstanceID, "", "reader "+p.InstanceID)); err != nil {
			return err
		}
	}
	return nil
}

func awsPlanCloneCluster(e *Env) []Action {
	a := e.Config.AWS
	p := e.Config.cloneClusterParams()
	out := []Action{
		sql(Blue, "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'  -- refused unless every slot exists (a clone before its slot loses rows)"),
		api("rds DescribeDBClusters DBClusterIdentifier=%s  -- an existing clone is found, not created twice", a.GreenCluster),
		api("rds DescribeDBClusters DBClusterIdentifier=%s  -- blue's subnet group, security groups, parameter group, writer", a.BlueCluster),
	}
	if p.WriterClass == "" {
		out = append(out, api("rds DescribeDBInstances DBInstanceIdentifier=(blue's writer)  -- its class"))
	}
	out = append(out, planned(p.Plan())...)
	return append(out,
		api("rds DescribeDBClusters DBClusterIdentifier=%s, then DescribeDBInstances DBInstanceIdentifier=%s  -- every %s until available, status and time elapsed in the log", a.GreenCluster, p.WriterInstanceID, a.PollInterval),
		note(AWSTarget, "recorded: green_endpoint = %s (the cluster's writer endpoint; green.conninfo must point at it)", e.V("green_endpoint")))
}

func awsPlanUpgradeGreen(e *Env) []Action {
	a := e.Config.AWS
	p := e.Config.upgradeClusterParams()
	out := []Action{
		note(Green, "refused unless green_start_lsn is recorded (%s): the upgrade resets WAL positions", e.V("green_start_lsn")),
		sql(Green, "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'  -- refused unless none (Aurora refuses a major upgrade with logical slots)"),
		api("rds DescribeDBClusters DBClusterIdentifier=%s  -- nothing is sent if it is at %s already", a.GreenCluster, a.EngineVersion),
	}
	out = append(out, planned(p.Plan())...)
	return append(out, api("rds DescribeDBClusters DBClusterIdentifier=%s  -- every %s until available at %s (about 30 min at 30 TB in 002; blue's slots retain WAL meanwhile)", a.GreenCluster, a.PollInterval, a.EngineVersion))
}

func awsPlanReaders(e *Env) []Action {
	if len(e.Config.AWS.Readers) == 0 {
		return []Action{note(AWSTarget, "no aws.readers configured: nothing to add")}
	}
	out := []Action{api("rds DescribeDBInstances DBInstanceIdentifier=%s  -- the writer's class, for readers without one", e.Config.greenWriterID())}
	for _, p := range e.Config.readerParams("(green writer's)") {
		out = append(out, api("rds DescribeDBInstances DBInstanceIdentifier=%s  -- an existing reader is found, not created twice", p.InstanceID))
		out = append(out, planned(p.Plan())...)
	}
	return append(out, api("rds DescribeDBInstances  -- each reader, every %s until available", e.Config.AWS.PollInterval))
}
