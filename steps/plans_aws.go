package steps

import (
	"fmt"
	"strings"
)

// The plans of the AWS steps: what each will call, with
// its parameters, so a team can read the whole run before any of it happens.

func api(format string, args ...any) Action {
	return Action{Target: AWSTarget, Kind: "api", Text: fmt.Sprintf(format, args...)}
}

func awsPlanLogicalReplication(e *Env) []Action {
	a := e.Config.AWS
	params := "rds.logical_replication=1, max_replication_slots=25, max_wal_senders=25, max_logical_replication_workers=25, max_worker_processes=50 (ApplyMethod=pending-reboot)"
	if e.Config.Strategy == "aurora-clone" {
		return []Action{
			api("rds DescribeDBClusters DBClusterIdentifier=%s", orPlaceholder(a.BlueCluster, "aws.blue_cluster")),
			api("rds DescribeDBClusterParameters DBClusterParameterGroupName=%s", orPlaceholder(a.BlueParameterGroup, "blue's cluster parameter group")),
			api("rds ModifyDBClusterParameterGroup DBClusterParameterGroupName=%s Parameters: %s", orPlaceholder(a.BlueParameterGroup, "blue's cluster parameter group"), params),
			api("rds RebootDBInstance DBInstanceIdentifier=<blue's writer>  (confirmation required), then wait for available"),
		}
	}
	return []Action{
		api("rds DescribeDBParameters DBParameterGroupName=%s", orPlaceholder(a.BlueParameterGroup, "blue's parameter group")),
		api("rds ModifyDBParameterGroup DBParameterGroupName=%s Parameters: %s", orPlaceholder(a.BlueParameterGroup, "blue's parameter group"), params),
		api("rds RebootDBInstance DBInstanceIdentifier=%s  (confirmation required), then wait for available", orPlaceholder(a.BlueInstance, "aws.blue_instance")),
	}
}

func awsPlanCloneCluster(e *Env) []Action {
	a := e.Config.AWS
	return []Action{
		api("rds DescribeDBClusters DBClusterIdentifier=%s  (an existing clone is found, not created twice)", orPlaceholder(a.GreenCluster, "aws.green_cluster")),
		api("rds RestoreDBClusterToPointInTime SourceDBClusterIdentifier=%s DBClusterIdentifier=%s RestoreType=copy-on-write UseLatestRestorableTime=true DBSubnetGroupName=%s VpcSecurityGroupIds=%s DeletionProtection=%t EnableCloudwatchLogsExports=postgresql",
			orPlaceholder(a.BlueCluster, "aws.blue_cluster"), orPlaceholder(a.GreenCluster, "aws.green_cluster"),
			orPlaceholder(a.SubnetGroup, "blue's subnet group"), orPlaceholder(strings.Join(a.SecurityGroups, ","), "blue's security groups"), a.DeletionProtection),
		api("rds CreateDBInstance DBClusterIdentifier=%s DBInstanceIdentifier=%s-writer DBInstanceClass=%s Engine=aurora-postgresql",
			orPlaceholder(a.GreenCluster, "aws.green_cluster"), orPlaceholder(a.GreenCluster, "aws.green_cluster"), orPlaceholder(a.GreenInstanceClass, "blue's writer class")),
		api("rds DescribeDBClusters / DescribeDBInstances until available; recorded: green_endpoint = %s", e.V("green_endpoint")),
	}
}

func awsPlanSnapshot(e *Env) []Action {
	a := e.Config.AWS
	return []Action{
		api("rds CreateDBSnapshot DBInstanceIdentifier=%s DBSnapshotIdentifier=%s", orPlaceholder(a.BlueInstance, "aws.blue_instance"), orPlaceholder(a.Snapshot, "aws.snapshot")),
		api("rds DescribeDBSnapshots until available; recorded: snapshot_id = %s", e.V("snapshot_id")),
	}
}

func awsPlanUpgradeSnapshot(e *Env) []Action {
	return []Action{
		api("rds ModifyDBSnapshot DBSnapshotIdentifier=%s EngineVersion=%s", e.V("snapshot_id"), orPlaceholder(e.Config.AWS.EngineVersion, "aws.engine_version")),
		api("rds DescribeDBSnapshots until the engine version is %s and the status available", orPlaceholder(e.Config.AWS.EngineVersion, "aws.engine_version")),
	}
}

func awsPlanRestore(e *Env) []Action {
	a := e.Config.AWS
	return []Action{
		api("rds RestoreDBInstanceFromDBSnapshot DBSnapshotIdentifier=%s DBInstanceIdentifier=%s DBInstanceClass=%s DBParameterGroupName=%s DBSubnetGroupName=%s VpcSecurityGroupIds=%s MultiAZ=%t EnableIAMDatabaseAuthentication=true PubliclyAccessible=false",
			e.V("snapshot_id"), orPlaceholder(a.GreenInstance, "aws.green_instance"), orPlaceholder(a.GreenInstanceClass, "blue's class"),
			orPlaceholder(a.InstanceParameterGroup, "aws.instance_parameter_group"), orPlaceholder(a.SubnetGroup, "blue's subnet group"),
			orPlaceholder(strings.Join(a.SecurityGroups, ","), "blue's security groups"), a.MultiAZ),
		api("rds DescribeDBInstances until available; recorded: green_endpoint = %s, restore_time = %s", e.V("green_endpoint"), e.V("restore_time")),
	}
}

func awsPlanUpgradeGreen(e *Env) []Action {
	a := e.Config.AWS
	return []Action{
		sql(Green, "SELECT count(*) FROM pg_replication_slots WHERE slot_type = 'logical'  -- must be 0"),
		api("rds ModifyDBCluster DBClusterIdentifier=%s EngineVersion=%s AllowMajorVersionUpgrade=true DBClusterParameterGroupName=%s DBInstanceParameterGroupName=%s ApplyImmediately=true",
			orPlaceholder(a.GreenCluster, "aws.green_cluster"), orPlaceholder(a.EngineVersion, "aws.engine_version"),
			orPlaceholder(a.ClusterParameterGroup, "aws.cluster_parameter_group"), orPlaceholder(a.InstanceParameterGroup, "aws.instance_parameter_group")),
		api("rds DescribeDBClusters until available on %s (about 30 min at 30 TB in 002)", orPlaceholder(a.EngineVersion, "aws.engine_version")),
	}
}
