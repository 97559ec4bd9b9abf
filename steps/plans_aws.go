package steps

import (
	"fmt"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

// The plans of the AWS steps: what each will call, with its parameters, so
// a team can read the whole run before any of it happens. Every mutating
// call is rendered by the aws package's own Plan(), from the same Params
// the step's Run sends: plan and journal cannot drift apart. Reads and
// waits are listed in between, as they happen.

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

// awsSeedPlan is green-start-lsn's first line for the AWS strategies.
func awsSeedPlan(e *Env) []Action {
	if e.Config.Strategy == "aurora-clone" {
		return []Action{
			sql(BlueGreen, "SELECT current_setting('server_version_num')  -- refused unless green's major is blue's: after upgrade-green the function no longer tells where the clone started"),
			sql(Green, "%s  -- the clone's start point, read before the upgrade", auroraStartLSNQuery),
		}
	}
	g := e.Config.AWS.GreenInstance
	return []Action{
		api("rds DescribeDBLogFiles DBInstanceIdentifier=%s FileLastWritten=<restore_time %s>  -- every page, oldest first", g, e.V("restore_time")),
		api("rds DownloadDBLogFilePortion DBInstanceIdentifier=%s LogFileName=<each> Marker=0, then each Marker while AdditionalDataPending  -- stops at the first `redo done at X/Y`", g),
		note(AWSTarget, "seed = X/Y + 1 byte, computed in Go; recorded: green_redo_done = %s", e.V("green_redo_done")),
	}
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

func switchTrafficPlan(e *Env) []Action {
	if !e.Config.AWS.Switch.configured() {
		return []Action{{Target: Operator, Kind: "operator", Text: "no aws.switch configured: switch the application's traffic to green yourself (DNS record, secret, configuration), then skip this step with the reason"}}
	}
	host := e.greenHost()
	if _, ok := e.Value("green_endpoint"); !ok && e.Config.isAWS() {
		host = "<green_endpoint>"
	}
	p := e.trafficCalls("", host)
	var out []Action
	if p.secret != nil {
		out = append(out, note(AWSTarget, "the secret's new value comes from %s; it is never shown or journaled", e.Config.AWS.Switch.SecretValueFrom))
		out = append(out, planned(p.secret.Plan())...)
	}
	if p.param != nil {
		out = append(out, planned(p.param.Plan())...)
	}
	for _, d := range p.deletes {
		out = append(out, planned(d.Plan())...)
	}
	if p.cname != nil {
		out = append(out, planned(p.cname.Plan())...)
		out = append(out, api("route53 GetChange Id=<the change>  -- every %s until INSYNC", e.Config.AWS.PollInterval))
	}
	return append(out, note(AWSTarget, "the check reads each back (secret, parameters, record): done when all point at green"))
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
