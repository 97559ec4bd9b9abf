package aws

import (
	"strconv"
	"strings"
)

// PlannedCall is one API call an operation makes, with its parameters in a
// readable order: what a step's plan and --dry-run show. The same builder
// makes the plan and the journal entry of the real call, so they cannot
// drift apart.
type PlannedCall struct {
	// Call is the service and operation, e.g. "rds CreateDBSnapshot".
	Call   string
	Params []Param
}

// Param is one parameter of a PlannedCall.
type Param struct {
	Key, Value string
	// Secret values are shown as "(secret)" and never journaled.
	Secret bool
}

// Placeholder values in plans, for what is only known once blue is read.
const (
	FromBlue    = "(blue's)"
	FromCluster = "(the cluster's)"
)

// String renders the call on one line: `rds CreateDBSnapshot
// DBInstanceIdentifier=blue DBSnapshotIdentifier=green-snap`.
func (c PlannedCall) String() string {
	var b strings.Builder
	b.WriteString(c.Call)
	for _, p := range c.Params {
		v := p.Value
		if p.Secret {
			v = "(secret)"
		}
		b.WriteString(" " + p.Key + "=" + v)
	}
	return b.String()
}

// journal returns the parameters for the Journal hook: secrets left out.
func (c PlannedCall) journal() map[string]string {
	m := make(map[string]string, len(c.Params))
	for _, p := range c.Params {
		if !p.Secret {
			m[p.Key] = p.Value
		}
	}
	return m
}

func (c *PlannedCall) add(key, value string) {
	c.Params = append(c.Params, Param{Key: key, Value: value})
}

// addIf adds a parameter only when it has a value (optional parameters).
func (c *PlannedCall) addIf(key, value string) {
	if value != "" {
		c.add(key, value)
	}
}

func joinSettings(s []Setting) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = x.Name + "=" + x.Value
	}
	return strings.Join(parts, ",")
}

func setParametersCall(group string, cluster bool, chunk []Setting) PlannedCall {
	if cluster {
		c := PlannedCall{Call: "rds ModifyDBClusterParameterGroup"}
		c.add("DBClusterParameterGroupName", group)
		c.add("Parameters", joinSettings(chunk))
		c.add("ApplyMethod", "pending-reboot")
		return c
	}
	c := PlannedCall{Call: "rds ModifyDBParameterGroup"}
	c.add("DBParameterGroupName", group)
	c.add("Parameters", joinSettings(chunk))
	c.add("ApplyMethod", "pending-reboot")
	return c
}

// Plan lists the calls SetParameters makes (one per 20 parameters).
func (p SetParametersParams) Plan() []PlannedCall {
	var out []PlannedCall
	for start := 0; start < len(p.Settings); start += maxParametersPerModify {
		out = append(out, setParametersCall(p.Group, p.Cluster, p.Settings[start:min(start+maxParametersPerModify, len(p.Settings))]))
	}
	return out
}

func rebootCall(id string) PlannedCall {
	c := PlannedCall{Call: "rds RebootDBInstance"}
	c.add("DBInstanceIdentifier", id)
	return c
}

// Plan lists the call RebootInstance makes.
func (p RebootParams) Plan() []PlannedCall { return []PlannedCall{rebootCall(p.InstanceID)} }

func restoreClusterCall(p CloneClusterParams, subnet, sgs, clusterPG string) PlannedCall {
	c := PlannedCall{Call: "rds RestoreDBClusterToPointInTime"}
	c.add("DBClusterIdentifier", p.ClusterID)
	c.add("SourceDBClusterIdentifier", p.SourceClusterID)
	c.add("RestoreType", "copy-on-write")
	c.add("UseLatestRestorableTime", "true")
	c.add("DBSubnetGroupName", subnet)
	c.add("VpcSecurityGroupIds", sgs)
	c.add("DeletionProtection", strconv.FormatBool(!p.DisableDeletionProtection))
	c.add("EnableCloudwatchLogsExports", "postgresql")
	c.add("DBClusterParameterGroupName", clusterPG)
	return c
}

// Plan lists the calls CloneCluster makes when neither the clone nor its
// writer exists yet; defaults taken from blue show as FromBlue.
func (p CloneClusterParams) Plan() []PlannedCall {
	sgs := strings.Join(p.SecurityGroupIDs, ",")
	if sgs == "" {
		sgs = FromBlue
	}
	restore := restoreClusterCall(p, or(p.SubnetGroup, FromBlue), sgs, or(p.ClusterParameterGroup, FromBlue))
	writer := CreateClusterInstanceParams{
		ClusterID: p.ClusterID, InstanceID: or(p.WriterInstanceID, p.ClusterID+"-writer"),
		Class: or(p.WriterClass, "(blue writer's)"), Engine: FromBlue, ParameterGroup: p.InstanceParameterGroup,
	}
	return []PlannedCall{restore, createInstanceCall(writer)}
}

func createInstanceCall(p CreateClusterInstanceParams) PlannedCall {
	c := PlannedCall{Call: "rds CreateDBInstance"}
	c.add("DBClusterIdentifier", p.ClusterID)
	c.add("DBInstanceIdentifier", p.InstanceID)
	c.add("DBInstanceClass", p.Class)
	c.add("Engine", p.Engine)
	c.addIf("DBParameterGroupName", p.ParameterGroup)
	if p.PromotionTier != nil {
		c.add("PromotionTier", strconv.Itoa(int(*p.PromotionTier)))
	}
	return c
}

// Plan lists the call CreateClusterInstance makes if the instance is new.
func (p CreateClusterInstanceParams) Plan() []PlannedCall {
	p.Engine = or(p.Engine, FromCluster)
	return []PlannedCall{createInstanceCall(p)}
}

func modifyClusterCall(p UpgradeClusterParams) PlannedCall {
	c := PlannedCall{Call: "rds ModifyDBCluster"}
	c.add("DBClusterIdentifier", p.ClusterID)
	c.add("EngineVersion", p.EngineVersion)
	c.add("AllowMajorVersionUpgrade", "true")
	c.add("ApplyImmediately", "true")
	c.addIf("DBClusterParameterGroupName", p.ClusterParameterGroup)
	c.addIf("DBInstanceParameterGroupName", p.InstanceParameterGroup)
	return c
}

// Plan lists the call UpgradeCluster makes unless already at the version.
func (p UpgradeClusterParams) Plan() []PlannedCall { return []PlannedCall{modifyClusterCall(p)} }

func createSnapshotCall(p CreateSnapshotParams) PlannedCall {
	c := PlannedCall{Call: "rds CreateDBSnapshot"}
	c.add("DBInstanceIdentifier", p.InstanceID)
	c.add("DBSnapshotIdentifier", p.SnapshotID)
	return c
}

// Plan lists the call CreateSnapshot makes if the snapshot is new.
func (p CreateSnapshotParams) Plan() []PlannedCall { return []PlannedCall{createSnapshotCall(p)} }

func modifySnapshotCall(p UpgradeSnapshotParams) PlannedCall {
	c := PlannedCall{Call: "rds ModifyDBSnapshot"}
	c.add("DBSnapshotIdentifier", p.SnapshotID)
	c.add("EngineVersion", p.EngineVersion)
	return c
}

// Plan lists the call UpgradeSnapshot makes unless already at the version.
func (p UpgradeSnapshotParams) Plan() []PlannedCall { return []PlannedCall{modifySnapshotCall(p)} }

func restoreInstanceCall(p RestoreInstanceParams) PlannedCall {
	c := PlannedCall{Call: "rds RestoreDBInstanceFromDBSnapshot"}
	c.add("DBSnapshotIdentifier", p.SnapshotID)
	c.add("DBInstanceIdentifier", p.InstanceID)
	c.addIf("DBInstanceClass", p.Class)
	c.addIf("DBParameterGroupName", p.ParameterGroup)
	c.addIf("DBSubnetGroupName", p.SubnetGroup)
	c.addIf("VpcSecurityGroupIds", strings.Join(p.SecurityGroupIDs, ","))
	c.add("MultiAZ", strconv.FormatBool(p.MultiAZ))
	c.add("EnableIAMDatabaseAuthentication", strconv.FormatBool(p.IAMAuth))
	c.add("PubliclyAccessible", "false")
	c.add("EnableCloudwatchLogsExports", "postgresql")
	return c
}

// Plan lists the call RestoreInstanceFromSnapshot makes if green is new.
func (p RestoreInstanceParams) Plan() []PlannedCall { return []PlannedCall{restoreInstanceCall(p)} }

func createClusterSnapshotCall(p CreateClusterSnapshotParams) PlannedCall {
	c := PlannedCall{Call: "rds CreateDBClusterSnapshot"}
	c.add("DBClusterIdentifier", p.ClusterID)
	c.add("DBClusterSnapshotIdentifier", p.SnapshotID)
	return c
}

// Plan lists the call CreateClusterSnapshot makes if the snapshot is new.
func (p CreateClusterSnapshotParams) Plan() []PlannedCall {
	return []PlannedCall{createClusterSnapshotCall(p)}
}

func deleteMemberCall(clusterID, instanceID string) PlannedCall {
	c := PlannedCall{Call: "rds DeleteDBInstance"}
	c.add("DBInstanceIdentifier", instanceID)
	c.add("DBClusterIdentifier", clusterID)
	return c
}

func deleteClusterCall(p DeleteClusterParams) PlannedCall {
	c := PlannedCall{Call: "rds DeleteDBCluster"}
	c.add("DBClusterIdentifier", p.ClusterID)
	c.add("SkipFinalSnapshot", "false")
	c.add("FinalDBSnapshotIdentifier", p.FinalSnapshotID)
	return c
}

// Plan lists the calls DeleteCluster makes; its members are only known once
// the cluster is read, so they show as one placeholder call.
func (p DeleteClusterParams) Plan() []PlannedCall {
	return []PlannedCall{deleteMemberCall(p.ClusterID, "(each member)"), deleteClusterCall(p)}
}

func deleteInstanceCall(p DeleteInstanceParams) PlannedCall {
	c := PlannedCall{Call: "rds DeleteDBInstance"}
	c.add("DBInstanceIdentifier", p.InstanceID)
	c.add("SkipFinalSnapshot", "false")
	c.add("FinalDBSnapshotIdentifier", p.FinalSnapshotID)
	return c
}

// Plan lists the call DeleteInstance makes.
func (p DeleteInstanceParams) Plan() []PlannedCall { return []PlannedCall{deleteInstanceCall(p)} }

func putSecretCall(p PutSecretParams) PlannedCall {
	c := PlannedCall{Call: "secretsmanager PutSecretValue"}
	c.add("SecretId", p.SecretID)
	c.Params = append(c.Params, Param{Key: "SecretString", Value: p.Value, Secret: true})
	return c
}

// Plan lists the call PutSecret makes, the value shown as "(secret)".
func (p PutSecretParams) Plan() []PlannedCall { return []PlannedCall{putSecretCall(p)} }

func putParameterCall(p PutParameterParams) PlannedCall {
	c := PlannedCall{Call: "ssm PutParameter"}
	typ := or(p.Type, "String")
	c.add("Name", p.Name)
	c.Params = append(c.Params, Param{Key: "Value", Value: p.Value, Secret: typ == "SecureString"})
	c.add("Type", typ)
	c.add("Overwrite", "true")
	return c
}

// Plan lists the call PutParameter makes; a SecureString's value is hidden.
func (p PutParameterParams) Plan() []PlannedCall { return []PlannedCall{putParameterCall(p)} }

func deleteParameterCall(p DeleteParameterParams) PlannedCall {
	c := PlannedCall{Call: "ssm DeleteParameter"}
	c.add("Name", p.Name)
	return c
}

// Plan lists the call DeleteParameter makes.
func (p DeleteParameterParams) Plan() []PlannedCall { return []PlannedCall{deleteParameterCall(p)} }

func upsertCNAMECall(p UpsertCNAMEParams) PlannedCall {
	c := PlannedCall{Call: "route53 ChangeResourceRecordSets"}
	c.add("HostedZoneId", p.HostedZoneID)
	c.add("Action", "UPSERT")
	c.add("Name", p.Name)
	c.add("Type", "CNAME")
	c.add("TTL", strconv.FormatInt(cnameTTL(p.TTL), 10))
	c.add("Value", p.Target)
	c.addIf("Comment", p.Comment)
	return c
}

// Plan lists the call UpsertCNAME makes (then GetChange until INSYNC).
func (p UpsertCNAMEParams) Plan() []PlannedCall { return []PlannedCall{upsertCNAMECall(p)} }

// cnameTTL is the TTL used: 60 s unless set, Route 53's usual for
// records that must move quickly.
func cnameTTL(ttl int64) int64 {
	if ttl <= 0 {
		return 60
	}
	return ttl
}
