package steps

import (
	"context"
	"fmt"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

// The checks of the upgrade's target and of green's parameter groups, made
// by preflight (before anything changes) and again by the step that upgrades
// or restores green (right before it does): DescribeDBEngineVersions lists
// the valid upgrade targets of blue's version, and green's groups must be of
// the target's family and have rds.logical_replication = 1, or green comes
// up without logical replication and only the cutover's reverse replication
// would notice, long after the upgrade.

// blueEngine reads blue's engine and version.
func (e *Env) blueEngine(ctx context.Context, r *awsReads) (engine, version string, err error) {
	a := e.Config.AWS
	if e.Config.Strategy == "aurora-clone" {
		cl, err := r.cluster(ctx, a.BlueCluster, "blue's engine version")
		return cl.Engine, cl.EngineVersion, err
	}
	in, err := r.instance(ctx, a.BlueInstance, "blue's engine version")
	return in.Engine, in.EngineVersion, err
}

// targetProblem says why target is not a valid upgrade of engine at
// version ("" when it is).
func (e *Env) targetProblem(ctx context.Context, r *awsReads, engine, version string) (string, error) {
	target := e.Config.AWS.EngineVersion
	if version == target {
		return "", nil
	}
	ev, found, err := r.engineVersion(ctx, aws.EngineVersionParams{Engine: engine, Version: version}, target,
		"the valid upgrade targets of "+version)
	switch {
	case err != nil:
		return "", err
	case !found:
		return fmt.Sprintf("RDS does not list %s %s: check the engine and version of the instance", engine, version), nil
	case !ev.CanUpgradeTo(target):
		return fmt.Sprintf("aws.engine_version %s is not a valid upgrade target of %s %s; RDS lists: %s", target, engine, version, orNone(ev.Targets())), nil
	}
	return "", nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// greenGroupProblems checks green's parameter groups for the target version.
func (e *Env) greenGroupProblems(ctx context.Context, r *awsReads, engine string) ([]string, error) {
	a := e.Config.AWS
	fam := aws.Family(engine, a.EngineVersion)
	if isPlaceholder(engine) {
		fam = "<the target's family>"
	}
	type want struct {
		key, name string
		cluster   bool
		logical   bool // must hold rds.logical_replication = 1
	}
	var wants []want
	if e.Config.Strategy == "aurora-clone" {
		wants = append(wants, want{"aws.cluster_parameter_group", a.ClusterParameterGroup, true, true})
		if a.InstanceParameterGroup != "" {
			wants = append(wants, want{"aws.instance_parameter_group", a.InstanceParameterGroup, false, false})
		}
	} else {
		wants = append(wants, want{"aws.instance_parameter_group", a.InstanceParameterGroup, false, true})
	}
	var out []string
	for _, w := range wants {
		if w.name == "" {
			out = append(out, fmt.Sprintf("%s is empty: green would get RDS's default group (default.%s), without rds.logical_replication = 1; create a group of family %s with rds.logical_replication = 1 and name it there", w.key, fam, fam))
			continue
		}
		g, found, err := r.group(ctx, aws.DescribeParameterGroupParams{Name: w.name, Cluster: w.cluster}, fam, "green's "+w.key+": exists, family "+fam)
		if err != nil {
			return nil, err
		}
		if !found {
			out = append(out, fmt.Sprintf("%s %s does not exist: create it (family %s, rds.logical_replication = 1)", w.key, w.name, fam))
			continue
		}
		if r.live() && g.Family != fam && !isPlaceholder(fam) {
			out = append(out, fmt.Sprintf("%s %s is of family %s; green on %s needs family %s", w.key, w.name, g.Family, a.EngineVersion, fam))
			continue
		}
		if !w.logical {
			continue
		}
		ps, err := r.parameters(ctx, aws.GetParametersParams{Group: w.name, Cluster: w.cluster, Names: []string{"rds.logical_replication"}}, "rds.logical_replication must be 1")
		if err != nil {
			return nil, err
		}
		if v := ps.Parameters["rds.logical_replication"].Value; r.live() && v != "1" {
			out = append(out, fmt.Sprintf("%s %s has rds.logical_replication = %s: set it to 1, or green cannot feed blue after the cutover (rollback)", w.key, w.name, orNone(v)))
		}
	}
	return out, nil
}

// awsPreflight is preflight's part for the AWS strategies: the target
// version is one RDS can upgrade blue to, and green's groups fit it.
type awsPreflightOp struct {
	reads            *awsReads
	engine, version  string
	problems, passes []string
}

func (e *Env) awsPreflightOp(ctx context.Context) (*awsPreflightOp, error) {
	o := &awsPreflightOp{reads: e.awsReads()}
	var err error
	if o.engine, o.version, err = e.blueEngine(ctx, o.reads); err != nil {
		return nil, err
	}
	p, err := e.targetProblem(ctx, o.reads, o.engine, o.version)
	if err != nil {
		return nil, err
	}
	if p != "" {
		o.problems = append(o.problems, p)
	} else {
		o.passes = append(o.passes, fmt.Sprintf("%s %s can be upgraded to %s", o.engine, o.version, e.Config.AWS.EngineVersion))
	}
	gp, err := e.greenGroupProblems(ctx, o.reads, o.engine)
	if err != nil {
		return nil, err
	}
	if len(gp) == 0 {
		o.passes = append(o.passes, "green's parameter groups are of the target's family, with rds.logical_replication = 1")
	}
	o.problems = append(o.problems, gp...)
	return o, nil
}

// awsPreflight reports the AWS checks into preflight's report.
func (e *Env) awsPreflight(ctx context.Context, r *preflightReport) error {
	if _, err := e.needAWS(); err != nil {
		r.fail("%v", err)
		return nil
	}
	o, err := e.awsPreflightOp(ctx)
	if err != nil {
		return err
	}
	for _, p := range o.passes {
		r.pass("%s", p)
	}
	for _, p := range o.problems {
		r.fail("%s", p)
	}
	return nil
}

// withAWSPreflight adds the AWS strategies' reads to preflight's plan.
func withAWSPreflight(plan func(context.Context, *Env) ([]Action, error)) func(context.Context, *Env) ([]Action, error) {
	return func(ctx context.Context, e *Env) ([]Action, error) {
		acts, err := plan(ctx, e)
		if err != nil || !e.Config.IsAWS() {
			return acts, err
		}
		o, err := e.awsPreflightOp(ctx)
		if err != nil {
			return acts, err
		}
		acts = append(acts, o.reads.acts...)
		for _, p := range o.problems {
			acts = append(acts, note(AWSTarget, "will FAIL: %s", p))
		}
		return acts, nil
	}
}
