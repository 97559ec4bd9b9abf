package steps

import (
	"context"
	"fmt"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

// Provision green for rds-snapshot: snapshot-blue, upgrade-snapshot,
// restore-green.

func snapshotBlue() *Step {
	return &Step{ID: "snapshot-blue", Phase: PhaseProvision, Target: AWSTarget, Title: "Snapshot blue",
		Why:    "The snapshot, taken after the slot exists, is green's starting data.",
		Source: "001 §2", Records: []string{"snapshot_id"},
		Plan:  offline(awsPlanSnapshot),
		Check: checkSnapshotBlue,
		Run:   runSnapshotBlue,
	}
}

func upgradeSnapshot() *Step {
	return &Step{ID: "upgrade-snapshot", Phase: PhaseProvision, Target: AWSTarget, Title: "Upgrade the snapshot's engine version",
		Why:    "Restoring an upgraded snapshot gives green on the new major without touching blue.",
		Source: "001 §3", Needs: []string{"snapshot_id"},
		Plan:  offline(awsPlanUpgradeSnapshot),
		Check: checkUpgradeSnapshot,
		Run:   runUpgradeSnapshot,
	}
}

func restoreGreen() *Step {
	return &Step{ID: "restore-green", Phase: PhaseProvision, Target: AWSTarget, Title: "Restore green from the snapshot",
		Why:    "Green is a new instance restored from the upgraded snapshot.",
		Source: "001 §4", Needs: []string{"snapshot_id"}, Records: []string{"green_endpoint", "restore_time"},
		Plan:  offline(awsPlanRestore),
		Check: checkRestoreGreen,
		Run:   runRestoreGreen,
	}
}

func checkSnapshotBlue(ctx context.Context, e *Env) (CheckResult, error) {
	c, err := e.needAWS()
	if err != nil {
		return CheckResult{}, err
	}
	id := e.Config.snapshotID()
	sn, found, err := c.FindSnapshot(ctx, aws.DescribeSnapshotParams{SnapshotID: id})
	switch {
	case err != nil || !found:
		return CheckResult{Detail: "no snapshot " + id + " yet"}, err
	case sn.InstanceID != e.Config.AWS.BlueInstance:
		return CheckResult{Detail: fmt.Sprintf("snapshot %s is of %s, not of blue (%s): choose another aws.snapshot", id, sn.InstanceID, e.Config.AWS.BlueInstance)}, nil
	case sn.Status != "available":
		return CheckResult{Detail: fmt.Sprintf("snapshot %s is %s", id, sn.Status)}, nil
	}
	if err := e.recordIfChanged("snapshot_id", id); err != nil {
		return CheckResult{}, err
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("snapshot %s of %s available (%s %s)", id, sn.InstanceID, sn.Engine, sn.EngineVersion)}, nil
}

func runSnapshotBlue(ctx context.Context, e *Env) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	if err := e.requireSlotsOnBlue(ctx, "a snapshot"); err != nil {
		return err
	}
	p := aws.CreateSnapshotParams{InstanceID: e.Config.AWS.BlueInstance, SnapshotID: e.Config.snapshotID()}
	res, err := c.CreateSnapshot(ctx, p)
	if err != nil {
		return err
	}
	e.Logf("snapshot %s of %s %s", p.SnapshotID, p.InstanceID, createdOrFound(res.Created))
	if err := e.Record("snapshot_id", p.SnapshotID); err != nil {
		return err
	}
	_, err = c.WaitSnapshotAvailable(ctx, e.wait(p.SnapshotID, "", "snapshot "+p.SnapshotID))
	return err
}

func checkUpgradeSnapshot(ctx context.Context, e *Env) (CheckResult, error) {
	c, err := e.needAWS()
	if err != nil {
		return CheckResult{}, err
	}
	id, want := e.V("snapshot_id"), e.Config.AWS.EngineVersion
	sn, found, err := c.FindSnapshot(ctx, aws.DescribeSnapshotParams{SnapshotID: id})
	switch {
	case err != nil || !found:
		return CheckResult{Detail: "no snapshot " + id}, err
	case sn.EngineVersion != want || sn.Status != "available":
		return CheckResult{Detail: fmt.Sprintf("snapshot %s is %s at %s (target %s)", id, sn.Status, sn.EngineVersion, want)}, nil
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("snapshot %s available at %s", id, sn.EngineVersion)}, nil
}

func runUpgradeSnapshot(ctx context.Context, e *Env) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	p := aws.UpgradeSnapshotParams{SnapshotID: e.V("snapshot_id"), EngineVersion: e.Config.AWS.EngineVersion}
	res, err := c.UpgradeSnapshot(ctx, p)
	if err != nil {
		return err
	}
	if res.AlreadyAtVersion {
		e.Logf("snapshot %s is at %s already", p.SnapshotID, p.EngineVersion)
	}
	_, err = c.WaitSnapshotAvailable(ctx, e.wait(p.SnapshotID, p.EngineVersion, "snapshot "+p.SnapshotID+" to "+p.EngineVersion))
	return err
}

// restoreParams are restore-green's parameters; what the config leaves out
// is blue's (blue == nil in a plan: placeholders).
func (c *Config) restoreParams(snapshot string, blue *aws.Instance) aws.RestoreInstanceParams {
	a := c.AWS
	p := aws.RestoreInstanceParams{
		SnapshotID: snapshot, InstanceID: a.GreenInstance, Class: a.GreenInstanceClass,
		ParameterGroup: a.InstanceParameterGroup, SubnetGroup: a.SubnetGroup, SecurityGroupIDs: a.SecurityGroups,
		MultiAZ: a.MultiAZ, IAMAuth: a.IAMAuth,
	}
	from := aws.Instance{Class: aws.FromBlue, SubnetGroup: aws.FromBlue, SecurityGroupIDs: []string{aws.FromBlue}}
	if blue != nil {
		from = *blue
	}
	// Left empty, RDS would put green in the default VPC's subnets.
	p.Class = or(p.Class, from.Class)
	p.SubnetGroup = or(p.SubnetGroup, from.SubnetGroup)
	if len(p.SecurityGroupIDs) == 0 {
		p.SecurityGroupIDs = from.SecurityGroupIDs
	}
	return p
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func checkRestoreGreen(ctx context.Context, e *Env) (CheckResult, error) {
	c, err := e.needAWS()
	if err != nil {
		return CheckResult{}, err
	}
	id := e.Config.AWS.GreenInstance
	in, found, err := c.FindInstance(ctx, aws.DescribeInstanceParams{InstanceID: id})
	switch {
	case err != nil || !found:
		return CheckResult{Detail: "no instance " + id + " yet"}, err
	case in.Status != "available":
		return CheckResult{Detail: fmt.Sprintf("instance %s is %s", id, in.Status)}, nil
	}
	if err := e.recordIfChanged("green_endpoint", in.Endpoint); err != nil {
		return CheckResult{}, err
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("green %s (%s %s) available at %s", id, in.Engine, in.EngineVersion, in.Endpoint)}, nil
}

func runRestoreGreen(ctx context.Context, e *Env) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	snap := e.V("snapshot_id")
	sn, err := c.DescribeSnapshot(ctx, aws.DescribeSnapshotParams{SnapshotID: snap})
	if err != nil {
		return err
	}
	if want := e.Config.AWS.EngineVersion; sn.EngineVersion != want {
		return e.refuse("snapshot %s is at %s, not the target %s: run upgrade-snapshot first", snap, sn.EngineVersion, want)
	}
	blue, err := c.DescribeInstance(ctx, aws.DescribeInstanceParams{InstanceID: e.Config.AWS.BlueInstance})
	if err != nil {
		return err
	}
	if _, ok := e.Value("restore_time"); !ok {
		// The seed is the first `redo done` after the restore: older log
		// files cannot hold it. A minute's margin covers clock skew.
		if err := e.Record("restore_time", time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)); err != nil {
			return err
		}
	}
	p := e.Config.restoreParams(snap, &blue)
	if p.ParameterGroup == "" {
		e.Warnf("aws.instance_parameter_group is not set: green gets the engine's default group, without rds.logical_replication (the cutover's reverse replication needs it)")
	}
	res, err := c.RestoreInstanceFromSnapshot(ctx, p)
	if err != nil {
		return err
	}
	e.Logf("instance %s %s from %s", p.InstanceID, createdOrFound(res.Created), snap)
	in, err := c.WaitInstanceAvailable(ctx, e.wait(p.InstanceID, "", "instance "+p.InstanceID))
	if err != nil {
		return err
	}
	e.Logf("green's endpoint is %s:%d: green.conninfo must point at it", in.Endpoint, in.Port)
	return e.Record("green_endpoint", in.Endpoint)
}

func awsPlanSnapshot(e *Env) []Action {
	p := aws.CreateSnapshotParams{InstanceID: e.Config.AWS.BlueInstance, SnapshotID: e.Config.snapshotID()}
	out := []Action{
		sql(Blue, "SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'  -- refused unless every slot exists (a snapshot before its slot loses rows)"),
		api("rds DescribeDBSnapshots DBSnapshotIdentifier=%s  -- an existing snapshot of blue is found, not taken twice", p.SnapshotID),
	}
	out = append(out, planned(p.Plan())...)
	return append(out,
		api("rds DescribeDBSnapshots DBSnapshotIdentifier=%s  -- every %s until available", p.SnapshotID, e.Config.AWS.PollInterval),
		note(AWSTarget, "recorded: snapshot_id = %s", e.V("snapshot_id")))
}

func awsPlanUpgradeSnapshot(e *Env) []Action {
	p := aws.UpgradeSnapshotParams{SnapshotID: e.V("snapshot_id"), EngineVersion: e.Config.AWS.EngineVersion}
	out := []Action{api("rds DescribeDBSnapshots DBSnapshotIdentifier=%s  -- nothing is sent if it is at %s already", p.SnapshotID, p.EngineVersion)}
	out = append(out, planned(p.Plan())...)
	return append(out, api("rds DescribeDBSnapshots DBSnapshotIdentifier=%s  -- every %s until available at %s", p.SnapshotID, e.Config.AWS.PollInterval, p.EngineVersion))
}

func awsPlanRestore(e *Env) []Action {
	a := e.Config.AWS
	p := e.Config.restoreParams(e.V("snapshot_id"), nil)
	out := []Action{
		api("rds DescribeDBSnapshots DBSnapshotIdentifier=%s  -- refused unless at %s", p.SnapshotID, a.EngineVersion),
		api("rds DescribeDBInstances DBInstanceIdentifier=%s  -- blue's class, subnet group and security groups, for what the config leaves out", a.BlueInstance),
		note(AWSTarget, "recorded first: restore_time = %s (green's logs older than it cannot hold the seed)", e.V("restore_time")),
		api("rds DescribeDBInstances DBInstanceIdentifier=%s  -- an existing green is found, not restored twice", a.GreenInstance),
	}
	out = append(out, planned(p.Plan())...)
	return append(out,
		api("rds DescribeDBInstances DBInstanceIdentifier=%s  -- every %s until available", a.GreenInstance, a.PollInterval),
		note(AWSTarget, "recorded: green_endpoint = %s (green.conninfo must point at it)", e.V("green_endpoint")))
}
