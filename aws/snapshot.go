package aws

import (
	"context"
	"errors"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// Snapshot is a DB (instance) snapshot.
type Snapshot struct {
	ID            string
	ARN           string
	InstanceID    string
	Status        string // "creating", "available", ...
	Engine        string
	EngineVersion string
	Created       time.Time
}

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

// DescribeSnapshotParams name a snapshot.
type DescribeSnapshotParams struct {
	SnapshotID string
}

// DescribeSnapshot reads a DB snapshot (rds DescribeDBSnapshots).
func (c *Client) DescribeSnapshot(ctx context.Context, p DescribeSnapshotParams) (Snapshot, error) {
	var out *rds.DescribeDBSnapshotsOutput
	err := c.call(ctx, "rds DescribeDBSnapshots", map[string]string{"DBSnapshotIdentifier": p.SnapshotID}, func(ctx context.Context) error {
		var err error
		out, err = c.rds.DescribeDBSnapshots(ctx, &rds.DescribeDBSnapshotsInput{DBSnapshotIdentifier: sdkaws.String(p.SnapshotID)})
		return err
	})
	if err != nil {
		return Snapshot{}, err
	}
	if len(out.DBSnapshots) == 0 {
		return Snapshot{}, notFound("rds DescribeDBSnapshots", "DB snapshot "+p.SnapshotID)
	}
	return snapshotFrom(out.DBSnapshots[0]), nil
}

// FindSnapshot is DescribeSnapshot reporting a missing snapshot as found=false.
func (c *Client) FindSnapshot(ctx context.Context, p DescribeSnapshotParams) (Snapshot, bool, error) {
	s, err := c.DescribeSnapshot(ctx, p)
	if IsNotFound(err) {
		return Snapshot{}, false, nil
	}
	return s, err == nil, err
}

// CreateSnapshotParams describe a manual snapshot of an RDS instance.
type CreateSnapshotParams struct {
	InstanceID string
	SnapshotID string
}

// SnapshotResult is a snapshot and whether this call created it.
type SnapshotResult struct {
	Snapshot Snapshot
	Created  bool
}

// CreateSnapshot snapshots an RDS instance (rds CreateDBSnapshot): blue for
// the rds-snapshot strategy, or the final snapshot before a deletion. A
// snapshot with that identifier that exists already is returned as found,
// after checking it is of the same instance. Wait with WaitSnapshotAvailable.
func (c *Client) CreateSnapshot(ctx context.Context, p CreateSnapshotParams) (SnapshotResult, error) {
	if p.InstanceID == "" || p.SnapshotID == "" {
		return SnapshotResult{}, errors.New("create snapshot: the instance and the snapshot identifiers are both required")
	}
	s, found, err := c.FindSnapshot(ctx, DescribeSnapshotParams{SnapshotID: p.SnapshotID})
	if err != nil {
		return SnapshotResult{}, err
	}
	if found {
		if s.InstanceID != p.InstanceID {
			return SnapshotResult{Snapshot: s}, errors.New("create snapshot: snapshot " + p.SnapshotID + " exists already and is of instance " + s.InstanceID + ", not " + p.InstanceID + "; choose another snapshot identifier")
		}
		return SnapshotResult{Snapshot: s}, nil
	}
	var out *rds.CreateDBSnapshotOutput
	err = c.do(ctx, createSnapshotCall(p), func(ctx context.Context) error {
		var err error
		out, err = c.rds.CreateDBSnapshot(ctx, &rds.CreateDBSnapshotInput{
			DBInstanceIdentifier: sdkaws.String(p.InstanceID),
			DBSnapshotIdentifier: sdkaws.String(p.SnapshotID),
		})
		return err
	})
	if err != nil {
		return SnapshotResult{}, err
	}
	res := SnapshotResult{Created: true}
	if out.DBSnapshot != nil {
		res.Snapshot = snapshotFrom(*out.DBSnapshot)
	}
	return res, nil
}

// UpgradeSnapshotParams describe the engine upgrade of a DB snapshot.
type UpgradeSnapshotParams struct {
	SnapshotID    string
	EngineVersion string
}

// UpgradeSnapshotResult is the snapshot after the call.
type UpgradeSnapshotResult struct {
	Snapshot Snapshot
	// AlreadyAtVersion is true when nothing was sent.
	AlreadyAtVersion bool
}

// UpgradeSnapshot upgrades a DB snapshot's engine version (rds
// ModifyDBSnapshot). Wait with WaitSnapshotAvailable and EngineVersion set.
func (c *Client) UpgradeSnapshot(ctx context.Context, p UpgradeSnapshotParams) (UpgradeSnapshotResult, error) {
	if p.SnapshotID == "" || p.EngineVersion == "" {
		return UpgradeSnapshotResult{}, errors.New("upgrade snapshot: the snapshot identifier and the target engine version are both required")
	}
	s, err := c.DescribeSnapshot(ctx, DescribeSnapshotParams{SnapshotID: p.SnapshotID})
	if err != nil {
		return UpgradeSnapshotResult{}, err
	}
	if s.EngineVersion == p.EngineVersion {
		return UpgradeSnapshotResult{Snapshot: s, AlreadyAtVersion: true}, nil
	}
	var out *rds.ModifyDBSnapshotOutput
	err = c.do(ctx, modifySnapshotCall(p), func(ctx context.Context) error {
		var err error
		out, err = c.rds.ModifyDBSnapshot(ctx, &rds.ModifyDBSnapshotInput{
			DBSnapshotIdentifier: sdkaws.String(p.SnapshotID),
			EngineVersion:        sdkaws.String(p.EngineVersion),
		})
		return err
	})
	if err != nil {
		return UpgradeSnapshotResult{}, err
	}
	if out.DBSnapshot != nil {
		s = snapshotFrom(*out.DBSnapshot)
	}
	return UpgradeSnapshotResult{Snapshot: s}, nil
}

// RestoreInstanceParams describe green restored from blue's upgraded snapshot
// (001 §4). The instance is never publicly accessible.
type RestoreInstanceParams struct {
	SnapshotID       string
	InstanceID       string
	Class            string
	ParameterGroup   string
	SubnetGroup      string
	SecurityGroupIDs []string
	MultiAZ          bool
	// IAMAuth enables IAM database authentication.
	IAMAuth bool
}

// RestoreInstanceResult is the new instance and whether this call made it.
type RestoreInstanceResult struct {
	Instance Instance
	Created  bool
}

// RestoreInstanceFromSnapshot creates green from a snapshot (rds
// RestoreDBInstanceFromDBSnapshot), with PostgreSQL log export on. An instance
// with that identifier that exists already is returned as found. Wait with
// WaitInstanceAvailable; then Instance.Endpoint is green's host.
func (c *Client) RestoreInstanceFromSnapshot(ctx context.Context, p RestoreInstanceParams) (RestoreInstanceResult, error) {
	if p.SnapshotID == "" || p.InstanceID == "" {
		return RestoreInstanceResult{}, errors.New("restore instance: the snapshot and the instance identifiers are both required")
	}
	in, found, err := c.FindInstance(ctx, DescribeInstanceParams{InstanceID: p.InstanceID})
	if err != nil {
		return RestoreInstanceResult{}, err
	}
	if found {
		return RestoreInstanceResult{Instance: in}, nil
	}
	req := &rds.RestoreDBInstanceFromDBSnapshotInput{
		DBSnapshotIdentifier:            sdkaws.String(p.SnapshotID),
		DBInstanceIdentifier:            sdkaws.String(p.InstanceID),
		MultiAZ:                         sdkaws.Bool(p.MultiAZ),
		EnableIAMDatabaseAuthentication: sdkaws.Bool(p.IAMAuth),
		PubliclyAccessible:              sdkaws.Bool(false),
		VpcSecurityGroupIds:             p.SecurityGroupIDs,
		EnableCloudwatchLogsExports:     []string{"postgresql"},
	}
	if p.Class != "" {
		req.DBInstanceClass = sdkaws.String(p.Class)
	}
	if p.ParameterGroup != "" {
		req.DBParameterGroupName = sdkaws.String(p.ParameterGroup)
	}
	if p.SubnetGroup != "" {
		req.DBSubnetGroupName = sdkaws.String(p.SubnetGroup)
	}
	var out *rds.RestoreDBInstanceFromDBSnapshotOutput
	err = c.do(ctx, restoreInstanceCall(p), func(ctx context.Context) error {
		var err error
		out, err = c.rds.RestoreDBInstanceFromDBSnapshot(ctx, req)
		return err
	})
	if err != nil {
		return RestoreInstanceResult{}, err
	}
	res := RestoreInstanceResult{Created: true}
	if out.DBInstance != nil {
		res.Instance = instanceFrom(*out.DBInstance)
	}
	return res, nil
}

func snapshotFrom(d rdstypes.DBSnapshot) Snapshot {
	return Snapshot{
		ID:            sdkaws.ToString(d.DBSnapshotIdentifier),
		ARN:           sdkaws.ToString(d.DBSnapshotArn),
		InstanceID:    sdkaws.ToString(d.DBInstanceIdentifier),
		Status:        sdkaws.ToString(d.Status),
		Engine:        sdkaws.ToString(d.Engine),
		EngineVersion: sdkaws.ToString(d.EngineVersion),
		Created:       sdkaws.ToTime(d.SnapshotCreateTime),
	}
}
