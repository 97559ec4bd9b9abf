package aws

import (
	"context"
	"errors"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// ClusterSnapshot is a DB cluster snapshot (Aurora).
type ClusterSnapshot struct {
	ID            string
	ARN           string
	ClusterID     string
	Status        string
	Engine        string
	EngineVersion string
	Created       time.Time
}

// DescribeClusterSnapshotParams name a DB cluster snapshot.
type DescribeClusterSnapshotParams struct {
	SnapshotID string
}

// Plan is the call DescribeClusterSnapshot makes.
func (p DescribeClusterSnapshotParams) Plan() []PlannedCall {
	return one(call("rds DescribeDBClusterSnapshots", "DBClusterSnapshotIdentifier", p.SnapshotID))
}

// DescribeClusterSnapshot reads a DB cluster snapshot (rds
// DescribeDBClusterSnapshots).
func (c *Client) DescribeClusterSnapshot(ctx context.Context, p DescribeClusterSnapshotParams) (ClusterSnapshot, error) {
	var out *rds.DescribeDBClusterSnapshotsOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.rds.DescribeDBClusterSnapshots(ctx, &rds.DescribeDBClusterSnapshotsInput{DBClusterSnapshotIdentifier: sdkaws.String(p.SnapshotID)})
		return err
	})
	if err != nil {
		return ClusterSnapshot{}, err
	}
	if len(out.DBClusterSnapshots) == 0 {
		return ClusterSnapshot{}, notFound("rds DescribeDBClusterSnapshots", "DB cluster snapshot "+p.SnapshotID)
	}
	return clusterSnapshotFrom(out.DBClusterSnapshots[0]), nil
}

// FindClusterSnapshot is DescribeClusterSnapshot reporting a missing one as
// found=false.
func (c *Client) FindClusterSnapshot(ctx context.Context, p DescribeClusterSnapshotParams) (ClusterSnapshot, bool, error) {
	s, err := c.DescribeClusterSnapshot(ctx, p)
	if IsNotFound(err) {
		return ClusterSnapshot{}, false, nil
	}
	return s, err == nil, err
}

// CreateClusterSnapshotParams describe a manual snapshot of an Aurora cluster.
type CreateClusterSnapshotParams struct {
	ClusterID  string
	SnapshotID string
}

// Plan is the call CreateClusterSnapshot makes.
func (p CreateClusterSnapshotParams) Plan() []PlannedCall {
	return one(call("rds CreateDBClusterSnapshot", "DBClusterIdentifier", p.ClusterID, "DBClusterSnapshotIdentifier", p.SnapshotID))
}

// CreateClusterSnapshot snapshots an Aurora cluster (rds
// CreateDBClusterSnapshot), e.g. blue's final snapshot. The caller looks
// first (FindClusterSnapshot). Wait with WaitClusterSnapshotAvailable.
func (c *Client) CreateClusterSnapshot(ctx context.Context, p CreateClusterSnapshotParams) error {
	if p.ClusterID == "" || p.SnapshotID == "" {
		return errors.New("create cluster snapshot: the cluster and the snapshot identifiers are both required")
	}
	return c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		_, err := c.rds.CreateDBClusterSnapshot(ctx, &rds.CreateDBClusterSnapshotInput{
			DBClusterIdentifier:         sdkaws.String(p.ClusterID),
			DBClusterSnapshotIdentifier: sdkaws.String(p.SnapshotID),
		})
		return err
	})
}

// DeleteClusterParams name the Aurora cluster to delete, its members (read
// from the cluster first: Aurora refuses to delete a cluster that still has
// instances) and its final snapshot. There is no way to skip the snapshot.
type DeleteClusterParams struct {
	ClusterID       string
	Members         []string
	FinalSnapshotID string
}

// Plan lists the calls DeleteCluster makes: each member, then the cluster.
func (p DeleteClusterParams) Plan() []PlannedCall {
	var out []PlannedCall
	for _, m := range p.Members {
		// An Aurora member takes no final snapshot of its own: the
		// cluster's holds its data.
		out = append(out, call("rds DeleteDBInstance", "DBInstanceIdentifier", m))
	}
	return append(out, call("rds DeleteDBCluster", "DBClusterIdentifier", p.ClusterID, "SkipFinalSnapshot", "false",
		"FinalDBSnapshotIdentifier", p.FinalSnapshotID))
}

// DeleteCluster deletes an Aurora cluster with a final snapshot: its
// members first (rds DeleteDBInstance; their data is the cluster's), then
// the cluster (rds DeleteDBCluster, SkipFinalSnapshot=false). A member
// already gone is not an error.
func (c *Client) DeleteCluster(ctx context.Context, p DeleteClusterParams) error {
	if p.ClusterID == "" || p.FinalSnapshotID == "" {
		return errors.New("delete cluster: the cluster identifier and a final snapshot identifier are both required; a cluster is never deleted without a final snapshot")
	}
	plan := p.Plan()
	for i, id := range p.Members {
		err := c.call(ctx, plan[i], func(ctx context.Context) error {
			_, err := c.rds.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: sdkaws.String(id)})
			return err
		})
		if err != nil && !IsNotFound(err) {
			return err
		}
	}
	return c.call(ctx, plan[len(plan)-1], func(ctx context.Context) error {
		_, err := c.rds.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{
			DBClusterIdentifier:       sdkaws.String(p.ClusterID),
			SkipFinalSnapshot:         sdkaws.Bool(false),
			FinalDBSnapshotIdentifier: sdkaws.String(p.FinalSnapshotID),
		})
		return err
	})
}

// DeleteInstanceParams name the RDS instance to delete and its final
// snapshot. There is no way to skip the final snapshot.
type DeleteInstanceParams struct {
	InstanceID      string
	FinalSnapshotID string
}

// Plan is the call DeleteInstance makes.
func (p DeleteInstanceParams) Plan() []PlannedCall {
	return one(call("rds DeleteDBInstance", "DBInstanceIdentifier", p.InstanceID, "SkipFinalSnapshot", "false",
		"FinalDBSnapshotIdentifier", p.FinalSnapshotID))
}

// DeleteInstance deletes an RDS (non-Aurora) instance with a final snapshot
// (rds DeleteDBInstance, SkipFinalSnapshot=false, FinalDBSnapshotIdentifier).
func (c *Client) DeleteInstance(ctx context.Context, p DeleteInstanceParams) error {
	if p.InstanceID == "" || p.FinalSnapshotID == "" {
		return errors.New("delete instance: the instance identifier and a final snapshot identifier are both required; an instance is never deleted without a final snapshot")
	}
	return c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		_, err := c.rds.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{
			DBInstanceIdentifier:      sdkaws.String(p.InstanceID),
			SkipFinalSnapshot:         sdkaws.Bool(false),
			FinalDBSnapshotIdentifier: sdkaws.String(p.FinalSnapshotID),
		})
		return err
	})
}

func clusterSnapshotFrom(d rdstypes.DBClusterSnapshot) ClusterSnapshot {
	return ClusterSnapshot{
		ID:            sdkaws.ToString(d.DBClusterSnapshotIdentifier),
		ARN:           sdkaws.ToString(d.DBClusterSnapshotArn),
		ClusterID:     sdkaws.ToString(d.DBClusterIdentifier),
		Status:        sdkaws.ToString(d.Status),
		Engine:        sdkaws.ToString(d.Engine),
		EngineVersion: sdkaws.ToString(d.EngineVersion),
		Created:       sdkaws.ToTime(d.SnapshotCreateTime),
	}
}
