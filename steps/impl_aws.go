package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// The AWS strategies' provisioning steps (aurora-clone: clone-cluster,
// upgrade-green; rds-snapshot: snapshot-blue, upgrade-snapshot,
// restore-green), the AWS variants of enable-logical-replication and
// green-start-lsn, and what they share. Every call goes through e.AWS,
// whose journal hook records it; the mutating calls' plans are the aws
// Params' own Plan(), so plan and journal cannot drift apart.
//
// Each check reads AWS, so a step that was cancelled or crashed is found
// where it stopped: the aws operations are idempotent (an existing clone,
// snapshot or instance is found, not created twice).

func init() {
	implementations["clone-cluster"] = func(s *Step) { s.Check, s.Run = checkCloneCluster, runCloneCluster }
	implementations["snapshot-blue"] = func(s *Step) { s.Check, s.Run = checkSnapshotBlue, runSnapshotBlue }
	implementations["upgrade-snapshot"] = func(s *Step) { s.Check, s.Run = checkUpgradeSnapshot, runUpgradeSnapshot }
	implementations["restore-green"] = func(s *Step) { s.Check, s.Run = checkRestoreGreen, runRestoreGreen }
	implementations["upgrade-green"] = func(s *Step) { s.Check, s.Run = checkUpgradeGreen, runUpgradeGreen }
	awsImplementations["enable-logical-replication"] = func(s *Step) { s.Check, s.Run = checkAWSLogicalReplication, runAWSLogicalReplication }
	awsImplementations["green-start-lsn"] = func(s *Step) { s.Check, s.Run = checkAWSGreenStartLSN, runAWSGreenStartLSN }
}

// awsImplementations replace, for the AWS strategies only, the Check and Run
// of steps that other strategies do with SQL or by hand (Strategy applies
// them after implementations).
var awsImplementations = map[string]func(*Step){}

// needAWS returns the client, or why there is none.
func (e *Env) needAWS() (*aws.Client, error) {
	if e.AWS == nil {
		return nil, fmt.Errorf("no AWS access in this session: check aws.region / aws.profile in the config and the credentials (AWS_PROFILE, `aws sso login`)")
	}
	return e.AWS, nil
}

// progress logs a long wait's status when it changes and every minute, with
// the time elapsed, so the log pane shows where AWS stands.
func (e *Env) progress(what string) aws.ProgressFunc {
	last, lastAt := "", time.Duration(-1)
	return func(status string, elapsed time.Duration) {
		if status == last && elapsed-lastAt < time.Minute {
			return
		}
		last, lastAt = status, elapsed
		e.Logf("%s: %s (%s)", what, status, elapsed.Round(time.Second))
	}
}

func (e *Env) wait(id, version, what string) aws.WaitParams {
	return aws.WaitParams{ID: id, EngineVersion: version, Progress: e.progress(what)}
}

// recordIfChanged records a value unless it is recorded already with it.
func (e *Env) recordIfChanged(key, value string) error {
	if v, ok := e.Value(key); ok && v == value {
		return nil
	}
	return e.Record(key, value)
}

// requireSlotsOnBlue refuses unless every slot exists on blue (trap 3): a
// clone or snapshot taken before its slot misses every row written between.
func (e *Env) requireSlotsOnBlue(ctx context.Context, what string) error {
	if err := e.needBlue(); err != nil {
		return err
	}
	qctx, cancel := e.statementCtx(ctx)
	defer cancel()
	slots, err := pg.LogicalSlots(qctx, e.Blue)
	if err != nil {
		return err
	}
	var missing []string
	for _, p := range e.Config.Publications {
		if _, ok := pg.FindSlot(slots, slotName(p.Name)); !ok {
			missing = append(missing, slotName(p.Name))
		}
	}
	if len(missing) > 0 {
		return e.refusal("slot %s does not exist on blue: %s taken before its slot would miss every row written in between; run create-slots first", strings.Join(missing, ", "), what)
	}
	return nil
}

// blueParameterGroup is the group where logical replication is enabled:
// aws.blue_parameter_group, or the one blue uses.
func (e *Env) blueParameterGroup(ctx context.Context, c *aws.Client) (string, error) {
	if g := e.Config.AWS.BlueParameterGroup; g != "" {
		return g, nil
	}
	if e.Config.Strategy == "aurora-clone" {
		cl, err := c.DescribeCluster(ctx, aws.DescribeClusterParams{ClusterID: e.Config.AWS.BlueCluster})
		if err != nil {
			return "", err
		}
		return cl.ParameterGroup, nil
	}
	in, err := c.DescribeInstance(ctx, aws.DescribeInstanceParams{InstanceID: e.Config.AWS.BlueInstance})
	if err != nil {
		return "", err
	}
	if len(in.ParameterGroups) == 0 {
		return "", fmt.Errorf("blue instance %s has no DB parameter group; set aws.blue_parameter_group", in.ID)
	}
	return in.ParameterGroups[0].Name, nil
}

// logicalReplicationState is what enable-logical-replication finds.
type logicalReplicationState struct {
	group   string
	differ  []aws.Setting
	writer  string // the instance whose reboot applies the group
	pending bool   // the writer waits for a reboot
	others  []string
}

func (e *Env) readLogicalReplication(ctx context.Context, c *aws.Client) (logicalReplicationState, error) {
	var st logicalReplicationState
	var err error
	if st.group, err = e.blueParameterGroup(ctx, c); err != nil {
		return st, err
	}
	names := make([]string, len(aws.LogicalReplicationSettings))
	for i, s := range aws.LogicalReplicationSettings {
		names[i] = s.Name
	}
	have, err := c.GetParameters(ctx, aws.GetParametersParams{Group: st.group, Cluster: e.Config.Strategy == "aurora-clone", Names: names})
	if err != nil {
		return st, err
	}
	st.differ = aws.Differing(have, aws.LogicalReplicationSettings)
	return st, e.readRebootPending(ctx, c, &st)
}

// readRebootPending fills in whether blue's writer waits for a reboot.
func (e *Env) readRebootPending(ctx context.Context, c *aws.Client, st *logicalReplicationState) error {
	cluster := e.Config.Strategy == "aurora-clone"
	rp := aws.RebootPendingParams{InstanceID: e.Config.AWS.BlueInstance}
	if cluster {
		rp = aws.RebootPendingParams{ClusterID: e.Config.AWS.BlueCluster}
	}
	res, err := c.RebootPending(ctx, rp)
	if err != nil {
		return err
	}
	st.writer, st.pending, st.others = res.Writer, false, nil
	if !cluster {
		st.writer = e.Config.AWS.BlueInstance
	}
	for _, id := range res.Instances {
		if id == st.writer {
			st.pending = true
		} else {
			st.others = append(st.others, id)
		}
	}
	return nil
}

func settingsText(s []aws.Setting) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = x.Name + "=" + x.Value
	}
	return strings.Join(parts, ", ")
}

func checkAWSLogicalReplication(ctx context.Context, e *Env) (CheckResult, error) {
	c, err := e.needAWS()
	if err != nil {
		return CheckResult{}, err
	}
	st, err := e.readLogicalReplication(ctx, c)
	if err != nil {
		return CheckResult{}, err
	}
	switch {
	case len(st.differ) > 0:
		return CheckResult{Detail: fmt.Sprintf("parameter group %s still needs %s", st.group, settingsText(st.differ))}, nil
	case st.pending:
		return CheckResult{Detail: fmt.Sprintf("parameter group %s is set; %s waits for a reboot to apply it", st.group, st.writer)}, nil
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("parameter group %s has the five settings; %s runs with them", st.group, st.writer)}, nil
}

// runAWSLogicalReplication sends only the values that differ, then reboots
// blue's writer (the step is destructive: the runner had the operator's
// confirmation) and waits until it is available again.
func runAWSLogicalReplication(ctx context.Context, e *Env) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	st, err := e.readLogicalReplication(ctx, c)
	if err != nil {
		return err
	}
	if len(st.differ) > 0 {
		e.Logf("setting %s in %s (applied at the next reboot)", settingsText(st.differ), st.group)
		if _, err := c.SetParameters(ctx, aws.SetParametersParams{Group: st.group, Cluster: e.Config.Strategy == "aurora-clone", Settings: st.differ}); err != nil {
			return err
		}
		if err := e.readRebootPending(ctx, c, &st); err != nil {
			return err
		}
	}
	if len(st.others) > 0 {
		e.Warnf("%s also wait for a reboot; replication only needs the writer's", strings.Join(st.others, ", "))
	}
	if !st.pending {
		e.Logf("%s needs no reboot", st.writer)
		return nil
	}
	e.Logf("rebooting %s so the parameters apply (connections drop for a minute or two)", st.writer)
	if _, err := c.RebootInstance(ctx, aws.RebootParams{InstanceID: st.writer}); err != nil {
		return err
	}
	_, err = c.WaitInstanceAvailable(ctx, e.wait(st.writer, "", "reboot of "+st.writer))
	return err
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
		return e.refusal("green_start_lsn is not recorded: read it with green-start-lsn before the upgrade, which resets WAL positions")
	}
	if err := e.needGreen(); err != nil {
		return err
	}
	qctx, cancel := e.statementCtx(ctx)
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
		return e.refusal("green still has logical slot %s (inherited from blue): Aurora refuses a major upgrade with logical slots; run drop-cloned-replication", strings.Join(names, ", "))
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
