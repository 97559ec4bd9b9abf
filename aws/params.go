package aws

import (
	"context"
	"errors"
	"strings"

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
// temporary ones. All five are static: they apply at the next reboot.
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

// IsDefaultGroup reports whether a parameter group is one of RDS's default
// groups ("default.aurora-postgresql15"), which cannot be modified: a custom
// group has to be created and attached instead.
func IsDefaultGroup(name string) bool { return strings.HasPrefix(name, "default.") }

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

// Plan is the call GetParameters makes, once per page.
func (p GetParametersParams) Plan() []PlannedCall {
	if p.Cluster {
		return one(call("rds DescribeDBClusterParameters", "DBClusterParameterGroupName", p.Group))
	}
	return one(call("rds DescribeDBParameters", "DBParameterGroupName", p.Group))
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
	pc := p.Plan()[0]
	if p.Cluster {
		pager := rds.NewDescribeDBClusterParametersPaginator(c.rds, &rds.DescribeDBClusterParametersInput{
			DBClusterParameterGroupName: sdkaws.String(p.Group),
		})
		err := eachPage(ctx, c, pc, pager, func(out *rds.DescribeDBClusterParametersOutput) { keep(out.Parameters) })
		return res, err
	}
	pager := rds.NewDescribeDBParametersPaginator(c.rds, &rds.DescribeDBParametersInput{
		DBParameterGroupName: sdkaws.String(p.Group),
	})
	err := eachPage(ctx, c, pc, pager, func(out *rds.DescribeDBParametersOutput) { keep(out.Parameters) })
	return res, err
}

// pager is what the SDK's RDS paginators have in common.
type pager[O any] interface {
	HasMorePages() bool
	NextPage(ctx context.Context, optFns ...func(*rds.Options)) (O, error)
}

// eachPage reads every page, each one a journaled call with its own time
// limit and the SDK's retries, and hands each page to each.
func eachPage[O any](ctx context.Context, c *Client, pc PlannedCall, p pager[O], each func(O)) error {
	for p.HasMorePages() {
		err := c.call(ctx, pc, func(ctx context.Context) error {
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

// ParameterGroup is a DB (cluster) parameter group.
type ParameterGroup struct {
	Name string
	// Family is the engine family it serves ("aurora-postgresql15",
	// "postgres17"): a group serves one major version only.
	Family      string
	Description string
}

// DescribeParameterGroupParams name a parameter group.
type DescribeParameterGroupParams struct {
	Name    string
	Cluster bool // a DB cluster parameter group (Aurora)
}

// Plan is the call FindParameterGroup makes.
func (p DescribeParameterGroupParams) Plan() []PlannedCall {
	if p.Cluster {
		return one(call("rds DescribeDBClusterParameterGroups", "DBClusterParameterGroupName", p.Name))
	}
	return one(call("rds DescribeDBParameterGroups", "DBParameterGroupName", p.Name))
}

// FindParameterGroup reads a parameter group (rds
// DescribeDBClusterParameterGroups or DescribeDBParameterGroups); a missing
// one is found=false.
func (c *Client) FindParameterGroup(ctx context.Context, p DescribeParameterGroupParams) (ParameterGroup, bool, error) {
	var g ParameterGroup
	var found bool
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		if p.Cluster {
			out, err := c.rds.DescribeDBClusterParameterGroups(ctx, &rds.DescribeDBClusterParameterGroupsInput{DBClusterParameterGroupName: sdkaws.String(p.Name)})
			if err == nil && len(out.DBClusterParameterGroups) > 0 {
				x := out.DBClusterParameterGroups[0]
				g, found = ParameterGroup{Name: sdkaws.ToString(x.DBClusterParameterGroupName), Family: sdkaws.ToString(x.DBParameterGroupFamily), Description: sdkaws.ToString(x.Description)}, true
			}
			return err
		}
		out, err := c.rds.DescribeDBParameterGroups(ctx, &rds.DescribeDBParameterGroupsInput{DBParameterGroupName: sdkaws.String(p.Name)})
		if err == nil && len(out.DBParameterGroups) > 0 {
			x := out.DBParameterGroups[0]
			g, found = ParameterGroup{Name: sdkaws.ToString(x.DBParameterGroupName), Family: sdkaws.ToString(x.DBParameterGroupFamily), Description: sdkaws.ToString(x.Description)}, true
		}
		return err
	})
	if IsNotFound(err) {
		return ParameterGroup{}, false, nil
	}
	return g, found, err
}

// CreateParameterGroupParams describe a custom parameter group: blue's when
// it runs on a default group, which RDS refuses to modify.
type CreateParameterGroupParams struct {
	Name        string
	Family      string
	Description string
	Cluster     bool
}

// Plan is the call CreateParameterGroup makes.
func (p CreateParameterGroupParams) Plan() []PlannedCall {
	if p.Cluster {
		return one(call("rds CreateDBClusterParameterGroup", "DBClusterParameterGroupName", p.Name,
			"DBParameterGroupFamily", p.Family, "Description", p.Description))
	}
	return one(call("rds CreateDBParameterGroup", "DBParameterGroupName", p.Name,
		"DBParameterGroupFamily", p.Family, "Description", p.Description))
}

// CreateParameterGroup creates a parameter group of a family (rds
// CreateDBClusterParameterGroup or CreateDBParameterGroup): it starts with
// the family's engine defaults, which are what a default group holds.
func (c *Client) CreateParameterGroup(ctx context.Context, p CreateParameterGroupParams) error {
	if p.Name == "" || p.Family == "" || p.Description == "" {
		return errors.New("create parameter group: the name, the family and a description are all required")
	}
	return c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		if p.Cluster {
			_, err := c.rds.CreateDBClusterParameterGroup(ctx, &rds.CreateDBClusterParameterGroupInput{
				DBClusterParameterGroupName: sdkaws.String(p.Name), DBParameterGroupFamily: sdkaws.String(p.Family), Description: sdkaws.String(p.Description)})
			return err
		}
		_, err := c.rds.CreateDBParameterGroup(ctx, &rds.CreateDBParameterGroupInput{
			DBParameterGroupName: sdkaws.String(p.Name), DBParameterGroupFamily: sdkaws.String(p.Family), Description: sdkaws.String(p.Description)})
		return err
	})
}

// SetParametersParams describe values to write into a parameter group.
type SetParametersParams struct {
	Group    string
	Cluster  bool // as in GetParametersParams
	Settings []Setting
}

// maxParametersPerModify is RDS's limit of parameters in one Modify call.
const maxParametersPerModify = 20

func (p SetParametersParams) chunks() [][]Setting {
	var out [][]Setting
	for start := 0; start < len(p.Settings); start += maxParametersPerModify {
		out = append(out, p.Settings[start:min(start+maxParametersPerModify, len(p.Settings))])
	}
	return out
}

func joinSettings(s []Setting) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = x.Name + "=" + x.Value
	}
	return strings.Join(parts, ",")
}

// Plan lists the calls SetParameters makes (one per 20 parameters).
func (p SetParametersParams) Plan() []PlannedCall {
	var out []PlannedCall
	for _, chunk := range p.chunks() {
		name, key := "rds ModifyDBParameterGroup", "DBParameterGroupName"
		if p.Cluster {
			name, key = "rds ModifyDBClusterParameterGroup", "DBClusterParameterGroupName"
		}
		out = append(out, call(name, key, p.Group, "Parameters", joinSettings(chunk), "ApplyMethod", "pending-reboot"))
	}
	return out
}

// SetParameters writes values into a parameter group (rds
// ModifyDBClusterParameterGroup or ModifyDBParameterGroup) with ApplyMethod
// pending-reboot: static parameters such as rds.logical_replication take
// effect only after a reboot (RebootInstance), and RDS refuses "immediate"
// for them. Callers read first (GetParameters) and send only what differs.
func (c *Client) SetParameters(ctx context.Context, p SetParametersParams) error {
	if p.Group == "" {
		return errors.New("set parameters: the parameter group name is required")
	}
	if IsDefaultGroup(p.Group) {
		return errors.New("set parameters: " + p.Group + " is a default parameter group, which RDS does not let anyone modify; create a custom group and attach it")
	}
	plan := p.Plan()
	for i, chunk := range p.chunks() {
		ps := make([]rdstypes.Parameter, 0, len(chunk))
		for _, s := range chunk {
			ps = append(ps, rdstypes.Parameter{
				ParameterName:  sdkaws.String(s.Name),
				ParameterValue: sdkaws.String(s.Value),
				ApplyMethod:    rdstypes.ApplyMethodPendingReboot,
			})
		}
		err := c.call(ctx, plan[i], func(ctx context.Context) error {
			if p.Cluster {
				_, err := c.rds.ModifyDBClusterParameterGroup(ctx, &rds.ModifyDBClusterParameterGroupInput{
					DBClusterParameterGroupName: sdkaws.String(p.Group), Parameters: ps})
				return err
			}
			_, err := c.rds.ModifyDBParameterGroup(ctx, &rds.ModifyDBParameterGroupInput{
				DBParameterGroupName: sdkaws.String(p.Group), Parameters: ps})
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// AttachParameterGroupParams attach a parameter group to blue: to an Aurora
// cluster (ClusterID, a DB cluster parameter group) or to an RDS instance
// (InstanceID, a DB parameter group).
type AttachParameterGroupParams struct {
	ClusterID  string
	InstanceID string
	Group      string
}

// Plan is the call AttachParameterGroup makes.
func (p AttachParameterGroupParams) Plan() []PlannedCall {
	if p.ClusterID != "" {
		return one(call("rds ModifyDBCluster", "DBClusterIdentifier", p.ClusterID,
			"DBClusterParameterGroupName", p.Group, "ApplyImmediately", "true"))
	}
	return one(call("rds ModifyDBInstance", "DBInstanceIdentifier", p.InstanceID,
		"DBParameterGroupName", p.Group, "ApplyImmediately", "true"))
}

// AttachParameterGroup attaches a parameter group (rds ModifyDBCluster or
// ModifyDBInstance, ApplyImmediately): the attachment is "applying", then
// waits for a reboot ("pending-reboot"), like static parameters.
func (c *Client) AttachParameterGroup(ctx context.Context, p AttachParameterGroupParams) error {
	if (p.ClusterID == "") == (p.InstanceID == "") || p.Group == "" {
		return errors.New("attach parameter group: a group and either a cluster or an instance are required")
	}
	return c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		if p.ClusterID != "" {
			_, err := c.rds.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: sdkaws.String(p.ClusterID),
				DBClusterParameterGroupName: sdkaws.String(p.Group), ApplyImmediately: sdkaws.Bool(true)})
			return err
		}
		_, err := c.rds.ModifyDBInstance(ctx, &rds.ModifyDBInstanceInput{DBInstanceIdentifier: sdkaws.String(p.InstanceID),
			DBParameterGroupName: sdkaws.String(p.Group), ApplyImmediately: sdkaws.Bool(true)})
		return err
	})
}

// RebootParams name the instance to reboot.
type RebootParams struct {
	InstanceID string
}

// Plan is the call RebootInstance makes.
func (p RebootParams) Plan() []PlannedCall {
	return one(call("rds RebootDBInstance", "DBInstanceIdentifier", p.InstanceID))
}

// RebootInstance reboots a DB instance (rds RebootDBInstance, no failover) so
// static parameters apply. Wait with WaitInstanceAvailable.
func (c *Client) RebootInstance(ctx context.Context, p RebootParams) error {
	return c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		_, err := c.rds.RebootDBInstance(ctx, &rds.RebootDBInstanceInput{DBInstanceIdentifier: sdkaws.String(p.InstanceID)})
		return err
	})
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

// ApplyStatus is the parameter status of one instance: its cluster
// member's DBClusterParameterGroupStatus in an Aurora cluster (cl set), its
// first DB parameter group's ParameterApplyStatus otherwise; "" when the
// instance or the status is not there.
func ApplyStatus(cl *Cluster, in Instance) string {
	if cl != nil {
		m, _ := cl.Member(in.ID)
		return m.ParameterGroupStatus
	}
	if len(in.ParameterGroups) == 0 {
		return ""
	}
	return in.ParameterGroups[0].ApplyStatus
}
