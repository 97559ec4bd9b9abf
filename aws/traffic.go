package aws

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// PutSecretParams describe a new value for a Secrets Manager secret.
type PutSecretParams struct {
	// SecretID is the secret's name or ARN.
	SecretID string
	// Value is the new SecretString. It is never journaled.
	Value string
}

// PutSecretResult identifies the version written.
type PutSecretResult struct {
	ARN       string
	Name      string
	VersionID string
}

// PutSecret writes a new current version of a secret (secretsmanager
// PutSecretValue): how an application's connection settings are switched
// from blue to green. The journal gets the secret's ID, never its value.
func (c *Client) PutSecret(ctx context.Context, p PutSecretParams) (PutSecretResult, error) {
	if p.SecretID == "" {
		return PutSecretResult{}, errors.New("put secret: the secret name or ARN is required")
	}
	var out *secretsmanager.PutSecretValueOutput
	err := c.do(ctx, putSecretCall(p), func(ctx context.Context) error {
		var err error
		out, err = c.secrets.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId:     sdkaws.String(p.SecretID),
			SecretString: sdkaws.String(p.Value),
		})
		return err
	})
	if err != nil {
		return PutSecretResult{}, err
	}
	return PutSecretResult{ARN: sdkaws.ToString(out.ARN), Name: sdkaws.ToString(out.Name), VersionID: sdkaws.ToString(out.VersionId)}, nil
}

// GetSecretParams name a secret to read.
type GetSecretParams struct {
	// SecretID is the secret's name or ARN.
	SecretID string
}

// GetSecretResult is a secret's current value. Value must not be logged.
type GetSecretResult struct {
	ARN       string
	Name      string
	VersionID string
	Value     string
}

// GetSecret reads a secret's current SecretString (secretsmanager
// GetSecretValue).
func (c *Client) GetSecret(ctx context.Context, p GetSecretParams) (GetSecretResult, error) {
	var out *secretsmanager.GetSecretValueOutput
	err := c.call(ctx, "secretsmanager GetSecretValue", map[string]string{"SecretId": p.SecretID}, func(ctx context.Context) error {
		var err error
		out, err = c.secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: sdkaws.String(p.SecretID)})
		return err
	})
	if err != nil {
		return GetSecretResult{}, err
	}
	return GetSecretResult{
		ARN:       sdkaws.ToString(out.ARN),
		Name:      sdkaws.ToString(out.Name),
		VersionID: sdkaws.ToString(out.VersionId),
		Value:     sdkaws.ToString(out.SecretString),
	}, nil
}

// Password reads a secret holding a password: the "password" field of a JSON
// secret ({"username": ..., "password": ...}, as RDS and most tools store
// them), or the whole value when it is not a JSON object.
func (c *Client) Password(ctx context.Context, p GetSecretParams) (string, error) {
	s, err := c.GetSecret(ctx, p)
	if err != nil {
		return "", err
	}
	pw, err := SecretPassword(s.Value)
	if err != nil {
		return "", errors.New("secret " + p.SecretID + ": " + err.Error())
	}
	return pw, nil
}

// SecretPassword extracts the password from a secret's value (see Password).
// Its errors never contain the value.
func SecretPassword(value string) (string, error) {
	trimmed := strings.TrimSpace(value)
	if !strings.HasPrefix(trimmed, "{") {
		if value == "" {
			return "", errors.New("the secret is empty")
		}
		return value, nil
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(trimmed), &fields); err != nil {
		return "", errors.New("the secret looks like JSON but does not parse; store {\"username\": ..., \"password\": ...} or the bare password")
	}
	pw, ok := fields["password"].(string)
	if !ok || pw == "" {
		return "", errors.New("the secret is a JSON object without a non-empty string field \"password\"")
	}
	return pw, nil
}

// PutParameterParams describe an SSM parameter to write (overwriting).
type PutParameterParams struct {
	Name  string
	Value string
	// Type is "String" (default), "StringList" or "SecureString".
	Type string
}

// PutParameterResult is the parameter's new version.
type PutParameterResult struct {
	Version int64
}

// PutParameter writes an SSM parameter, overwriting any value (ssm
// PutParameter, Overwrite=true). A SecureString's value is never journaled.
func (c *Client) PutParameter(ctx context.Context, p PutParameterParams) (PutParameterResult, error) {
	typ := or(p.Type, string(ssmtypes.ParameterTypeString))
	var out *ssm.PutParameterOutput
	err := c.do(ctx, putParameterCall(p), func(ctx context.Context) error {
		var err error
		out, err = c.ssm.PutParameter(ctx, &ssm.PutParameterInput{
			Name:      sdkaws.String(p.Name),
			Value:     sdkaws.String(p.Value),
			Type:      ssmtypes.ParameterType(typ),
			Overwrite: sdkaws.Bool(true),
		})
		return err
	})
	if err != nil {
		return PutParameterResult{}, err
	}
	return PutParameterResult{Version: out.Version}, nil
}

// GetParameterParams name an SSM parameter to read.
type GetParameterParams struct {
	Name string
	// Decrypt decrypts a SecureString.
	Decrypt bool
}

// GetParameterResult is the parameter read.
type GetParameterResult struct {
	Name    string
	Value   string
	Type    string
	Version int64
}

// GetParameter reads an SSM parameter (ssm GetParameter). A missing one is an
// error of KindNotFound.
func (c *Client) GetParameter(ctx context.Context, p GetParameterParams) (GetParameterResult, error) {
	var out *ssm.GetParameterOutput
	err := c.call(ctx, "ssm GetParameter", map[string]string{"Name": p.Name, "WithDecryption": strconv.FormatBool(p.Decrypt)}, func(ctx context.Context) error {
		var err error
		out, err = c.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: sdkaws.String(p.Name), WithDecryption: sdkaws.Bool(p.Decrypt)})
		return err
	})
	if err != nil {
		return GetParameterResult{}, err
	}
	if out.Parameter == nil {
		return GetParameterResult{}, notFound("ssm GetParameter", "parameter "+p.Name)
	}
	return GetParameterResult{
		Name:    sdkaws.ToString(out.Parameter.Name),
		Value:   sdkaws.ToString(out.Parameter.Value),
		Type:    string(out.Parameter.Type),
		Version: out.Parameter.Version,
	}, nil
}

// DeleteParameterParams name an SSM parameter to delete.
type DeleteParameterParams struct {
	Name string
}

// DeleteParameterResult says whether there was something to delete.
type DeleteParameterResult struct {
	Deleted bool
}

// DeleteParameter deletes an SSM parameter (ssm DeleteParameter). A parameter
// that does not exist is not an error (Deleted=false): the goal is its absence.
func (c *Client) DeleteParameter(ctx context.Context, p DeleteParameterParams) (DeleteParameterResult, error) {
	err := c.do(ctx, deleteParameterCall(p), func(ctx context.Context) error {
		_, err := c.ssm.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: sdkaws.String(p.Name)})
		return err
	})
	if IsNotFound(err) {
		return DeleteParameterResult{}, nil
	}
	if err != nil {
		return DeleteParameterResult{}, err
	}
	return DeleteParameterResult{Deleted: true}, nil
}

// UpsertCNAMEParams describe a DNS switch: the CNAME Name points at Target.
type UpsertCNAMEParams struct {
	HostedZoneID string
	Name         string // "db.example.com"
	Target       string // green's endpoint
	// TTL in seconds; 0 means 60.
	TTL     int64
	Comment string
}

// UpsertCNAMEResult identifies the Route 53 change.
type UpsertCNAMEResult struct {
	ChangeID string
	Status   string // "PENDING" or "INSYNC"
}

// UpsertCNAME creates or replaces a CNAME record (route53
// ChangeResourceRecordSets, UPSERT). Wait with WaitChange for INSYNC.
func (c *Client) UpsertCNAME(ctx context.Context, p UpsertCNAMEParams) (UpsertCNAMEResult, error) {
	if p.HostedZoneID == "" || p.Name == "" || p.Target == "" {
		return UpsertCNAMEResult{}, errors.New("upsert CNAME: the hosted zone, the record name and the target are all required")
	}
	ttl := cnameTTL(p.TTL)
	batch := &r53types.ChangeBatch{Changes: []r53types.Change{{
		Action: r53types.ChangeActionUpsert,
		ResourceRecordSet: &r53types.ResourceRecordSet{
			Name:            sdkaws.String(p.Name),
			Type:            r53types.RRTypeCname,
			TTL:             sdkaws.Int64(ttl),
			ResourceRecords: []r53types.ResourceRecord{{Value: sdkaws.String(p.Target)}},
		},
	}}}
	if p.Comment != "" {
		batch.Comment = sdkaws.String(p.Comment)
	}
	var out *route53.ChangeResourceRecordSetsOutput
	err := c.do(ctx, upsertCNAMECall(p), func(ctx context.Context) error {
		var err error
		out, err = c.r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: sdkaws.String(p.HostedZoneID), ChangeBatch: batch})
		return err
	})
	if err != nil {
		return UpsertCNAMEResult{}, err
	}
	if out.ChangeInfo == nil {
		return UpsertCNAMEResult{}, nil
	}
	return UpsertCNAMEResult{ChangeID: sdkaws.ToString(out.ChangeInfo.Id), Status: string(out.ChangeInfo.Status)}, nil
}

// WaitChangeParams name a Route 53 change to wait for.
type WaitChangeParams struct {
	ChangeID string
	// Interval between polls; 0 uses the client's PollInterval.
	Interval time.Duration
	Progress ProgressFunc
}

// WaitChange polls route53 GetChange until the change is INSYNC (every
// Route 53 name server answers with it).
func (c *Client) WaitChange(ctx context.Context, p WaitChangeParams) error {
	return c.poll(ctx, "Route 53 change "+p.ChangeID, WaitParams{ID: p.ChangeID, Interval: p.Interval, Progress: p.Progress},
		func(ctx context.Context) (string, string, error) {
			var out *route53.GetChangeOutput
			err := c.call(ctx, "route53 GetChange", map[string]string{"Id": p.ChangeID}, func(ctx context.Context) error {
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

// LookupRecordResult is the record as Route 53 holds it.
type LookupRecordResult struct {
	Found  bool
	Values []string
	TTL    int64
}

// LookupRecord reads one record set (route53 ListResourceRecordSets starting
// at the name and type), so a step can check whether DNS points at green
// already.
func (c *Client) LookupRecord(ctx context.Context, p LookupRecordParams) (LookupRecordResult, error) {
	typ := or(p.Type, "CNAME")
	var out *route53.ListResourceRecordSetsOutput
	err := c.call(ctx, "route53 ListResourceRecordSets", map[string]string{"HostedZoneId": p.HostedZoneID, "StartRecordName": p.Name, "StartRecordType": typ}, func(ctx context.Context) error {
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
		if !sameName(sdkaws.ToString(rs.Name), p.Name) || string(rs.Type) != typ {
			continue
		}
		res.Found = true
		res.TTL = sdkaws.ToInt64(rs.TTL)
		for _, r := range rs.ResourceRecords {
			res.Values = append(res.Values, sdkaws.ToString(r.Value))
		}
	}
	return res, nil
}

// sameName compares DNS names ignoring case and the final dot, which Route 53
// always adds.
func sameName(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}
