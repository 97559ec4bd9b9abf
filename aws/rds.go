package aws

import (
	"context"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// Cluster is what pgbluegreen needs to know of an Aurora DB cluster.
type Cluster struct {
	ID             string
	ARN            string
	Status         string // "available", "creating", "upgrading", ...
	Engine         string // "aurora-postgresql"
	EngineVersion  string // "15.4"
	Endpoint       string // the writer (cluster) endpoint
	ReaderEndpoint string
	Port           int32
	// ParameterGroup is the DB cluster parameter group's name.
	ParameterGroup     string
	SubnetGroup        string
	SecurityGroupIDs   []string
	DeletionProtection bool
	LogExports         []string
	Members            []ClusterMember
	// Created is when the cluster was made: a clone's logs older than it
	// cannot hold its recovery.
	Created time.Time
}

// ClusterMember is one DB instance of a cluster.
type ClusterMember struct {
	InstanceID string
	Writer     bool
	// ParameterGroupStatus is "in-sync", "applying" or "pending-reboot"
	// once the cluster parameter group changed.
	ParameterGroupStatus string
}

// Writer returns the writer instance's ID, "" if the cluster has none yet.
func (c Cluster) Writer() string {
	for _, m := range c.Members {
		if m.Writer {
			return m.InstanceID
		}
	}
	return ""
}

// Member returns one member of the cluster.
func (c Cluster) Member(id string) (ClusterMember, bool) {
	for _, m := range c.Members {
		if m.InstanceID == id {
			return m, true
		}
	}
	return ClusterMember{}, false
}

// Instance is what pgbluegreen needs to know of a DB instance (an RDS
// instance, or an Aurora cluster's member).
type Instance struct {
	ID            string
	ARN           string
	ClusterID     string // "" for a plain RDS instance
	Status        string // "available", "creating", "rebooting", ...
	Class         string // "db.r6g.large"
	Engine        string
	EngineVersion string
	Endpoint      string // host name, "" while creating
	Port          int32
	// ParameterGroups are the instance's DB parameter groups and whether
	// their changes are applied ("in-sync"), being applied ("applying") or
	// wait for a reboot ("pending-reboot").
	ParameterGroups    []ParameterGroupStatus
	SubnetGroup        string
	SecurityGroupIDs   []string
	MultiAZ            bool
	PubliclyAccessible bool
	DeletionProtection bool
}

// ParameterGroupStatus is one parameter group attached to an instance.
type ParameterGroupStatus struct {
	Name        string
	ApplyStatus string // "in-sync", "pending-reboot", "applying"
}

// DescribeClusterParams names a cluster.
type DescribeClusterParams struct {
	ClusterID string
}

// Plan is the call DescribeCluster makes.
func (p DescribeClusterParams) Plan() []PlannedCall {
	return one(call("rds DescribeDBClusters", "DBClusterIdentifier", p.ClusterID))
}

// DescribeCluster reads one Aurora cluster (rds DescribeDBClusters). A missing
// cluster is an error of KindNotFound; FindCluster reports it as found=false.
func (c *Client) DescribeCluster(ctx context.Context, p DescribeClusterParams) (Cluster, error) {
	var out *rds.DescribeDBClustersOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.rds.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: sdkaws.String(p.ClusterID)})
		return err
	})
	if err != nil {
		return Cluster{}, err
	}
	if len(out.DBClusters) == 0 {
		return Cluster{}, notFound("rds DescribeDBClusters", "DB cluster "+p.ClusterID)
	}
	return clusterFrom(out.DBClusters[0]), nil
}

// FindCluster is DescribeCluster that reports a missing cluster as found=false,
// which is what makes creating steps idempotent: look first, create once.
func (c *Client) FindCluster(ctx context.Context, p DescribeClusterParams) (Cluster, bool, error) {
	cl, err := c.DescribeCluster(ctx, p)
	if IsNotFound(err) {
		return Cluster{}, false, nil
	}
	return cl, err == nil, err
}

// DescribeInstanceParams names a DB instance.
type DescribeInstanceParams struct {
	InstanceID string
}

// Plan is the call DescribeInstance makes.
func (p DescribeInstanceParams) Plan() []PlannedCall {
	return one(call("rds DescribeDBInstances", "DBInstanceIdentifier", p.InstanceID))
}

// DescribeInstance reads one DB instance (rds DescribeDBInstances).
func (c *Client) DescribeInstance(ctx context.Context, p DescribeInstanceParams) (Instance, error) {
	var out *rds.DescribeDBInstancesOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.rds.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: sdkaws.String(p.InstanceID)})
		return err
	})
	if err != nil {
		return Instance{}, err
	}
	if len(out.DBInstances) == 0 {
		return Instance{}, notFound("rds DescribeDBInstances", "DB instance "+p.InstanceID)
	}
	return instanceFrom(out.DBInstances[0]), nil
}

// FindInstance is DescribeInstance reporting a missing instance as found=false.
func (c *Client) FindInstance(ctx context.Context, p DescribeInstanceParams) (Instance, bool, error) {
	in, err := c.DescribeInstance(ctx, p)
	if IsNotFound(err) {
		return Instance{}, false, nil
	}
	return in, err == nil, err
}

// notFound builds the error for an answer that came back empty instead of
// with a NotFound fault, so callers see one kind either way.
func notFound(call, what string) error {
	return &Error{Call: call, Kind: KindNotFound, Message: what + " does not exist", Hint: hint(KindNotFound, "")}
}

func clusterFrom(d rdstypes.DBCluster) Cluster {
	cl := Cluster{
		ID:                 sdkaws.ToString(d.DBClusterIdentifier),
		ARN:                sdkaws.ToString(d.DBClusterArn),
		Status:             sdkaws.ToString(d.Status),
		Engine:             sdkaws.ToString(d.Engine),
		EngineVersion:      sdkaws.ToString(d.EngineVersion),
		Endpoint:           sdkaws.ToString(d.Endpoint),
		ReaderEndpoint:     sdkaws.ToString(d.ReaderEndpoint),
		Port:               sdkaws.ToInt32(d.Port),
		ParameterGroup:     sdkaws.ToString(d.DBClusterParameterGroup),
		SubnetGroup:        sdkaws.ToString(d.DBSubnetGroup),
		DeletionProtection: sdkaws.ToBool(d.DeletionProtection),
		LogExports:         d.EnabledCloudwatchLogsExports,
		Created:            sdkaws.ToTime(d.ClusterCreateTime),
	}
	for _, sg := range d.VpcSecurityGroups {
		cl.SecurityGroupIDs = append(cl.SecurityGroupIDs, sdkaws.ToString(sg.VpcSecurityGroupId))
	}
	for _, m := range d.DBClusterMembers {
		cl.Members = append(cl.Members, ClusterMember{
			InstanceID:           sdkaws.ToString(m.DBInstanceIdentifier),
			Writer:               sdkaws.ToBool(m.IsClusterWriter),
			ParameterGroupStatus: sdkaws.ToString(m.DBClusterParameterGroupStatus),
		})
	}
	return cl
}

func instanceFrom(d rdstypes.DBInstance) Instance {
	in := Instance{
		ID:                 sdkaws.ToString(d.DBInstanceIdentifier),
		ARN:                sdkaws.ToString(d.DBInstanceArn),
		ClusterID:          sdkaws.ToString(d.DBClusterIdentifier),
		Status:             sdkaws.ToString(d.DBInstanceStatus),
		Class:              sdkaws.ToString(d.DBInstanceClass),
		Engine:             sdkaws.ToString(d.Engine),
		EngineVersion:      sdkaws.ToString(d.EngineVersion),
		MultiAZ:            sdkaws.ToBool(d.MultiAZ),
		PubliclyAccessible: sdkaws.ToBool(d.PubliclyAccessible),
		DeletionProtection: sdkaws.ToBool(d.DeletionProtection),
	}
	if d.Endpoint != nil {
		in.Endpoint = sdkaws.ToString(d.Endpoint.Address)
		in.Port = sdkaws.ToInt32(d.Endpoint.Port)
	}
	if d.DBSubnetGroup != nil {
		in.SubnetGroup = sdkaws.ToString(d.DBSubnetGroup.DBSubnetGroupName)
	}
	for _, pg := range d.DBParameterGroups {
		in.ParameterGroups = append(in.ParameterGroups, ParameterGroupStatus{
			Name:        sdkaws.ToString(pg.DBParameterGroupName),
			ApplyStatus: sdkaws.ToString(pg.ParameterApplyStatus),
		})
	}
	for _, sg := range d.VpcSecurityGroups {
		in.SecurityGroupIDs = append(in.SecurityGroupIDs, sdkaws.ToString(sg.VpcSecurityGroupId))
	}
	return in
}
