package aws

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// ChangeRecordParams describe one change of a DNS record set: the switch
// (UPSERT of the CNAME to green), and its undoing (UPSERT of the record as
// it was, or DELETE of a record that did not exist before).
type ChangeRecordParams struct {
	HostedZoneID string
	// Action is "UPSERT" (default) or "DELETE"; a DELETE must name the
	// record exactly as it is (type, TTL, values), Route 53 refuses otherwise.
	Action string
	Name   string // "db.example.com"
	// Type is "CNAME" unless set.
	Type    string
	TTL     int64 // seconds; 0 means 60 (Route 53's usual for records that must move quickly)
	Values  []string
	Comment string
}

func (p ChangeRecordParams) action() string { return or(p.Action, "UPSERT") }
func (p ChangeRecordParams) typ() string    { return or(p.Type, "CNAME") }

// RecordTTL is the TTL used: 60 s unless set.
func RecordTTL(ttl int64) int64 {
	if ttl <= 0 {
		return 60
	}
	return ttl
}

// Plan is the call ChangeRecord makes (then GetChange until INSYNC).
func (p ChangeRecordParams) Plan() []PlannedCall {
	c := call("route53 ChangeResourceRecordSets", "HostedZoneId", p.HostedZoneID, "Action", p.action(), "Name", p.Name,
		"Type", p.typ(), "TTL", strconv.FormatInt(RecordTTL(p.TTL), 10), "Value", strings.Join(p.Values, ","))
	c.addIf("Comment", p.Comment)
	return one(c)
}

// ChangeResult identifies a Route 53 change.
type ChangeResult struct {
	ChangeID string
	Status   string // "PENDING" or "INSYNC"
}

// ChangeRecord changes one record set (route53 ChangeResourceRecordSets).
// Wait with WaitChange for INSYNC.
func (c *Client) ChangeRecord(ctx context.Context, p ChangeRecordParams) (ChangeResult, error) {
	if p.HostedZoneID == "" || p.Name == "" || len(p.Values) == 0 {
		return ChangeResult{}, errors.New("change DNS record: the hosted zone, the record name and its values are all required")
	}
	rs := &r53types.ResourceRecordSet{
		Name: sdkaws.String(p.Name),
		Type: r53types.RRType(p.typ()),
		TTL:  sdkaws.Int64(RecordTTL(p.TTL)),
	}
	for _, v := range p.Values {
		rs.ResourceRecords = append(rs.ResourceRecords, r53types.ResourceRecord{Value: sdkaws.String(v)})
	}
	batch := &r53types.ChangeBatch{Changes: []r53types.Change{{Action: r53types.ChangeAction(p.action()), ResourceRecordSet: rs}}}
	if p.Comment != "" {
		batch.Comment = sdkaws.String(p.Comment)
	}
	var out *route53.ChangeResourceRecordSetsOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: sdkaws.String(p.HostedZoneID), ChangeBatch: batch})
		return err
	})
	if err != nil || out.ChangeInfo == nil {
		return ChangeResult{}, err
	}
	return ChangeResult{ChangeID: sdkaws.ToString(out.ChangeInfo.Id), Status: string(out.ChangeInfo.Status)}, nil
}

// WaitChangeParams name a Route 53 change to wait for.
type WaitChangeParams struct {
	ChangeID string
	// Interval between polls; 0 uses the client's PollInterval.
	Interval time.Duration
	Progress ProgressFunc
}

// Plan is the call each poll of WaitChange makes.
func (p WaitChangeParams) Plan() []PlannedCall {
	return one(call("route53 GetChange", "Id", p.ChangeID))
}

// WaitChange polls route53 GetChange until the change is INSYNC (every
// Route 53 name server answers with it).
func (c *Client) WaitChange(ctx context.Context, p WaitChangeParams) error {
	return c.poll(ctx, "Route 53 change "+p.ChangeID, WaitParams{ID: p.ChangeID, Interval: p.Interval, Progress: p.Progress},
		func(ctx context.Context) (string, string, error) {
			var out *route53.GetChangeOutput
			err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
				var err error
				out, err = c.r53.GetChange(ctx, &route53.GetChangeInput{Id: sdkaws.String(p.ChangeID)})
				return err
			})
			if err != nil || out.ChangeInfo == nil {
				return "", "", err
			}
			status := string(out.ChangeInfo.Status)
			if status == string(r53types.ChangeStatusInsync) {
				status = "available" // poll's notion of done
			}
			return status, "", nil
		}, nil)
}

// LookupRecordParams name a DNS record.
type LookupRecordParams struct {
	HostedZoneID string
	Name         string
	Type         string // default "CNAME"
}

// Plan is the call LookupRecord makes.
func (p LookupRecordParams) Plan() []PlannedCall {
	return one(call("route53 ListResourceRecordSets", "HostedZoneId", p.HostedZoneID, "StartRecordName", p.Name,
		"StartRecordType", or(p.Type, "CNAME"), "MaxItems", "1"))
}

// LookupRecordResult is the record as Route 53 holds it.
type LookupRecordResult struct {
	Found  bool
	Type   string
	Values []string
	TTL    int64
}

// LookupRecord reads one record set (route53 ListResourceRecordSets starting
// at the name and type): whether DNS points at green already, and what a
// switch must put back.
func (c *Client) LookupRecord(ctx context.Context, p LookupRecordParams) (LookupRecordResult, error) {
	typ := or(p.Type, "CNAME")
	var out *route53.ListResourceRecordSetsOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.r53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
			HostedZoneId:    sdkaws.String(p.HostedZoneID),
			StartRecordName: sdkaws.String(p.Name),
			StartRecordType: r53types.RRType(typ),
			MaxItems:        sdkaws.Int32(1),
		})
		return err
	})
	if err != nil {
		return LookupRecordResult{}, err
	}
	var res LookupRecordResult
	for _, rs := range out.ResourceRecordSets {
		if !SameName(sdkaws.ToString(rs.Name), p.Name) || string(rs.Type) != typ {
			continue
		}
		res.Found, res.Type = true, typ
		res.TTL = sdkaws.ToInt64(rs.TTL)
		for _, r := range rs.ResourceRecords {
			res.Values = append(res.Values, sdkaws.ToString(r.Value))
		}
	}
	return res, nil
}

// SameName compares DNS names ignoring case and the final dot, which Route
// 53 always adds.
func SameName(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}
