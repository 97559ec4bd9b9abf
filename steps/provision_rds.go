package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// Provision green for rds-snapshot: snapshot-blue, upgrade-snapshot,
// restore-green.

func snapshotBlue() *Step {
	return &Step{ID: "snapshot-blue", Phase: PhaseProvision, Target: AWSTarget, Title: "Snapshot blue",
		Why:    "The snapshot, taken after the slot exists, is green's starting data.",
		Source: "001 §2", Records: []string{"snapshot_id"},
		Plan:  planSnapshotBlue,
		Check: checkSnapshotBlue,
		Run:   runSnapshotBlue,
	}
}

func upgradeSnapshot() *Step {
	return &Step{ID: "upgrade-snapshot", Phase: PhaseProvision, Target: AWSTarget, Title: "Upgrade the snapshot's engine version",
		Why:    "Restoring an upgraded snapshot gives green on the new major without touching blue.",
		Source: "001 §3", Needs: []string{"snapshot_id"},
		Plan:  planUpgradeSnapshot,
		Check: checkUpgradeSnapshot,
		Run:   runUpgradeSnapshot,
	}
}

func restoreGreen() *Step {
	return &Step{ID: "restore-green", Phase: PhaseProvision, Target: AWSTarget, Title: "Restore green from the snapshot",
		Why:    "Green is a new instance restored from the upgraded snapshot.",
		Source: "001 §4", Needs: []string{"snapshot_id"}, Records: []string{"green_endpoint", "restore_time"},
		Plan:  planRestoreGreen,
		Check: checkRestoreGreen,
		Run:   runRestoreGreen,
	}
}

// snapshotOp is what snapshot-blue finds and will do.
type snapshotOp struct {
	reads  *awsReads
	create *aws.CreateSnapshotParams // nil: found
	found  aws.Snapshot
}

func (e *Env) snapshotOp(ctx context.Context) (*snapshotOp, error) {
	o := &snapshotOp{reads: e.awsReads()}
	p := aws.CreateSnapshotParams{InstanceID: e.Config.AWS.BlueInstance, SnapshotID: e.Config.SnapshotID()}
	sn, found, err := o.reads.findSnapshot(ctx, p.SnapshotID, "an existing snapshot of blue is found, not taken twice", false)
	if err != nil {
		return nil, err
	}
	if found && sn.InstanceID != p.InstanceID {
		return nil, e.refuse("snapshot %s exists already and is of instance %s, not blue (%s): choose another aws.snapshot", p.SnapshotID, sn.InstanceID, p.InstanceID)
	}
	if found {
		o.found = sn
	} else {
		o.create = &p
	}
	return o, nil
}

func checkSnapshotBlue(ctx context.Context, e *Env) (CheckResult, error) {
	c, err := e.needAWS()
	if err != nil {
		return CheckResult{}, err
	}
	id := e.Config.SnapshotID()
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
	o, err := e.snapshotOp(ctx)
	if err != nil {
		return err
	}
	id := e.Config.SnapshotID()
	if o.create != nil {
		if err := c.CreateSnapshot(ctx, *o.create); err != nil {
			return err
		}
		e.Logf("snapshot %s of %s created", id, o.create.InstanceID)
	} else {
		e.Logf("snapshot %s found (made by an earlier run)", id)
	}
	if err := e.Record("snapshot_id", id); err != nil {
		return err
	}
	_, err = c.WaitSnapshotAvailable(ctx, e.wait(id, "", "snapshot "+id))
	return err
}

func planSnapshotBlue(ctx context.Context, e *Env) ([]Action, error) {
	o, err := e.snapshotOp(ctx)
	if err != nil {
		return nil, err
	}
	id := e.Config.SnapshotID()
	out := append([]Action{slotsNote("a snapshot")}, o.reads.acts...)
	if o.create != nil {
		out = append(out, planned(o.create.Plan())...)
	}
	return append(out, waitAction(aws.DescribeSnapshotParams{SnapshotID: id}.Plan(), e, "available"),
		note(AWSTarget, "recorded: snapshot_id = %s", id)), nil
}

// upgradeSnapshotOp is what upgrade-snapshot finds and will do.
type upgradeSnapshotOp struct {
	reads   *awsReads
	modify  *aws.UpgradeSnapshotParams // nil: at the version already
	problem string
}

func (e *Env) upgradeSnapshotOp(ctx context.Context) (*upgradeSnapshotOp, error) {
	o := &upgradeSnapshotOp{reads: e.awsReads()}
	p := aws.UpgradeSnapshotParams{SnapshotID: e.V("snapshot_id"), EngineVersion: e.Config.AWS.EngineVersion}
	sn, found, err := o.reads.findSnapshot(ctx, p.SnapshotID, "its version; nothing is sent if it is at "+p.EngineVersion+" already", true)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, &aws.Error{Call: "rds DescribeDBSnapshots", Kind: aws.KindNotFound, Message: "DB snapshot " + p.SnapshotID + " does not exist", Hint: "run snapshot-blue first"}
	}
	if sn.EngineVersion == p.EngineVersion {
		return o, nil
	}
	if o.problem, err = e.targetProblem(ctx, o.reads, sn.Engine, sn.EngineVersion); err != nil {
		return nil, err
	}
	o.modify = &p
	return o, nil
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
	o, err := e.upgradeSnapshotOp(ctx)
	if err != nil {
		return err
	}
	id, version := e.V("snapshot_id"), e.Config.AWS.EngineVersion
	w := e.wait(id, version, "snapshot "+id+" to "+version)
	if o.modify == nil {
		e.Logf("snapshot %s is at %s already", id, version)
	} else {
		if o.problem != "" {
			return e.refuse("%s", o.problem)
		}
		sn, err := c.UpgradeSnapshot(ctx, *o.modify)
		if err != nil {
			return err
		}
		w.Started = sn.Status != "available"
	}
	_, err = c.WaitSnapshotAvailable(ctx, w)
	return err
}

func planUpgradeSnapshot(ctx context.Context, e *Env) ([]Action, error) {
	o, err := e.upgradeSnapshotOp(ctx)
	if err != nil {
		return nil, err
	}
	id, version := e.V("snapshot_id"), e.Config.AWS.EngineVersion
	out := o.reads.acts
	switch {
	case o.modify == nil:
		out = append(out, note(AWSTarget, "the snapshot is at %s already: nothing is sent", version))
	case o.problem != "":
		out = append(out, note(AWSTarget, "REFUSED now: %s", o.problem))
	}
	if o.modify != nil {
		out = append(out, planned(o.modify.Plan())...)
	}
	out = append(out, waitAction(aws.DescribeSnapshotParams{SnapshotID: id}.Plan(), e, "available at "+version))
	if o.modify != nil {
		out = append(out, plannedNote(aws.EventsParams{SourceID: id, SourceType: "db-snapshot"}.Plan(), "only if the snapshot comes back at its old version: RDS's reason")...)
	}
	return out, nil
}

// restoreOp is what restore-green finds and will do.
type restoreOp struct {
	reads    *awsReads
	restore  *aws.RestoreInstanceParams // nil: green exists
	problems []string
}

func (e *Env) restoreOp(ctx context.Context) (*restoreOp, error) {
	a := e.Config.AWS
	o := &restoreOp{reads: e.awsReads()}
	r := o.reads
	snap := e.V("snapshot_id")
	sn, found, err := r.findSnapshot(ctx, snap, "refused unless at "+a.EngineVersion, true)
	if err != nil {
		return nil, err
	}
	if !found {
		o.problems = append(o.problems, "snapshot "+snap+" does not exist: run snapshot-blue first")
		return o, nil
	}
	if sn.EngineVersion != a.EngineVersion && !isPlaceholder(sn.EngineVersion) {
		o.problems = append(o.problems, fmt.Sprintf("snapshot %s is at %s, not the target %s: run upgrade-snapshot first", snap, sn.EngineVersion, a.EngineVersion))
	}
	_, exists, err := r.findInstance(ctx, a.GreenInstance, "an existing green is found, not restored twice")
	if err != nil || exists {
		return o, err
	}
	blue, err := r.instance(ctx, a.BlueInstance, "blue's class, subnet group and security groups, for what the config leaves out")
	if err != nil {
		return nil, err
	}
	gp, err := e.greenGroupProblems(ctx, r, sn.Engine)
	if err != nil {
		return nil, err
	}
	o.problems = append(o.problems, gp...)
	p := restoreParams(e.Config, snap, blue)
	o.restore = &p
	return o, nil
}

// restoreParams are restore-green's parameters; what the config leaves out
// is blue's. Left empty, RDS would put green in the default VPC's subnets.
func restoreParams(c *config.Config, snapshot string, blue aws.Instance) aws.RestoreInstanceParams {
	a := c.AWS
	p := aws.RestoreInstanceParams{
		SnapshotID: snapshot, InstanceID: a.GreenInstance, Class: or(a.GreenInstanceClass, blue.Class),
		ParameterGroup: a.InstanceParameterGroup, SubnetGroup: or(a.SubnetGroup, blue.SubnetGroup), SecurityGroupIDs: a.SecurityGroups,
		MultiAZ: a.MultiAZ, IAMAuth: a.IAMAuth, DeletionProtection: a.DeletionProtectionOn(),
	}
	if len(p.SecurityGroupIDs) == 0 {
		p.SecurityGroupIDs = blue.SecurityGroupIDs
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
	o, err := e.restoreOp(ctx)
	if err != nil {
		return err
	}
	if len(o.problems) > 0 {
		return e.refuse("%s", strings.Join(o.problems, "; "))
	}
	id := e.Config.AWS.GreenInstance
	if o.restore != nil {
		if _, ok := e.Value("restore_time"); !ok {
			// The seed is the first `redo done` after the restore: older log
			// files cannot hold it. A minute's margin covers clock skew.
			if err := e.Record("restore_time", time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)); err != nil {
				return err
			}
		}
		if err := c.RestoreInstanceFromSnapshot(ctx, *o.restore); err != nil {
			return err
		}
		e.Logf("instance %s restored from %s", id, o.restore.SnapshotID)
	} else {
		e.Logf("instance %s found (made by an earlier run)", id)
	}
	in, err := c.WaitInstanceAvailable(ctx, e.wait(id, "", "instance "+id))
	if err != nil {
		return err
	}
	e.Logf("green's endpoint is %s:%d: green.conninfo must point at it", in.Endpoint, in.Port)
	return e.Record("green_endpoint", in.Endpoint)
}

func planRestoreGreen(ctx context.Context, e *Env) ([]Action, error) {
	a := e.Config.AWS
	o, err := e.restoreOp(ctx)
	if err != nil {
		return nil, err
	}
	out := o.reads.acts
	for _, p := range o.problems {
		out = append(out, note(AWSTarget, "REFUSED now: %s", p))
	}
	if o.restore != nil {
		out = append(out, note(AWSTarget, "recorded first: restore_time = %s (green's logs older than it cannot hold the seed)", or(e.Values["restore_time"], "<now, less a minute>")))
		out = append(out, planned(o.restore.Plan())...)
	}
	return append(out, waitAction(aws.DescribeInstanceParams{InstanceID: a.GreenInstance}.Plan(), e, "available"),
		note(AWSTarget, "recorded: green_endpoint = %s (green.conninfo must point at it)", e.V("green_endpoint"))), nil
}
