package steps

import (
	"context"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

// awsReads makes the AWS reads a step's builder decides with (describes,
// gets, lists) and keeps each one, in order, for the plan. Live (e.AWS set:
// a run, or a dry run whose client journals nothing) it sends them and
// answers with what AWS holds; offline it sends nothing and answers with
// placeholders, as if blue existed and nothing else did yet. One builder
// thus serves the run, the dry run and the offline plan, and the reads the
// run makes are the reads the plan shows.
type awsReads struct {
	c    *aws.Client
	acts []Action
}

func (e *Env) awsReads() *awsReads { return &awsReads{c: e.AWS} }

func (r *awsReads) live() bool { return r.c != nil }

// show adds calls to the plan, the first with a note ("  -- why").
func (r *awsReads) show(calls []aws.PlannedCall, why string) {
	for i, c := range calls {
		text := c.String()
		if why != "" && i == 0 {
			text += "  -- " + why
		}
		r.acts = append(r.acts, Action{Target: AWSTarget, Kind: "api", Text: text})
	}
}

// note adds a line that is no call.
func (r *awsReads) note(format string, args ...any) {
	r.acts = append(r.acts, note(AWSTarget, format, args...))
}

// ph is an offline placeholder for something of id (itself a placeholder,
// maybe: one pair of brackets, so a plan's matcher reads it as one).
func ph(id, what string) string {
	return "<" + strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">") + "'s " + what + ">"
}

// cluster reads a cluster that must exist (blue's).
func (r *awsReads) cluster(ctx context.Context, id, why string) (aws.Cluster, error) {
	p := aws.DescribeClusterParams{ClusterID: id}
	r.show(p.Plan(), why)
	if !r.live() {
		return aws.Cluster{ID: id, Status: "available", Engine: ph(id, "engine"), EngineVersion: ph(id, "version"),
			ParameterGroup: ph(id, "cluster parameter group"), SubnetGroup: ph(id, "subnet group"),
			SecurityGroupIDs: []string{ph(id, "security groups")}, Endpoint: ph(id, "endpoint"),
			Members: []aws.ClusterMember{{InstanceID: ph(id, "writer"), Writer: true}}}, nil
	}
	return r.c.DescribeCluster(ctx, p)
}

// findCluster reads a cluster that may not exist yet (green's): offline,
// it does not.
func (r *awsReads) findCluster(ctx context.Context, id, why string) (aws.Cluster, bool, error) {
	p := aws.DescribeClusterParams{ClusterID: id}
	r.show(p.Plan(), why)
	if !r.live() {
		return aws.Cluster{}, false, nil
	}
	return r.c.FindCluster(ctx, p)
}

// instance reads an instance that must exist.
func (r *awsReads) instance(ctx context.Context, id, why string) (aws.Instance, error) {
	p := aws.DescribeInstanceParams{InstanceID: id}
	r.show(p.Plan(), why)
	if !r.live() {
		return aws.Instance{ID: id, Status: "available", Class: ph(id, "class"), Engine: ph(id, "engine"), EngineVersion: ph(id, "version"),
			SubnetGroup: ph(id, "subnet group"), SecurityGroupIDs: []string{ph(id, "security groups")}, Endpoint: ph(id, "endpoint"),
			ParameterGroups: []aws.ParameterGroupStatus{{Name: ph(id, "parameter group"), ApplyStatus: "in-sync"}}}, nil
	}
	return r.c.DescribeInstance(ctx, p)
}

// findInstance reads an instance that may not exist yet.
func (r *awsReads) findInstance(ctx context.Context, id, why string) (aws.Instance, bool, error) {
	p := aws.DescribeInstanceParams{InstanceID: id}
	r.show(p.Plan(), why)
	if !r.live() {
		return aws.Instance{}, false, nil
	}
	return r.c.FindInstance(ctx, p)
}

// findSnapshot reads a DB snapshot that may not exist yet; offline, one
// taken by an earlier step exists when exists says so.
func (r *awsReads) findSnapshot(ctx context.Context, id, why string, exists bool) (aws.Snapshot, bool, error) {
	p := aws.DescribeSnapshotParams{SnapshotID: id}
	r.show(p.Plan(), why)
	if !r.live() {
		if exists {
			return aws.Snapshot{ID: id, Status: "available", Engine: ph(id, "engine"), EngineVersion: ph(id, "version")}, true, nil
		}
		return aws.Snapshot{}, false, nil
	}
	return r.c.FindSnapshot(ctx, p)
}

// findClusterSnapshot reads a DB cluster snapshot that may not exist yet.
func (r *awsReads) findClusterSnapshot(ctx context.Context, id, why string) (aws.ClusterSnapshot, bool, error) {
	p := aws.DescribeClusterSnapshotParams{SnapshotID: id}
	r.show(p.Plan(), why)
	if !r.live() {
		return aws.ClusterSnapshot{}, false, nil
	}
	return r.c.FindClusterSnapshot(ctx, p)
}

// parameters reads some parameters of a group; offline, none holds the
// wanted value (the plan shows every setting sent).
func (r *awsReads) parameters(ctx context.Context, p aws.GetParametersParams, why string) (aws.GetParametersResult, error) {
	r.show(p.Plan(), why)
	if !r.live() {
		return aws.GetParametersResult{Parameters: map[string]aws.Parameter{}}, nil
	}
	return r.c.GetParameters(ctx, p)
}

// group reads a parameter group; offline it exists, of family fam.
func (r *awsReads) group(ctx context.Context, p aws.DescribeParameterGroupParams, fam, why string) (aws.ParameterGroup, bool, error) {
	r.show(p.Plan(), why)
	if !r.live() {
		return aws.ParameterGroup{Name: p.Name, Family: fam}, true, nil
	}
	return r.c.FindParameterGroup(ctx, p)
}

// engineVersion reads an engine version's valid upgrade targets; offline
// the target is valid.
func (r *awsReads) engineVersion(ctx context.Context, p aws.EngineVersionParams, target, why string) (aws.EngineVersion, bool, error) {
	r.show(p.Plan(), why)
	if !r.live() {
		return aws.EngineVersion{Engine: p.Engine, Version: p.Version, UpgradeTargets: []aws.UpgradeTarget{{Version: target}}}, true, nil
	}
	return r.c.DescribeEngineVersion(ctx, p)
}

// secret reads a secret's version; offline its version is a placeholder.
func (r *awsReads) secret(ctx context.Context, p aws.GetSecretParams, why string) (aws.GetSecretResult, error) {
	r.show(p.Plan(), why)
	if !r.live() {
		return aws.GetSecretResult{VersionID: ph(p.SecretID, "current version")}, nil
	}
	return r.c.GetSecret(ctx, p)
}

// parameter reads an SSM parameter that may not exist; offline it exists.
func (r *awsReads) parameter(ctx context.Context, p aws.GetParameterParams, why string) (aws.GetParameterResult, bool, error) {
	r.show(p.Plan(), why)
	if !r.live() {
		return aws.GetParameterResult{Name: p.Name, Value: ph(p.Name, "value"), Type: "String", Version: 0}, true, nil
	}
	return r.c.FindParameter(ctx, p)
}

// record reads a DNS record; offline it exists with placeholder values.
func (r *awsReads) record(ctx context.Context, p aws.LookupRecordParams, why string) (aws.LookupRecordResult, error) {
	r.show(p.Plan(), why)
	if !r.live() {
		return aws.LookupRecordResult{Found: true, Type: "CNAME", Values: []string{ph(p.Name, "value")}, TTL: 60}, nil
	}
	return r.c.LookupRecord(ctx, p)
}

// logFiles lists an instance's log files; offline, one placeholder file.
func (r *awsReads) logFiles(ctx context.Context, p aws.ListLogFilesParams, why string) ([]aws.LogFile, error) {
	r.show(p.Plan(), why)
	if !r.live() {
		return []aws.LogFile{{Name: "<each file, oldest first, until the line is found>"}}, nil
	}
	return r.c.ListLogFiles(ctx, p)
}

// waitAction is the plan's line of a wait: the describe it repeats.
func waitAction(calls []aws.PlannedCall, e *Env, until string) Action {
	return Action{Target: AWSTarget, Kind: "api", Text: calls[0].String() + "  -- every " + e.Config.AWS.PollInterval.String() + " until " + until}
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

// plannedNote is planned with a note on its first line.
func plannedNote(calls []aws.PlannedCall, why string) []Action {
	out := planned(calls)
	if len(out) > 0 && why != "" {
		out[0].Text += "  -- " + why
	}
	return out
}

// isPlaceholder reports whether a value is an offline placeholder.
func isPlaceholder(v string) bool { return strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">") }
