package aws

import (
	"context"
	"errors"
	"strings"
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

// DescribeSnapshotParams name a DB snapshot.
type DescribeSnapshotParams struct {
	SnapshotID string
}

// Plan is the call DescribeSnapshot makes.
func (p DescribeSnapshotParams) Plan() []PlannedCall {
	return one(call("rds DescribeDBSnapshots", "DBSnapshotIdentifier", p.SnapshotID))
}

// DescribeSnapshot reads a DB snapshot (rds DescribeDBSnapshots).
func (c *Client) DescribeSnapshot(ctx context.Context, p DescribeSnapshotParams) (Snapshot, error) {
	var out *rds.DescribeDBSnapshotsOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
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

// Plan is the call CreateSnapshot makes.
func (p CreateSnapshotParams) Plan() []PlannedCall {
	return one(call("rds CreateDBSnapshot", "DBInstanceIdentifier", p.InstanceID, "DBSnapshotIdentifier", p.SnapshotID))
}

// CreateSnapshot snapshots an RDS instance (rds CreateDBSnapshot): blue for
// the rds-snapshot strategy, or the final snapshot before a deletion. The
// caller looks first (FindSnapshot). Wait with WaitSnapshotAvailable.
func (c *Client) CreateSnapshot(ctx context.Context, p CreateSnapshotParams) error {
	if p.InstanceID == "" || p.SnapshotID == "" {
		return errors.New("create snapshot: the instance and the snapshot identifiers are both required")
	}
	return c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		_, err := c.rds.CreateDBSnapshot(ctx, &rds.CreateDBSnapshotInput{
			DBInstanceIdentifier: sdkaws.String(p.InstanceID),
			DBSnapshotIdentifier: sdkaws.String(p.SnapshotID),
		})
		return err
	})
}

// UpgradeSnapshotParams describe the engine upgrade of a DB snapshot.
type UpgradeSnapshotParams struct {
	SnapshotID    string
	EngineVersion string
}

// Plan is the call UpgradeSnapshot makes.
func (p UpgradeSnapshotParams) Plan() []PlannedCall {
	return one(call("rds ModifyDBSnapshot", "DBSnapshotIdentifier", p.SnapshotID, "EngineVersion", p.EngineVersion))
}

// UpgradeSnapshot upgrades a DB snapshot's engine version (rds
// ModifyDBSnapshot) and returns it as the call left it. Wait with
// WaitSnapshotAvailable, EngineVersion and Started set.
func (c *Client) UpgradeSnapshot(ctx context.Context, p UpgradeSnapshotParams) (Snapshot, error) {
	if p.SnapshotID == "" || p.EngineVersion == "" {
		return Snapshot{}, errors.New("upgrade snapshot: the snapshot identifier and the target engine version are both required")
	}
	var out *rds.ModifyDBSnapshotOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.rds.ModifyDBSnapshot(ctx, &rds.ModifyDBSnapshotInput{
			DBSnapshotIdentifier: sdkaws.String(p.SnapshotID),
			EngineVersion:        sdkaws.String(p.EngineVersion),
		})
		return err
	})
	if err != nil || out.DBSnapshot == nil {
		return Snapshot{}, err
	}
	return snapshotFrom(*out.DBSnapshot), nil
}

// RestoreInstanceParams describe green restored from blue's upgraded snapshot
// (001 §4), every value resolved. The instance is never publicly accessible.
type RestoreInstanceParams struct {
	SnapshotID         string
	InstanceID         string
	Class              string
	ParameterGroup     string
	SubnetGroup        string
	SecurityGroupIDs   []string
	MultiAZ            bool
	DeletionProtection bool
	// IAMAuth enables IAM database authentication.
	IAMAuth bool
}

// Plan is the call RestoreInstanceFromSnapshot makes.
func (p RestoreInstanceParams) Plan() []PlannedCall {
	c := call("rds RestoreDBInstanceFromDBSnapshot", "DBSnapshotIdentifier", p.SnapshotID, "DBInstanceIdentifier", p.InstanceID)
	c.addIf("DBInstanceClass", p.Class)
	c.addIf("DBParameterGroupName", p.ParameterGroup)
	c.addIf("DBSubnetGroupName", p.SubnetGroup)
	c.addIf("VpcSecurityGroupIds", strings.Join(p.SecurityGroupIDs, ","))
	c.add("MultiAZ", boolText(p.MultiAZ))
	c.add("EnableIAMDatabaseAuthentication", boolText(p.IAMAuth))
	c.add("PubliclyAccessible", "false")
	c.add("DeletionProtection", boolText(p.DeletionProtection))
	c.add("EnableCloudwatchLogsExports", "postgresql")
	return one(c)
}

// RestoreInstanceFromSnapshot creates green from a snapshot (rds
// RestoreDBInstanceFromDBSnapshot), with PostgreSQL log export on: the seed
// is read from its log. The caller looks first (FindInstance). Wait with
// WaitInstanceAvailable; then Instance.Endpoint is green's host.
func (c *Client) RestoreInstanceFromSnapshot(ctx context.Context, p RestoreInstanceParams) error {
	if p.SnapshotID == "" || p.InstanceID == "" {
		return errors.New("restore instance: the snapshot and the instance identifiers are both required")
	}
	req := &rds.RestoreDBInstanceFromDBSnapshotInput{
		DBSnapshotIdentifier:            sdkaws.String(p.SnapshotID),
		DBInstanceIdentifier:            sdkaws.String(p.InstanceID),
		MultiAZ:                         sdkaws.Bool(p.MultiAZ),
		EnableIAMDatabaseAuthentication: sdkaws.Bool(p.IAMAuth),
		PubliclyAccessible:              sdkaws.Bool(false),
		DeletionProtection:              sdkaws.Bool(p.DeletionProtection),
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
	return c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		_, err := c.rds.RestoreDBInstanceFromDBSnapshot(ctx, req)
		return err
	})
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
