package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// Provision green for aurora-clone: clone-cluster, upgrade-green,
// create-green-readers.

func cloneCluster() *Step {
	return &Step{ID: "clone-cluster", Phase: PhaseProvision, Target: AWSTarget, Title: "Clone blue's Aurora cluster",
		Why:    "A copy-on-write clone gives green blue's data without copying it, taken after the slot exists.",
		Source: "000, 002", Records: []string{"green_endpoint"},
		Plan:  planCloneCluster,
		Check: checkCloneCluster,
		Run:   runCloneCluster,
	}
}

func upgradeGreen() *Step {
	return &Step{ID: "upgrade-green", Phase: PhasePrepareGreen, Target: AWSTarget, Title: "Upgrade green to the new major version",
		Why:    "The clone is on blue's version: upgrade it in place, after the seed is captured and the inherited slots are gone.",
		Source: "000, 002", Needs: []string{"green_start_lsn"},
		Plan:  planUpgradeGreen,
		Check: checkUpgradeGreen,
		Run:   runUpgradeGreen,
	}
}

func createGreenReaders() *Step {
	return &Step{ID: "create-green-readers", Phase: PhasePrepareGreen, Target: AWSTarget, Title: "Add readers to green (optional)",
		Why:    "Readers in green's cluster, so green matches blue's topology before the cutover.",
		Source: "000", Optional: true,
		Plan:  planGreenReaders,
		Check: checkGreenReaders,
		Run:   runGreenReaders,
	}
}

// cloneOp is what clone-cluster finds and will do: the restore unless the
// clone exists, the writer unless it exists, every value resolved from the
// config or read from blue.
type cloneOp struct {
	reads    *awsReads
	restore  *aws.RestoreCloneParams
	writer   *aws.CreateClusterInstanceParams
	writerID string
}

func (e *Env) cloneOp(ctx context.Context) (*cloneOp, error) {
	a := e.Config.AWS
	o := &cloneOp{reads: e.awsReads(), writerID: e.Config.GreenWriterID()}
	r := o.reads
	green, found, err := r.findCluster(ctx, a.GreenCluster, "an existing clone is found, not made twice")
	if err != nil {
		return nil, err
	}
	var blue aws.Cluster
	if !found || a.GreenInstanceClass == "" {
		if blue, err = r.cluster(ctx, a.BlueCluster, "blue's subnet group, security groups, parameter group, writer and engine"); err != nil {
			return nil, err
		}
	}
	if !found {
		o.restore = &aws.RestoreCloneParams{SourceClusterID: a.BlueCluster, ClusterID: a.GreenCluster,
			SubnetGroup: or(a.SubnetGroup, blue.SubnetGroup), SecurityGroupIDs: a.SecurityGroups,
			// blue's group: the clone runs blue's version until upgrade-green.
			ClusterParameterGroup: blue.ParameterGroup, DeletionProtection: a.DeletionProtectionOn()}
		if len(o.restore.SecurityGroupIDs) == 0 {
			o.restore.SecurityGroupIDs = blue.SecurityGroupIDs
		}
	}
	class := a.GreenInstanceClass
	if class == "" {
		w := blue.Writer()
		if w == "" {
			return nil, fmt.Errorf("blue cluster %s has no writer instance to copy the class from; set aws.green_instance_class", a.BlueCluster)
		}
		bw, err := r.instance(ctx, w, "blue writer's class, for green's writer")
		if err != nil {
			return nil, err
		}
		class = bw.Class
	}
	in, wfound, err := r.findInstance(ctx, o.writerID, "an existing writer is found, not made twice")
	if err != nil {
		return nil, err
	}
	if wfound && in.ClusterID != a.GreenCluster {
		return nil, e.refuse("DB instance %s exists already in cluster %s, not in %s: set another aws.green_instance", o.writerID, quoteOrNone(in.ClusterID), a.GreenCluster)
	}
	if !wfound {
		engine := green.Engine
		if engine == "" {
			engine = blue.Engine
		}
		o.writer = &aws.CreateClusterInstanceParams{ClusterID: a.GreenCluster, InstanceID: o.writerID, Class: class, Engine: engine}
	}
	return o, nil
}

func quoteOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
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
	w, found, err := c.FindInstance(ctx, aws.DescribeInstanceParams{InstanceID: e.Config.GreenWriterID()})
	if err != nil || !found || w.Status != "available" {
		return CheckResult{Detail: fmt.Sprintf("cluster %s exists; its writer %s is not available yet", cl.ID, e.Config.GreenWriterID())}, err
	}
	if err := e.recordIfChanged("green_endpoint", cl.Endpoint); err != nil {
		return CheckResult{}, err
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("clone %s (%s %s) available; writer %s; endpoint %s", cl.ID, cl.Engine, cl.EngineVersion, w.ID, cl.Endpoint)}, nil
}

// runCloneCluster restores the clone, waits until it is available (RDS
// adds instances only to an available cluster), then adds its writer and
// waits for it. Whatever exists already is found, not made again.
func runCloneCluster(ctx context.Context, e *Env) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	if err := e.requireSlotsOnBlue(ctx, "a clone"); err != nil {
		return err
	}
	o, err := e.cloneOp(ctx)
	if err != nil {
		return err
	}
	green := e.Config.AWS.GreenCluster
	if o.restore != nil {
		if _, err := c.RestoreClone(ctx, *o.restore); err != nil {
			return err
		}
		e.Logf("cluster %s created as a copy-on-write clone of %s", green, o.restore.SourceClusterID)
	} else {
		e.Logf("cluster %s found (made by an earlier run)", green)
	}
	cl, err := c.WaitClusterAvailable(ctx, e.wait(green, "", "cluster "+green))
	if err != nil {
		return err
	}
	if o.writer != nil {
		if _, err := c.CreateClusterInstance(ctx, *o.writer); err != nil {
			return err
		}
		e.Logf("writer %s (%s) created", o.writerID, o.writer.Class)
	}
	if _, err := c.WaitInstanceAvailable(ctx, e.wait(o.writerID, "", "writer "+o.writerID)); err != nil {
		return err
	}
	e.Logf("green's writer endpoint is %s:%d: green.conninfo must point at it", cl.Endpoint, cl.Port)
	return e.Record("green_endpoint", cl.Endpoint)
}

func planCloneCluster(ctx context.Context, e *Env) ([]Action, error) {
	o, err := e.cloneOp(ctx)
	if err != nil {
		return nil, err
	}
	green := e.Config.AWS.GreenCluster
	out := append([]Action{slotsNote("a clone")}, o.reads.acts...)
	if o.restore != nil {
		out = append(out, planned(o.restore.Plan())...)
	}
	out = append(out, waitAction(aws.DescribeClusterParams{ClusterID: green}.Plan(), e, "available, status and time elapsed in the log (RDS adds instances only to an available cluster)"))
	if o.writer != nil {
		out = append(out, planned(o.writer.Plan())...)
	}
	out = append(out, waitAction(aws.DescribeInstanceParams{InstanceID: o.writerID}.Plan(), e, "available"))
	return append(out, note(AWSTarget, "recorded: green_endpoint = %s (the cluster's writer endpoint; green.conninfo must point at it)", e.V("green_endpoint"))), nil
}

// upgradeOp is what upgrade-green finds and will do.
type upgradeOp struct {
	reads    *awsReads
	upgrade  *aws.UpgradeClusterParams // nil: at the version already
	problems []string                  // refusals: an invalid target, green's groups
	slots    []string                  // logical slots left on green
	version  string                    // green's version now
}

func (e *Env) upgradeOp(ctx context.Context) (*upgradeOp, error) {
	a := e.Config.AWS
	o := &upgradeOp{reads: e.awsReads()}
	r := o.reads
	cl, err := r.cluster(ctx, a.GreenCluster, "its version and status; nothing is sent if it is at "+a.EngineVersion+" already")
	if err != nil {
		return nil, err
	}
	o.version = cl.EngineVersion
	if cl.EngineVersion == a.EngineVersion {
		return o, nil
	}
	p, err := e.targetProblem(ctx, r, cl.Engine, cl.EngineVersion)
	if err != nil {
		return nil, err
	}
	if p != "" {
		o.problems = append(o.problems, p)
	}
	gp, err := e.greenGroupProblems(ctx, r, cl.Engine)
	if err != nil {
		return nil, err
	}
	o.problems = append(o.problems, gp...)
	if e.Green != nil {
		qctx, cancel := e.bounded(ctx)
		slots, err := pg.LogicalSlots(qctx, e.Green)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, s := range slots {
			o.slots = append(o.slots, s.Name)
		}
	}
	u := upgradeClusterParams(e.Config)
	o.upgrade = &u
	return o, nil
}

func upgradeClusterParams(c *config.Config) aws.UpgradeClusterParams {
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
// after it) and green has no logical slot left (Aurora's precheck refuses a
// major upgrade with one), then unless RDS lists the target as a valid
// upgrade of green's version and green's groups fit it.
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
	o, err := e.upgradeOp(ctx)
	if err != nil {
		return err
	}
	p := upgradeClusterParams(e.Config)
	if o.upgrade == nil {
		e.Logf("cluster %s is at %s already", p.ClusterID, p.EngineVersion)
		_, err = c.WaitClusterAvailable(ctx, e.wait(p.ClusterID, p.EngineVersion, "cluster "+p.ClusterID))
		return err
	}
	if len(o.slots) > 0 {
		return e.refuse("green still has logical slot %s (inherited from blue): Aurora refuses a major upgrade with logical slots; run drop-cloned-replication", strings.Join(o.slots, ", "))
	}
	if len(o.problems) > 0 {
		return e.refuse("%s", strings.Join(o.problems, "; "))
	}
	cl, err := c.UpgradeCluster(ctx, p)
	if err != nil {
		return err
	}
	e.Logf("upgrade of %s to %s started (%s); blue's slots retain WAL meanwhile (the lag gauge shows it)", p.ClusterID, p.EngineVersion, cl.Status)
	w := e.wait(p.ClusterID, p.EngineVersion, "upgrade of "+p.ClusterID+" to "+p.EngineVersion)
	w.Started = cl.Status != "available"
	_, err = c.WaitClusterAvailable(ctx, w)
	return err
}

func planUpgradeGreen(ctx context.Context, e *Env) ([]Action, error) {
	a := e.Config.AWS
	o, err := e.upgradeOp(ctx)
	if err != nil {
		return nil, err
	}
	out := []Action{note(Green, "refused unless green_start_lsn is recorded (%s): the upgrade resets WAL positions", e.V("green_start_lsn"))}
	out = append(out, o.reads.acts...)
	if o.upgrade == nil {
		return append(out, note(AWSTarget, "green is at %s already: nothing is sent", a.EngineVersion),
			waitAction(aws.DescribeClusterParams{ClusterID: a.GreenCluster}.Plan(), e, "available")), nil
	}
	out = append(out, note(Green, "refused while green has a logical slot (read from pg_replication_slots): Aurora refuses a major upgrade with one%s", slotsNow(o.slots, e.Green != nil)))
	for _, p := range o.problems {
		out = append(out, note(AWSTarget, "REFUSED now: %s", p))
	}
	out = append(out, planned(o.upgrade.Plan())...)
	out = append(out, waitAction(aws.DescribeClusterParams{ClusterID: a.GreenCluster}.Plan(), e,
		"available at "+a.EngineVersion+" (about 30 min at 30 TB in 002; blue's slots retain WAL meanwhile)"))
	return append(out, plannedNote(aws.EventsParams{SourceID: a.GreenCluster, SourceType: "db-cluster"}.Plan(),
		"only if green comes back at "+o.version+": RDS's reason (its precheck refused the upgrade)")...), nil
}

// slotsNow says what a dry run found.
func slotsNow(slots []string, live bool) string {
	switch {
	case !live:
		return ""
	case len(slots) == 0:
		return " (none now)"
	}
	return " (now: " + strings.Join(slots, ", ") + ")"
}

// readerParams are the readers to add; an empty class is the writer's.
func readerParams(c *config.Config, writerClass, engine string) []aws.CreateClusterInstanceParams {
	out := make([]aws.CreateClusterInstanceParams, len(c.AWS.Readers))
	for i, r := range c.AWS.Readers {
		out[i] = aws.CreateClusterInstanceParams{ClusterID: c.AWS.GreenCluster, InstanceID: r.ID, Engine: engine,
			Class: or(r.Class, or(c.AWS.GreenInstanceClass, writerClass)), ParameterGroup: c.AWS.InstanceParameterGroup}
	}
	return out
}

// readersOp is what create-green-readers finds and will do.
type readersOp struct {
	reads  *awsReads
	create []aws.CreateClusterInstanceParams
	all    []string
}

func (e *Env) readersOp(ctx context.Context) (*readersOp, error) {
	o := &readersOp{reads: e.awsReads()}
	r := o.reads
	cl, err := r.cluster(ctx, e.Config.AWS.GreenCluster, "green's engine; it must be available")
	if err != nil {
		return nil, err
	}
	w, err := r.instance(ctx, e.Config.GreenWriterID(), "the writer's class, for readers without one")
	if err != nil {
		return nil, err
	}
	for _, p := range readerParams(e.Config, w.Class, cl.Engine) {
		o.all = append(o.all, p.InstanceID)
		_, found, err := r.findInstance(ctx, p.InstanceID, "an existing reader is found, not made twice")
		if err != nil {
			return nil, err
		}
		if !found {
			o.create = append(o.create, p)
		}
	}
	return o, nil
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
	o, err := e.readersOp(ctx)
	if err != nil {
		return err
	}
	for _, p := range o.create {
		if _, err := c.CreateClusterInstance(ctx, p); err != nil {
			return err
		}
		e.Logf("reader %s (%s) created", p.InstanceID, p.Class)
	}
	for _, id := range o.all {
		if _, err := c.WaitInstanceAvailable(ctx, e.wait(id, "", "reader "+id)); err != nil {
			return err
		}
	}
	return nil
}

func planGreenReaders(ctx context.Context, e *Env) ([]Action, error) {
	if len(e.Config.AWS.Readers) == 0 {
		return []Action{note(AWSTarget, "no aws.readers configured: nothing to add")}, nil
	}
	o, err := e.readersOp(ctx)
	if err != nil {
		return nil, err
	}
	out := o.reads.acts
	for _, p := range o.create {
		out = append(out, planned(p.Plan())...)
	}
	for _, id := range o.all {
		out = append(out, waitAction(aws.DescribeInstanceParams{InstanceID: id}.Plan(), e, "available"))
	}
	return out, nil
}
