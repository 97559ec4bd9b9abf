package aws

import (
	"context"
	"errors"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// DescribeClusterSnapshot reads a DB cluster snapshot (rds
// DescribeDBClusterSnapshots).
func (c *Client) DescribeClusterSnapshot(ctx context.Context, p DescribeSnapshotParams) (ClusterSnapshot, error) {
	var out *rds.DescribeDBClusterSnapshotsOutput
	err := c.call(ctx, "rds DescribeDBClusterSnapshots", map[string]string{"DBClusterSnapshotIdentifier": p.SnapshotID}, func(ctx context.Context) error {
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

// CreateClusterSnapshotParams describe a manual snapshot of an Aurora cluster.
type CreateClusterSnapshotParams struct {
	ClusterID  string
	SnapshotID string
}

// ClusterSnapshotResult is a cluster snapshot and whether this call made it.
type ClusterSnapshotResult struct {
	Snapshot ClusterSnapshot
	Created  bool
}

// CreateClusterSnapshot snapshots an Aurora cluster (rds
// CreateDBClusterSnapshot), e.g. blue's final snapshot before it is deleted.
// An existing snapshot of that cluster with that identifier is returned as
// found. Wait with WaitClusterSnapshotAvailable.
func (c *Client) CreateClusterSnapshot(ctx context.Context, p CreateClusterSnapshotParams) (ClusterSnapshotResult, error) {
	if p.ClusterID == "" || p.SnapshotID == "" {
		return ClusterSnapshotResult{}, errors.New("create cluster snapshot: the cluster and the snapshot identifiers are both required")
	}
	s, err := c.DescribeClusterSnapshot(ctx, DescribeSnapshotParams{SnapshotID: p.SnapshotID})
	if err == nil {
		if s.ClusterID != p.ClusterID {
			return ClusterSnapshotResult{Snapshot: s}, errors.New("create cluster snapshot: snapshot " + p.SnapshotID + " exists already and is of cluster " + s.ClusterID + ", not " + p.ClusterID + "; choose another snapshot identifier")
		}
		return ClusterSnapshotResult{Snapshot: s}, nil
	}
	if !IsNotFound(err) {
		return ClusterSnapshotResult{}, err
	}
	var out *rds.CreateDBClusterSnapshotOutput
	err = c.do(ctx, createClusterSnapshotCall(p), func(ctx context.Context) error {
		var err error
		out, err = c.rds.CreateDBClusterSnapshot(ctx, &rds.CreateDBClusterSnapshotInput{
			DBClusterIdentifier:         sdkaws.String(p.ClusterID),
			DBClusterSnapshotIdentifier: sdkaws.String(p.SnapshotID),
		})
		return err
	})
	if err != nil {
		return ClusterSnapshotResult{}, err
	}
	res := ClusterSnapshotResult{Created: true}
	if out.DBClusterSnapshot != nil {
		res.Snapshot = clusterSnapshotFrom(*out.DBClusterSnapshot)
	}
	return res, nil
}

// DeleteClusterParams name the Aurora cluster to delete and its final
// snapshot. There is no way to skip the final snapshot.
type DeleteClusterParams struct {
	ClusterID       string
	FinalSnapshotID string
}

// DeleteClusterResult lists what deletion was started for.
type DeleteClusterResult struct {
	DeletedInstances []string
	Cluster          Cluster
}

// DeleteCluster deletes an Aurora cluster with a final snapshot: its
// instances first (rds DeleteDBInstance; Aurora refuses to delete a cluster
// that still has them, and their data is the cluster's), then the cluster
// (rds DeleteDBCluster, SkipFinalSnapshot=false, FinalDBSnapshotIdentifier).
// A cluster with deletion protection is refused before anything is deleted.
func (c *Client) DeleteCluster(ctx context.Context, p DeleteClusterParams) (DeleteClusterResult, error) {
	var res DeleteClusterResult
	if p.ClusterID == "" || p.FinalSnapshotID == "" {
		return res, errors.New("delete cluster: the cluster identifier and a final snapshot identifier are both required; a cluster is never deleted without a final snapshot")
	}
	cl, err := c.DescribeCluster(ctx, DescribeClusterParams{ClusterID: p.ClusterID})
	if err != nil {
		return res, err
	}
	if cl.DeletionProtection {
		return res, errors.New("delete cluster " + p.ClusterID + ": deletion protection is on; turn it off in the RDS console (Modify) after checking this is the cluster to delete")
	}
	for _, m := range cl.Members {
		id := m.InstanceID
		err := c.do(ctx, deleteMemberCall(p.ClusterID, id), func(ctx context.Context) error {
			_, err := c.rds.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: sdkaws.String(id)})
			return err
		})
		if err != nil && !IsNotFound(err) {
			return res, err
		}
		res.DeletedInstances = append(res.DeletedInstances, id)
	}
	var out *rds.DeleteDBClusterOutput
	err = c.do(ctx, deleteClusterCall(p), func(ctx context.Context) error {
		var err error
		out, err = c.rds.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{
			DBClusterIdentifier:       sdkaws.String(p.ClusterID),
			SkipFinalSnapshot:         sdkaws.Bool(false),
			FinalDBSnapshotIdentifier: sdkaws.String(p.FinalSnapshotID),
		})
		return err
	})
	if err != nil {
		return res, err
	}
	if out.DBCluster != nil {
		res.Cluster = clusterFrom(*out.DBCluster)
	}
	return res, nil
}

// DeleteInstanceParams name the RDS instance to delete and its final
// snapshot. There is no way to skip the final snapshot.
type DeleteInstanceParams struct {
	InstanceID      string
	FinalSnapshotID string
}

// DeleteInstanceResult is the instance as the deletion started.
type DeleteInstanceResult struct {
	Instance Instance
}

// DeleteInstance deletes an RDS (non-Aurora) instance with a final snapshot
// (rds DeleteDBInstance, SkipFinalSnapshot=false, FinalDBSnapshotIdentifier).
// Aurora members are deleted with their cluster, by DeleteCluster.
func (c *Client) DeleteInstance(ctx context.Context, p DeleteInstanceParams) (DeleteInstanceResult, error) {
	if p.InstanceID == "" || p.FinalSnapshotID == "" {
		return DeleteInstanceResult{}, errors.New("delete instance: the instance identifier and a final snapshot identifier are both required; an instance is never deleted without a final snapshot")
	}
	in, err := c.DescribeInstance(ctx, DescribeInstanceParams{InstanceID: p.InstanceID})
	if err != nil {
		return DeleteInstanceResult{}, err
	}
	if in.ClusterID != "" {
		return DeleteInstanceResult{}, errors.New("delete instance " + p.InstanceID + ": it is a member of Aurora cluster " + in.ClusterID + "; delete the cluster instead (DeleteCluster)")
	}
	var out *rds.DeleteDBInstanceOutput
	err = c.do(ctx, deleteInstanceCall(p), func(ctx context.Context) error {
		var err error
		out, err = c.rds.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{
			DBInstanceIdentifier:      sdkaws.String(p.InstanceID),
			SkipFinalSnapshot:         sdkaws.Bool(false),
			FinalDBSnapshotIdentifier: sdkaws.String(p.FinalSnapshotID),
		})
		return err
	})
	if err != nil {
		return DeleteInstanceResult{}, err
	}
	var res DeleteInstanceResult
	if out.DBInstance != nil {
		res.Instance = instanceFrom(*out.DBInstance)
	}
	return res, nil
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
