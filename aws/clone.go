package aws

import (
	"context"
	"errors"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
)

// CloneClusterParams describe an Aurora copy-on-write clone of blue's cluster.
// Empty fields are copied from blue, so a clone sits in blue's network with
// blue's settings unless the config says otherwise.
type CloneClusterParams struct {
	// SourceClusterID is blue's cluster.
	SourceClusterID string
	// ClusterID is the clone's (green's) cluster identifier.
	ClusterID string
	// WriterInstanceID is the identifier of the writer instance created in
	// the clone. Default: ClusterID + "-writer".
	WriterInstanceID string
	// WriterClass is the writer's instance class. Default: blue writer's.
	WriterClass string
	// SubnetGroup is the DB subnet group. Default: blue's.
	SubnetGroup string
	// SecurityGroupIDs are the VPC security groups. Default: blue's.
	SecurityGroupIDs []string
	// ClusterParameterGroup is the DB cluster parameter group. Default: blue's
	// (which has logical replication on).
	ClusterParameterGroup string
	// InstanceParameterGroup is the writer's DB parameter group. Default: the
	// engine's default group, as RDS picks it.
	InstanceParameterGroup string
	// DisableDeletionProtection turns off the deletion protection that a
	// clone gets by default.
	DisableDeletionProtection bool
}

// CloneClusterResult is the clone as it stands after the calls (usually still
// "creating": wait with WaitClusterAvailable and WaitInstanceAvailable).
type CloneClusterResult struct {
	Cluster Cluster
	Writer  Instance
	// CreatedCluster and CreatedWriter say whether this call created them
	// (false: they existed already and were left alone).
	CreatedCluster bool
	CreatedWriter  bool
}

// CloneCluster makes green as an Aurora clone of blue: rds
// RestoreDBClusterToPointInTime with RestoreType=copy-on-write and the latest
// restorable time, PostgreSQL log export on (green's log is read later), then
// CreateDBInstance for the writer. It is idempotent: an existing cluster or
// writer with the target identifier is found, not created again, so a run
// interrupted between the two calls resumes where it stopped.
func (c *Client) CloneCluster(ctx context.Context, p CloneClusterParams) (CloneClusterResult, error) {
	if p.SourceClusterID == "" || p.ClusterID == "" {
		return CloneClusterResult{}, errors.New("clone cluster: the source and the target cluster identifiers are both required")
	}
	if p.SourceClusterID == p.ClusterID {
		return CloneClusterResult{}, errors.New("clone cluster: green's cluster identifier must differ from blue's (" + p.ClusterID + ")")
	}
	if p.WriterInstanceID == "" {
		p.WriterInstanceID = p.ClusterID + "-writer"
	}
	var res CloneClusterResult
	green, found, err := c.FindCluster(ctx, DescribeClusterParams{ClusterID: p.ClusterID})
	if err != nil {
		return res, err
	}
	var blue Cluster
	needBlue := !found || p.WriterClass == ""
	if needBlue {
		if blue, err = c.DescribeCluster(ctx, DescribeClusterParams{ClusterID: p.SourceClusterID}); err != nil {
			return res, err
		}
	}
	if !found {
		in := &rds.RestoreDBClusterToPointInTimeInput{
			DBClusterIdentifier:         sdkaws.String(p.ClusterID),
			SourceDBClusterIdentifier:   sdkaws.String(p.SourceClusterID),
			RestoreType:                 sdkaws.String("copy-on-write"),
			UseLatestRestorableTime:     sdkaws.Bool(true),
			DBSubnetGroupName:           sdkaws.String(or(p.SubnetGroup, blue.SubnetGroup)),
			VpcSecurityGroupIds:         p.SecurityGroupIDs,
			DeletionProtection:          sdkaws.Bool(!p.DisableDeletionProtection),
			EnableCloudwatchLogsExports: []string{"postgresql"},
			DBClusterParameterGroupName: sdkaws.String(or(p.ClusterParameterGroup, blue.ParameterGroup)),
		}
		if len(in.VpcSecurityGroupIds) == 0 {
			in.VpcSecurityGroupIds = blue.SecurityGroupIDs
		}
		pc := restoreClusterCall(p, sdkaws.ToString(in.DBSubnetGroupName), strings.Join(in.VpcSecurityGroupIds, ","), sdkaws.ToString(in.DBClusterParameterGroupName))
		var out *rds.RestoreDBClusterToPointInTimeOutput
		err := c.do(ctx, pc, func(ctx context.Context) error {
			var err error
			out, err = c.rds.RestoreDBClusterToPointInTime(ctx, in)
			return err
		})
		if err != nil {
			return res, err
		}
		if out.DBCluster != nil {
			green = clusterFrom(*out.DBCluster)
		}
		res.CreatedCluster = true
	}
	res.Cluster = green

	class := p.WriterClass
	if class == "" {
		w := blue.Writer()
		if w == "" {
			return res, errors.New("clone cluster: blue cluster " + p.SourceClusterID + " has no writer instance to copy the class from; set the writer class in the config")
		}
		bw, err := c.DescribeInstance(ctx, DescribeInstanceParams{InstanceID: w})
		if err != nil {
			return res, err
		}
		class = bw.Class
	}
	engine := green.Engine
	if engine == "" {
		engine = blue.Engine
	}
	wr, err := c.CreateClusterInstance(ctx, CreateClusterInstanceParams{
		ClusterID:      p.ClusterID,
		InstanceID:     p.WriterInstanceID,
		Class:          class,
		Engine:         engine,
		ParameterGroup: p.InstanceParameterGroup,
	})
	res.Writer, res.CreatedWriter = wr.Instance, wr.Created
	return res, err
}

// CreateClusterInstanceParams describe one instance to add to an Aurora
// cluster: the clone's writer, or a reader.
type CreateClusterInstanceParams struct {
	ClusterID  string
	InstanceID string
	Class      string
	// Engine defaults to the cluster's.
	Engine string
	// ParameterGroup is the DB parameter group, "" for the engine default.
	ParameterGroup string
	// PromotionTier orders failover among readers; nil leaves RDS's default.
	PromotionTier *int32
}

// CreateClusterInstanceResult is the instance and whether this call made it.
type CreateClusterInstanceResult struct {
	Instance Instance
	Created  bool
}

// CreateClusterInstance adds an instance to a cluster (rds CreateDBInstance
// with DBClusterIdentifier). An instance that exists already is returned as
// found, after checking it belongs to that cluster.
func (c *Client) CreateClusterInstance(ctx context.Context, p CreateClusterInstanceParams) (CreateClusterInstanceResult, error) {
	if p.ClusterID == "" || p.InstanceID == "" || p.Class == "" {
		return CreateClusterInstanceResult{}, errors.New("create cluster instance: cluster, instance identifier and instance class are all required")
	}
	existing, found, err := c.FindInstance(ctx, DescribeInstanceParams{InstanceID: p.InstanceID})
	if err != nil {
		return CreateClusterInstanceResult{}, err
	}
	if found {
		if existing.ClusterID != p.ClusterID {
			return CreateClusterInstanceResult{Instance: existing}, errors.New("create cluster instance: DB instance " + p.InstanceID + " exists already in cluster " + quoteOrNone(existing.ClusterID) + ", not in " + p.ClusterID + "; choose another instance identifier")
		}
		return CreateClusterInstanceResult{Instance: existing}, nil
	}
	if p.Engine == "" {
		cl, err := c.DescribeCluster(ctx, DescribeClusterParams{ClusterID: p.ClusterID})
		if err != nil {
			return CreateClusterInstanceResult{}, err
		}
		p.Engine = cl.Engine
	}
	in := &rds.CreateDBInstanceInput{
		DBClusterIdentifier:  sdkaws.String(p.ClusterID),
		DBInstanceIdentifier: sdkaws.String(p.InstanceID),
		DBInstanceClass:      sdkaws.String(p.Class),
		Engine:               sdkaws.String(p.Engine),
		PromotionTier:        p.PromotionTier,
	}
	if p.ParameterGroup != "" {
		in.DBParameterGroupName = sdkaws.String(p.ParameterGroup)
	}
	var out *rds.CreateDBInstanceOutput
	err = c.do(ctx, createInstanceCall(p), func(ctx context.Context) error {
		var err error
		out, err = c.rds.CreateDBInstance(ctx, in)
		return err
	})
	if err != nil {
		return CreateClusterInstanceResult{}, err
	}
	res := CreateClusterInstanceResult{Created: true}
	if out.DBInstance != nil {
		res.Instance = instanceFrom(*out.DBInstance)
	}
	return res, nil
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

// UpgradeClusterResult is the cluster after the call.
type UpgradeClusterResult struct {
	Cluster Cluster
	// AlreadyAtVersion is true when the cluster runs the target version
	// already, so nothing was sent.
	AlreadyAtVersion bool
}

// UpgradeCluster starts the major version upgrade of a cluster (rds
// ModifyDBCluster with EngineVersion, AllowMajorVersionUpgrade, both parameter
// groups, ApplyImmediately). Wait with WaitClusterAvailable and EngineVersion
// set. A cluster already at the version is left alone.
func (c *Client) UpgradeCluster(ctx context.Context, p UpgradeClusterParams) (UpgradeClusterResult, error) {
	if p.ClusterID == "" || p.EngineVersion == "" {
		return UpgradeClusterResult{}, errors.New("upgrade cluster: the cluster identifier and the target engine version are both required")
	}
	cl, err := c.DescribeCluster(ctx, DescribeClusterParams{ClusterID: p.ClusterID})
	if err != nil {
		return UpgradeClusterResult{}, err
	}
	if cl.EngineVersion == p.EngineVersion {
		return UpgradeClusterResult{Cluster: cl, AlreadyAtVersion: true}, nil
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
	err = c.do(ctx, modifyClusterCall(p), func(ctx context.Context) error {
		var err error
		out, err = c.rds.ModifyDBCluster(ctx, in)
		return err
	})
	if err != nil {
		return UpgradeClusterResult{}, err
	}
	if out.DBCluster != nil {
		cl = clusterFrom(*out.DBCluster)
	}
	return UpgradeClusterResult{Cluster: cl}, nil
}

// or returns a unless it is empty, else b.
func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func quoteOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
