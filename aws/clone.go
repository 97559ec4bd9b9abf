package aws

import (
	"context"
	"errors"
	"strconv"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
)

// RestoreCloneParams describe an Aurora copy-on-write clone of blue's
// cluster, every value resolved: what the config leaves out is read from
// blue by the caller first, so the plan shows what is sent.
type RestoreCloneParams struct {
	// SourceClusterID is blue's cluster.
	SourceClusterID string
	// ClusterID is the clone's (green's) cluster identifier.
	ClusterID             string
	SubnetGroup           string
	SecurityGroupIDs      []string
	ClusterParameterGroup string
	DeletionProtection    bool
}

// Plan is the call RestoreClone makes.
func (p RestoreCloneParams) Plan() []PlannedCall {
	c := call("rds RestoreDBClusterToPointInTime", "DBClusterIdentifier", p.ClusterID,
		"SourceDBClusterIdentifier", p.SourceClusterID, "RestoreType", "copy-on-write", "UseLatestRestorableTime", "true",
		"DBSubnetGroupName", p.SubnetGroup, "VpcSecurityGroupIds", strings.Join(p.SecurityGroupIDs, ","),
		"DeletionProtection", boolText(p.DeletionProtection), "EnableCloudwatchLogsExports", "postgresql",
		"DBClusterParameterGroupName", p.ClusterParameterGroup)
	return one(c)
}

// RestoreClone makes green's cluster as an Aurora clone of blue (rds
// RestoreDBClusterToPointInTime, RestoreType=copy-on-write, the latest
// restorable time, PostgreSQL log export on: green's log may be read for
// the seed). The cluster has no instance yet: add its writer with
// CreateClusterInstance once WaitClusterAvailable returns, RDS refuses
// instances in a cluster that is not available.
func (c *Client) RestoreClone(ctx context.Context, p RestoreCloneParams) (Cluster, error) {
	if p.SourceClusterID == "" || p.ClusterID == "" {
		return Cluster{}, errors.New("clone cluster: the source and the target cluster identifiers are both required")
	}
	if p.SourceClusterID == p.ClusterID {
		return Cluster{}, errors.New("clone cluster: green's cluster identifier must differ from blue's (" + p.ClusterID + ")")
	}
	in := &rds.RestoreDBClusterToPointInTimeInput{
		DBClusterIdentifier:         sdkaws.String(p.ClusterID),
		SourceDBClusterIdentifier:   sdkaws.String(p.SourceClusterID),
		RestoreType:                 sdkaws.String("copy-on-write"),
		UseLatestRestorableTime:     sdkaws.Bool(true),
		DBSubnetGroupName:           sdkaws.String(p.SubnetGroup),
		VpcSecurityGroupIds:         p.SecurityGroupIDs,
		DeletionProtection:          sdkaws.Bool(p.DeletionProtection),
		EnableCloudwatchLogsExports: []string{"postgresql"},
		DBClusterParameterGroupName: sdkaws.String(p.ClusterParameterGroup),
	}
	var out *rds.RestoreDBClusterToPointInTimeOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.rds.RestoreDBClusterToPointInTime(ctx, in)
		return err
	})
	if err != nil || out.DBCluster == nil {
		return Cluster{}, err
	}
	return clusterFrom(*out.DBCluster), nil
}

// CreateClusterInstanceParams describe one instance to add to an Aurora
// cluster: the clone's writer, or a reader. It is never publicly accessible.
type CreateClusterInstanceParams struct {
	ClusterID  string
	InstanceID string
	Class      string
	Engine     string
	// ParameterGroup is the DB parameter group, "" for the engine default.
	ParameterGroup string
	// PromotionTier orders failover among readers; nil leaves RDS's default.
	PromotionTier *int32
}

// Plan is the call CreateClusterInstance makes.
func (p CreateClusterInstanceParams) Plan() []PlannedCall {
	c := call("rds CreateDBInstance", "DBClusterIdentifier", p.ClusterID, "DBInstanceIdentifier", p.InstanceID,
		"DBInstanceClass", p.Class, "Engine", p.Engine)
	c.addIf("DBParameterGroupName", p.ParameterGroup)
	if p.PromotionTier != nil {
		c.add("PromotionTier", strconv.Itoa(int(*p.PromotionTier)))
	}
	c.add("PubliclyAccessible", "false")
	return one(c)
}

// CreateClusterInstance adds an instance to a cluster (rds CreateDBInstance
// with DBClusterIdentifier). The caller looks first (FindInstance): this
// sends the call, nothing else. Wait with WaitInstanceAvailable.
func (c *Client) CreateClusterInstance(ctx context.Context, p CreateClusterInstanceParams) (Instance, error) {
	if p.ClusterID == "" || p.InstanceID == "" || p.Class == "" || p.Engine == "" {
		return Instance{}, errors.New("create cluster instance: cluster, instance identifier, instance class and engine are all required")
	}
	in := &rds.CreateDBInstanceInput{
		DBClusterIdentifier:  sdkaws.String(p.ClusterID),
		DBInstanceIdentifier: sdkaws.String(p.InstanceID),
		DBInstanceClass:      sdkaws.String(p.Class),
		Engine:               sdkaws.String(p.Engine),
		PromotionTier:        p.PromotionTier,
		PubliclyAccessible:   sdkaws.Bool(false),
	}
	if p.ParameterGroup != "" {
		in.DBParameterGroupName = sdkaws.String(p.ParameterGroup)
	}
	var out *rds.CreateDBInstanceOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.rds.CreateDBInstance(ctx, in)
		return err
	})
	if err != nil || out.DBInstance == nil {
		return Instance{}, err
	}
	return instanceFrom(*out.DBInstance), nil
}

// UpgradeClusterParams describe green's in-place major version upgrade.
type UpgradeClusterParams struct {
	ClusterID     string
	EngineVersion string // target, e.g. "16.4"
	// ClusterParameterGroup and InstanceParameterGroup must be groups of the
	// target version's family; RDS refuses the upgrade otherwise.
	ClusterParameterGroup  string
	InstanceParameterGroup string
}

// Plan is the call UpgradeCluster makes.
func (p UpgradeClusterParams) Plan() []PlannedCall {
	c := call("rds ModifyDBCluster", "DBClusterIdentifier", p.ClusterID, "EngineVersion", p.EngineVersion,
		"AllowMajorVersionUpgrade", "true", "ApplyImmediately", "true")
	c.addIf("DBClusterParameterGroupName", p.ClusterParameterGroup)
	c.addIf("DBInstanceParameterGroupName", p.InstanceParameterGroup)
	return one(c)
}

// UpgradeCluster starts the major version upgrade of a cluster (rds
// ModifyDBCluster with EngineVersion, AllowMajorVersionUpgrade, both parameter
// groups, ApplyImmediately) and returns the cluster as the call left it
// ("upgrading"). Wait with WaitClusterAvailable, EngineVersion and Started
// set: Aurora's precheck can still refuse the upgrade after the call.
func (c *Client) UpgradeCluster(ctx context.Context, p UpgradeClusterParams) (Cluster, error) {
	if p.ClusterID == "" || p.EngineVersion == "" {
		return Cluster{}, errors.New("upgrade cluster: the cluster identifier and the target engine version are both required")
	}
	in := &rds.ModifyDBClusterInput{
		DBClusterIdentifier:      sdkaws.String(p.ClusterID),
		EngineVersion:            sdkaws.String(p.EngineVersion),
		AllowMajorVersionUpgrade: sdkaws.Bool(true),
		ApplyImmediately:         sdkaws.Bool(true),
	}
	if p.ClusterParameterGroup != "" {
		in.DBClusterParameterGroupName = sdkaws.String(p.ClusterParameterGroup)
	}
	if p.InstanceParameterGroup != "" {
		in.DBInstanceParameterGroupName = sdkaws.String(p.InstanceParameterGroup)
	}
	var out *rds.ModifyDBClusterOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.rds.ModifyDBCluster(ctx, in)
		return err
	})
	if err != nil || out.DBCluster == nil {
		return Cluster{}, err
	}
	return clusterFrom(*out.DBCluster), nil
}

// EngineVersion is one engine version as RDS describes it.
type EngineVersion struct {
	Engine  string
	Version string
	// Family is the parameter group family of the version.
	Family string
	// UpgradeTargets are the versions it can be upgraded to in place.
	UpgradeTargets []UpgradeTarget
}

// UpgradeTarget is one valid upgrade of an engine version.
type UpgradeTarget struct {
	Version string
	Major   bool
}

// Targets lists the versions of the upgrade targets, for a message.
func (v EngineVersion) Targets() string {
	out := make([]string, len(v.UpgradeTargets))
	for i, t := range v.UpgradeTargets {
		out[i] = t.Version
	}
	return strings.Join(out, ", ")
}

// CanUpgradeTo reports whether version is a valid upgrade target.
func (v EngineVersion) CanUpgradeTo(version string) bool {
	for _, t := range v.UpgradeTargets {
		if t.Version == version {
			return true
		}
	}
	return false
}

// EngineVersionParams name an engine version.
type EngineVersionParams struct {
	Engine  string // "aurora-postgresql", "postgres"
	Version string
}

// Plan is the call DescribeEngineVersion makes.
func (p EngineVersionParams) Plan() []PlannedCall {
	return one(call("rds DescribeDBEngineVersions", "Engine", p.Engine, "EngineVersion", p.Version))
}

// DescribeEngineVersion reads one engine version and its valid upgrade
// targets (rds DescribeDBEngineVersions): the check that the target of an
// upgrade is one RDS accepts, made before anything is changed. An unknown
// version is found=false.
func (c *Client) DescribeEngineVersion(ctx context.Context, p EngineVersionParams) (EngineVersion, bool, error) {
	var out *rds.DescribeDBEngineVersionsOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.rds.DescribeDBEngineVersions(ctx, &rds.DescribeDBEngineVersionsInput{
			Engine: sdkaws.String(p.Engine), EngineVersion: sdkaws.String(p.Version)})
		return err
	})
	if err != nil || len(out.DBEngineVersions) == 0 {
		return EngineVersion{}, false, err
	}
	d := out.DBEngineVersions[0]
	v := EngineVersion{Engine: sdkaws.ToString(d.Engine), Version: sdkaws.ToString(d.EngineVersion), Family: sdkaws.ToString(d.DBParameterGroupFamily)}
	for _, t := range d.ValidUpgradeTarget {
		v.UpgradeTargets = append(v.UpgradeTargets, UpgradeTarget{Version: sdkaws.ToString(t.EngineVersion), Major: sdkaws.ToBool(t.IsMajorVersionUpgrade)})
	}
	return v, true, nil
}

// Family is the parameter group family of an engine at a version:
// "aurora-postgresql" and "15.4" make "aurora-postgresql15".
func Family(engine, version string) string {
	major, _, _ := strings.Cut(version, ".")
	return engine + major
}
