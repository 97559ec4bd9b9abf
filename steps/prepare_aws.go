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
// blue's parameter group (a custom one when blue runs on a default group,
// which RDS refuses to modify), a reboot of its writer once the change is
// no longer "applying", and wal_level read back over SQL. Every call goes
// through e.AWS, whose journal hook records it; each step's plan comes from
// the same builder as its run, so plan, dry run and journal agree.

func enableLogicalReplicationAWS() *Step {
	return &Step{ID: "enable-logical-replication", Phase: PhasePrepare, Target: AWSOrOperator, Title: "Enable logical replication on blue",
		Why:    "Logical decoding needs wal_level=logical (RDS: rds.logical_replication=1) and room for slots and walsenders; changing it needs a restart.",
		Source: "000", Destructive: true,
		Plan:  planAWSLogicalReplication,
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
		if _, ok := pg.FindSlot(slots, e.Config.Feed(p.Name)); !ok {
			missing = append(missing, e.Config.Feed(p.Name))
		}
	}
	if len(missing) > 0 {
		return e.refuse("slot %s does not exist on blue: %s taken before its slot would miss every row written in between; run create-slots first", strings.Join(missing, ", "), what)
	}
	return nil
}

// slotsNote is the plan's line for requireSlotsOnBlue.
func slotsNote(what string) Action {
	return note(Blue, "refused unless every slot exists on blue (read from pg_replication_slots): %s taken before its slot would lose rows", what)
}

// logicalReplicationOp is what enable-logical-replication finds and will
// do, built by the reads it makes (live, or offline with placeholders).
type logicalReplicationOp struct {
	reads   *awsReads
	cluster bool
	blueID  string // the cluster (Aurora) or the instance (RDS)
	writer  string // the instance whose reboot applies the group
	// attached is the group blue uses now; group the one that will hold
	// the settings (attached, unless that is a default group or the config
	// names another).
	attached, group string
	create          *aws.CreateParameterGroupParams
	set             *aws.SetParametersParams
	attach          *aws.AttachParameterGroupParams
	// status is the writer's parameter status now; walLevel blue's
	// wal_level over SQL ("" when blue is not reachable).
	status, walLevel string
	others           []string // other members waiting for a reboot
}

func (o *logicalReplicationOp) sends() bool {
	return o.create != nil || o.set != nil || o.attach != nil
}

func (o *logicalReplicationOp) needsReboot() bool {
	return o.sends() || o.status == "pending-reboot" || o.status == "applying" || (o.walLevel != "" && o.walLevel != "logical")
}

// customGroupName is blue's own group when it runs on a default one.
func customGroupName(blueID string) string { return blueID + "-pgbluegreen" }

func (e *Env) logicalReplicationOp(ctx context.Context) (*logicalReplicationOp, error) {
	a := e.Config.AWS
	o := &logicalReplicationOp{reads: e.awsReads(), cluster: e.Config.Strategy == "aurora-clone"}
	r := o.reads
	var engine, version string
	if o.cluster {
		o.blueID = a.BlueCluster
		cl, err := r.cluster(ctx, a.BlueCluster, "its cluster parameter group, writer and the writer's parameter status")
		if err != nil {
			return nil, err
		}
		o.attached, o.writer, engine, version = cl.ParameterGroup, cl.Writer(), cl.Engine, cl.EngineVersion
		for _, m := range cl.Members {
			switch {
			case m.InstanceID == o.writer:
				o.status = m.ParameterGroupStatus
			case m.ParameterGroupStatus == "pending-reboot":
				o.others = append(o.others, m.InstanceID)
			}
		}
		if o.writer == "" {
			return nil, fmt.Errorf("blue cluster %s has no writer instance", a.BlueCluster)
		}
	} else {
		o.blueID, o.writer = a.BlueInstance, a.BlueInstance
		in, err := r.instance(ctx, a.BlueInstance, "its DB parameter group and its parameter status")
		if err != nil {
			return nil, err
		}
		if len(in.ParameterGroups) == 0 {
			return nil, fmt.Errorf("blue instance %s has no DB parameter group; set aws.blue_parameter_group", in.ID)
		}
		o.attached, o.status, engine, version = in.ParameterGroups[0].Name, aws.ApplyStatus(nil, in), in.Engine, in.EngineVersion
	}
	o.group = o.attached
	switch {
	case a.BlueParameterGroup != "":
		o.group = a.BlueParameterGroup
	case aws.IsDefaultGroup(o.attached):
		o.group = customGroupName(o.blueID)
	}
	exists := true
	if o.group != o.attached {
		fam := aws.Family(engine, version)
		if isPlaceholder(engine) {
			fam = ph(o.blueID, "parameter group family")
		}
		why := "the group that holds the settings: made if missing, attached unless blue uses it"
		if aws.IsDefaultGroup(o.attached) {
			why = "blue's " + o.attached + " is a default group RDS refuses to modify: a group of its own, made if missing"
		}
		g, found, err := r.group(ctx, aws.DescribeParameterGroupParams{Name: o.group, Cluster: o.cluster}, fam, why)
		if err != nil {
			return nil, err
		}
		if found && g.Family != fam && !isPlaceholder(fam) {
			return nil, e.refuse("parameter group %s is of family %s, blue (%s %s) needs %s: name another in aws.blue_parameter_group", o.group, g.Family, engine, version, fam)
		}
		if exists = found; !found {
			o.create = &aws.CreateParameterGroupParams{Name: o.group, Family: fam, Cluster: o.cluster,
				Description: "pgbluegreen: " + o.blueID + "'s settings with logical replication (was " + o.attached + ")"}
		}
		o.attach = &aws.AttachParameterGroupParams{Group: o.group, ClusterID: ifTrue(o.cluster, o.blueID), InstanceID: ifTrue(!o.cluster, o.blueID)}
	}
	differ := aws.LogicalReplicationSettings
	if exists {
		have, err := r.parameters(ctx, aws.GetParametersParams{Group: o.group, Cluster: o.cluster, Names: settingNames(aws.LogicalReplicationSettings)},
			"the five current values; only those that differ are sent")
		if err != nil {
			return nil, err
		}
		differ = aws.Differing(have, aws.LogicalReplicationSettings)
	}
	if len(differ) > 0 {
		o.set = &aws.SetParametersParams{Group: o.group, Cluster: o.cluster, Settings: differ}
	}
	if e.Blue != nil {
		qctx, cancel := e.bounded(ctx)
		st, err := pg.ReadReplicationSettings(qctx, e.Blue)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read blue's wal_level: %w", err)
		}
		o.walLevel = st.WALLevel
	}
	return o, nil
}

func ifTrue(b bool, v string) string {
	if b {
		return v
	}
	return ""
}

func settingNames(s []aws.Setting) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.Name
	}
	return out
}

func settingsText(s []aws.Setting) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = x.Name + "=" + x.Value
	}
	return strings.Join(parts, ", ")
}

// waitApplied is the wait for the writer's parameter status to settle.
func (o *logicalReplicationOp) waitApplied(e *Env) aws.WaitAppliedParams {
	p := aws.WaitAppliedParams{InstanceID: o.writer, Progress: e.progress("parameters of " + o.writer)}
	if o.cluster {
		p.ClusterID = o.blueID
	}
	return p
}

func checkAWSLogicalReplication(ctx context.Context, e *Env) (CheckResult, error) {
	if _, err := e.needAWS(); err != nil {
		return CheckResult{}, err
	}
	o, err := e.logicalReplicationOp(ctx)
	if err != nil {
		return CheckResult{}, err
	}
	switch {
	case o.create != nil:
		return CheckResult{Detail: fmt.Sprintf("blue uses %s, a default group: %s is to be made and attached", o.attached, o.group)}, nil
	case o.attach != nil:
		return CheckResult{Detail: fmt.Sprintf("%s holds the settings but blue uses %s", o.group, o.attached)}, nil
	case o.set != nil:
		return CheckResult{Detail: fmt.Sprintf("parameter group %s still needs %s", o.group, settingsText(o.set.Settings))}, nil
	case o.status != "in-sync":
		return CheckResult{Detail: fmt.Sprintf("parameter group %s is set; %s's parameters are %s", o.group, o.writer, o.status)}, nil
	case o.walLevel == "":
		return CheckResult{Detail: "the group is set and applied, but blue's wal_level could not be read (no connection to blue)"}, nil
	case o.walLevel != "logical":
		return CheckResult{Detail: fmt.Sprintf("the group is set and applied, yet blue's wal_level is %s: reboot %s", o.walLevel, o.writer)}, nil
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("parameter group %s has the five settings; %s runs with them (wal_level = logical)", o.group, o.writer)}, nil
}

// runAWSLogicalReplication sends only what differs (a custom group first
// when blue runs on a default one), waits until RDS no longer says
// "applying" (a reboot before that can come up without the change), reboots
// blue's writer (the step is destructive: the runner had the operator's
// confirmation), waits, and reads wal_level back over SQL.
func runAWSLogicalReplication(ctx context.Context, e *Env) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	o, err := e.logicalReplicationOp(ctx)
	if err != nil {
		return err
	}
	if o.create != nil {
		e.Logf("blue uses %s, a default group RDS does not let anyone modify: creating %s (%s)", o.attached, o.group, o.create.Family)
		if err := c.CreateParameterGroup(ctx, *o.create); err != nil {
			return err
		}
	}
	if o.set != nil {
		e.Logf("setting %s in %s (applied at the next reboot)", settingsText(o.set.Settings), o.group)
		if err := c.SetParameters(ctx, *o.set); err != nil {
			return err
		}
	}
	if o.attach != nil {
		e.Logf("attaching %s to %s", o.group, o.blueID)
		if err := c.AttachParameterGroup(ctx, *o.attach); err != nil {
			return err
		}
	}
	if len(o.others) > 0 {
		e.Warnf("%s also wait for a reboot; replication only needs the writer's", strings.Join(o.others, ", "))
	}
	if !o.needsReboot() {
		e.Logf("%s runs with the settings already (wal_level = %s)", o.writer, o.walLevel)
		return nil
	}
	if o.sends() || o.status == "applying" {
		st, err := c.WaitParametersApplied(ctx, o.waitApplied(e))
		if err != nil {
			return err
		}
		e.Logf("%s's parameters: %s", o.writer, st)
	}
	e.Logf("rebooting %s so the parameters apply (connections drop for a minute or two)", o.writer)
	if err := c.RebootInstance(ctx, aws.RebootParams{InstanceID: o.writer}); err != nil {
		return err
	}
	if _, err := c.WaitInstanceAvailable(ctx, e.wait(o.writer, "", "reboot of "+o.writer)); err != nil {
		return err
	}
	if err := e.needBlue(); err != nil {
		return fmt.Errorf("after the reboot, blue's wal_level cannot be read: %w", err)
	}
	qctx, cancel := e.bounded(ctx)
	defer cancel()
	st, err := pg.ReadReplicationSettings(qctx, e.Blue)
	if err != nil {
		return fmt.Errorf("read blue's wal_level after the reboot: %w", err)
	}
	if st.WALLevel != "logical" {
		return fmt.Errorf("blue's wal_level is %s after the reboot of %s: the parameters did not apply; check %s's parameter status (aws rds describe-db-instances) and run this step again", st.WALLevel, o.writer, o.writer)
	}
	e.Logf("blue's wal_level is logical")
	return nil
}

func planAWSLogicalReplication(ctx context.Context, e *Env) ([]Action, error) {
	o, err := e.logicalReplicationOp(ctx)
	if err != nil {
		return nil, err
	}
	out := o.reads.acts
	if o.walLevel != "" {
		out = append(out, note(Blue, "blue's wal_level is %s now (read over SQL)", o.walLevel))
	}
	if o.create != nil {
		out = append(out, plannedNote(o.create.Plan(), "blue's "+o.attached+" is a default group RDS refuses to modify")...)
		// The check after the run reads the group it made.
		read := aws.GetParametersParams{Group: o.group, Cluster: o.cluster}.Plan()
		out = append(out, plannedNote(read, "read by the check once the group exists")...)
	}
	if o.set != nil {
		out = append(out, planned(o.set.Plan())...)
	}
	if o.attach != nil {
		out = append(out, plannedNote(o.attach.Plan(), "attached, it waits for the reboot below")...)
	}
	if !o.reads.live() {
		out = append(out, note(AWSTarget, "offline: a group of its own (%s) is made and attached if blue uses a default group; only the values that differ are sent", customGroupName(o.blueID)))
	}
	if !o.needsReboot() && o.reads.live() {
		return append(out, note(AWSTarget, "nothing to send and no reboot: %s runs with the settings (wal_level = %s)", o.writer, o.walLevel)), nil
	}
	out = append(out, waitAction(o.waitApplied(e).Plan(), e, o.writer+"'s parameters are no longer \"applying\" (a reboot before that can miss them)"))
	out = append(out, plannedNote(aws.RebootParams{InstanceID: o.writer}.Plan(), "the step is destructive: --yes, or blue's database name typed in the screen")...)
	out = append(out, waitAction(aws.DescribeInstanceParams{InstanceID: o.writer}.Plan(), e, "available"))
	return append(out, note(Blue, "then blue's wal_level is read over SQL: the step is done only once it is logical")), nil
}
