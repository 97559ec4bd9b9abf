package aws

import (
	"context"
	"errors"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// Setting is one parameter's name and value in a parameter group.
type Setting struct {
	Name  string
	Value string
}

// LogicalReplicationSettings are the parameters blue needs for logical
// replication (runbook 000): logical WAL, and room for the slots, walsenders
// and apply workers of several publications plus the initial sync's
// temporary ones.
var LogicalReplicationSettings = []Setting{
	{Name: "rds.logical_replication", Value: "1"},
	{Name: "max_replication_slots", Value: "25"},
	{Name: "max_wal_senders", Value: "25"},
	{Name: "max_logical_replication_workers", Value: "25"},
	{Name: "max_worker_processes", Value: "50"},
}

// Parameter is one parameter as a parameter group holds it.
type Parameter struct {
	Name  string
	Value string // "" when the group leaves it at the engine default
	// ApplyType is "static" (needs a reboot) or "dynamic".
	ApplyType  string
	Source     string // "engine-default", "user", "system"
	Modifiable bool
}

// GetParametersParams name a parameter group and the parameters to read.
type GetParametersParams struct {
	// Group is the parameter group's name.
	Group string
	// Cluster is true for an Aurora DB cluster parameter group, false for an
	// RDS DB parameter group.
	Cluster bool
	// Names are the parameters wanted; empty reads them all.
	Names []string
}

// GetParametersResult holds the parameters found, by name. A wanted name the
// group does not have is absent.
type GetParametersResult struct {
	Parameters map[string]Parameter
}

// GetParameters reads a parameter group (rds DescribeDBClusterParameters or
// DescribeDBParameters, every page).
func (c *Client) GetParameters(ctx context.Context, p GetParametersParams) (GetParametersResult, error) {
	want := map[string]bool{}
	for _, n := range p.Names {
		want[n] = true
	}
	res := GetParametersResult{Parameters: map[string]Parameter{}}
	keep := func(ps []rdstypes.Parameter) {
		for _, x := range ps {
			name := sdkaws.ToString(x.ParameterName)
			if len(want) > 0 && !want[name] {
				continue
			}
			res.Parameters[name] = Parameter{
				Name:       name,
				Value:      sdkaws.ToString(x.ParameterValue),
				ApplyType:  sdkaws.ToString(x.ApplyType),
				Source:     sdkaws.ToString(x.Source),
				Modifiable: sdkaws.ToBool(x.IsModifiable),
			}
		}
	}
	if p.Cluster {
		pager := rds.NewDescribeDBClusterParametersPaginator(c.rds, &rds.DescribeDBClusterParametersInput{
			DBClusterParameterGroupName: sdkaws.String(p.Group),
		})
		err := eachPage(ctx, c, "rds DescribeDBClusterParameters", map[string]string{"DBClusterParameterGroupName": p.Group}, pager,
			func(out *rds.DescribeDBClusterParametersOutput) { keep(out.Parameters) })
		return res, err
	}
	pager := rds.NewDescribeDBParametersPaginator(c.rds, &rds.DescribeDBParametersInput{
		DBParameterGroupName: sdkaws.String(p.Group),
	})
	err := eachPage(ctx, c, "rds DescribeDBParameters", map[string]string{"DBParameterGroupName": p.Group}, pager,
		func(out *rds.DescribeDBParametersOutput) { keep(out.Parameters) })
	return res, err
}

// pager is what the SDK's RDS paginators have in common.
type pager[O any] interface {
	HasMorePages() bool
	NextPage(ctx context.Context, optFns ...func(*rds.Options)) (O, error)
}

// eachPage reads every page, each one a journaled call with its own time
// limit and the SDK's retries, and hands each page to each.
func eachPage[O any](ctx context.Context, c *Client, call string, params map[string]string, p pager[O], each func(O)) error {
	for p.HasMorePages() {
		err := c.call(ctx, call, params, func(ctx context.Context) error {
			out, err := p.NextPage(ctx)
			if err == nil {
				each(out)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// SetParametersParams describe values to write into a parameter group.
type SetParametersParams struct {
	Group    string
	Cluster  bool // as in GetParametersParams
	Settings []Setting
}

// SetParametersResult says what was sent.
type SetParametersResult struct {
	// Sent are the names written, in order.
	Sent []string
}

// maxParametersPerModify is RDS's limit of parameters in one Modify call.
const maxParametersPerModify = 20

// SetParameters writes values into a parameter group (rds
// ModifyDBClusterParameterGroup or ModifyDBParameterGroup) with ApplyMethod
// pending-reboot: static parameters such as rds.logical_replication take
// effect only after a reboot, which the caller schedules (RebootInstance).
// Callers that want idempotence read first with GetParameters and send only
// the values that differ.
func (c *Client) SetParameters(ctx context.Context, p SetParametersParams) (SetParametersResult, error) {
	if p.Group == "" {
		return SetParametersResult{}, errors.New("set parameters: the parameter group name is required")
	}
	var res SetParametersResult
	for start := 0; start < len(p.Settings); start += maxParametersPerModify {
		end := min(start+maxParametersPerModify, len(p.Settings))
		chunk := p.Settings[start:end]
		ps := make([]rdstypes.Parameter, 0, len(chunk))
		for _, s := range chunk {
			ps = append(ps, rdstypes.Parameter{
				ParameterName:  sdkaws.String(s.Name),
				ParameterValue: sdkaws.String(s.Value),
				ApplyMethod:    rdstypes.ApplyMethodPendingReboot,
			})
		}
		pc := setParametersCall(p.Group, p.Cluster, chunk)
		var err error
		if p.Cluster {
			err = c.do(ctx, pc, func(ctx context.Context) error {
				_, err := c.rds.ModifyDBClusterParameterGroup(ctx, &rds.ModifyDBClusterParameterGroupInput{
					DBClusterParameterGroupName: sdkaws.String(p.Group),
					Parameters:                  ps,
				})
				return err
			})
		} else {
			err = c.do(ctx, pc, func(ctx context.Context) error {
				_, err := c.rds.ModifyDBParameterGroup(ctx, &rds.ModifyDBParameterGroupInput{
					DBParameterGroupName: sdkaws.String(p.Group),
					Parameters:           ps,
				})
				return err
			})
		}
		if err != nil {
			return res, err
		}
		for _, s := range chunk {
			res.Sent = append(res.Sent, s.Name)
		}
	}
	return res, nil
}

// RebootPendingParams name the database whose parameter status is read: an
// Aurora cluster (ClusterID) or an RDS instance (InstanceID).
type RebootPendingParams struct {
	ClusterID  string
	InstanceID string
}

// RebootPendingResult says which instances wait for a reboot to apply their
// parameter groups.
type RebootPendingResult struct {
	Pending bool
	// Instances are the instances with "pending-reboot", in cluster order.
	Instances []string
	// Writer is the cluster's writer ("" for an RDS instance): the one to
	// reboot for blue's cluster parameters to apply.
	Writer string
}

// RebootPending reads whether parameter changes wait for a reboot: for a
// cluster, its members' DBClusterParameterGroupStatus (rds
// DescribeDBClusters); for an instance, its DBParameterGroups'
// ParameterApplyStatus (rds DescribeDBInstances).
func (c *Client) RebootPending(ctx context.Context, p RebootPendingParams) (RebootPendingResult, error) {
	var res RebootPendingResult
	if p.ClusterID != "" {
		cl, err := c.DescribeCluster(ctx, DescribeClusterParams{ClusterID: p.ClusterID})
		if err != nil {
			return res, err
		}
		res.Writer = cl.Writer()
		for _, m := range cl.Members {
			if m.ParameterGroupStatus == "pending-reboot" {
				res.Instances = append(res.Instances, m.InstanceID)
			}
		}
		res.Pending = len(res.Instances) > 0
		return res, nil
	}
	if p.InstanceID == "" {
		return res, errors.New("reboot pending: a cluster or an instance identifier is required")
	}
	in, err := c.DescribeInstance(ctx, DescribeInstanceParams{InstanceID: p.InstanceID})
	if err != nil {
		return res, err
	}
	for _, g := range in.ParameterGroups {
		if g.ApplyStatus == "pending-reboot" {
			res.Instances = []string{in.ID}
			res.Pending = true
			break
		}
	}
	return res, nil
}

// RebootParams name the instance to reboot.
type RebootParams struct {
	InstanceID string
}

// RebootResult is the instance right after the call (usually "rebooting").
type RebootResult struct {
	Instance Instance
}

// RebootInstance reboots a DB instance (rds RebootDBInstance, no failover) so
// static parameters apply. Wait with WaitInstanceAvailable.
func (c *Client) RebootInstance(ctx context.Context, p RebootParams) (RebootResult, error) {
	var out *rds.RebootDBInstanceOutput
	err := c.do(ctx, rebootCall(p.InstanceID), func(ctx context.Context) error {
		var err error
		out, err = c.rds.RebootDBInstance(ctx, &rds.RebootDBInstanceInput{DBInstanceIdentifier: sdkaws.String(p.InstanceID)})
		return err
	})
	if err != nil {
		return RebootResult{}, err
	}
	var res RebootResult
	if out.DBInstance != nil {
		res.Instance = instanceFrom(*out.DBInstance)
	}
	return res, nil
}

// Differing returns the settings of want whose value in have differs (or that
// have lacks): what SetParameters still has to send.
func Differing(have GetParametersResult, want []Setting) []Setting {
	var out []Setting
	for _, s := range want {
		if p, ok := have.Parameters[s.Name]; !ok || p.Value != s.Value {
			out = append(out, s)
		}
	}
	return out
}
