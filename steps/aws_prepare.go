package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// What the AWS strategies share, and their enable-logical-replication:
// the parameter group of blue, a reboot of its writer. Every call goes
// through e.AWS, whose journal hook records it; the mutating calls' plans
// are the aws Params' own Plan(), so plan and journal cannot drift apart.

func enableLogicalReplicationAWS() *Step {
	return &Step{ID: "enable-logical-replication", Phase: PhasePrepare, Target: AWSOrOperator, Title: "Enable logical replication on blue",
		Why:    "Logical decoding needs wal_level=logical (RDS: rds.logical_replication=1) and room for slots and walsenders; changing it needs a restart.",
		Source: "000", Destructive: true,
		Plan:  offline(awsPlanLogicalReplication),
		Check: checkAWSLogicalReplication,
		Run:   runAWSLogicalReplication,
	}
}

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
	qctx, cancel := e.bounded(ctx)
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
		return e.refuse("slot %s does not exist on blue: %s taken before its slot would miss every row written in between; run create-slots first", strings.Join(missing, ", "), what)
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

func api(format string, args ...any) Action {
	return Action{Target: AWSTarget, Kind: "api", Text: fmt.Sprintf(format, args...)}
}

// planned renders the aws package's planned calls as actions.
func planned(calls ...[]aws.PlannedCall) []Action {
	var out []Action
	for _, cs := range calls {
		for _, c := range cs {
			out = append(out, Action{Target: AWSTarget, Kind: "api", Text: c.String()})
		}
	}
	return out
}

func awsPlanLogicalReplication(e *Env) []Action {
	a := e.Config.AWS
	cluster := e.Config.Strategy == "aurora-clone"
	group := a.BlueParameterGroup
	var out []Action
	if group == "" {
		group = "(blue's parameter group)"
		if cluster {
			out = append(out, api("rds DescribeDBClusters DBClusterIdentifier=%s  -- its DB cluster parameter group", a.BlueCluster))
		} else {
			out = append(out, api("rds DescribeDBInstances DBInstanceIdentifier=%s  -- its DB parameter group", a.BlueInstance))
		}
	}
	read := "rds DescribeDBParameters DBParameterGroupName=%s  -- the five current values"
	pending := api("rds DescribeDBInstances DBInstanceIdentifier=%s  -- is a reboot pending?", a.BlueInstance)
	writer := a.BlueInstance
	if cluster {
		read = "rds DescribeDBClusterParameters DBClusterParameterGroupName=%s  -- the five current values"
		pending = api("rds DescribeDBClusters DBClusterIdentifier=%s  -- is a reboot pending on its writer?", a.BlueCluster)
		writer = "(blue's writer)"
	}
	out = append(out, api(read, group), note(AWSTarget, "only the values that differ are sent; the check is done when none differs and no reboot is pending"))
	out = append(out, planned(aws.SetParametersParams{Group: group, Cluster: cluster, Settings: aws.LogicalReplicationSettings}.Plan())...)
	out = append(out, pending)
	out = append(out, planned(aws.RebootParams{InstanceID: writer}.Plan())...)
	return append(out,
		note(AWSTarget, "the reboot only if the writer waits for one; the step is destructive: --yes, or blue's database name typed in the screen"),
		api("rds DescribeDBInstances DBInstanceIdentifier=%s  -- every %s until available", writer, a.PollInterval))
}
