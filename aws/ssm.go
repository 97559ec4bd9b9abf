package aws

import (
	"context"
	"errors"
	"strconv"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// PutParameterParams describe an SSM parameter to write (overwriting).
type PutParameterParams struct {
	Name  string
	Value string
	// Type is "String" (default), "StringList" or "SecureString".
	Type string
}

// Plan is the call PutParameter makes; a SecureString's value is hidden.
func (p PutParameterParams) Plan() []PlannedCall {
	typ := or(p.Type, "String")
	c := call("ssm PutParameter", "Name", p.Name)
	if typ == "SecureString" {
		c.addSecret("Value", p.Value)
	} else {
		c.add("Value", p.Value)
	}
	c.add("Type", typ)
	c.add("Overwrite", "true")
	return one(c)
}

// PutParameterResult is the parameter's new version.
type PutParameterResult struct {
	Version int64
}

// PutParameter writes an SSM parameter, overwriting any value (ssm
// PutParameter, Overwrite=true): a new version, the older ones kept in the
// parameter's history. A SecureString's value is never journaled.
func (c *Client) PutParameter(ctx context.Context, p PutParameterParams) (PutParameterResult, error) {
	if p.Name == "" {
		return PutParameterResult{}, errors.New("put parameter: the name is required")
	}
	typ := or(p.Type, string(ssmtypes.ParameterTypeString))
	var out *ssm.PutParameterOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
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
	// Version, when set, reads that version from the parameter's history
	// (the "name:version" selector): how a switch is undone.
	Version int64
	// Decrypt decrypts a SecureString.
	Decrypt bool
}

func (p GetParameterParams) selector() string {
	if p.Version > 0 {
		return p.Name + ":" + strconv.FormatInt(p.Version, 10)
	}
	return p.Name
}

// Plan is the call GetParameter makes.
func (p GetParameterParams) Plan() []PlannedCall {
	return one(call("ssm GetParameter", "Name", p.selector(), "WithDecryption", boolText(p.Decrypt)))
}

// GetParameterResult is the parameter read. Value must not be logged for a
// SecureString.
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
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: sdkaws.String(p.selector()), WithDecryption: sdkaws.Bool(p.Decrypt)})
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

// FindParameter is GetParameter reporting a missing parameter as found=false.
func (c *Client) FindParameter(ctx context.Context, p GetParameterParams) (GetParameterResult, bool, error) {
	r, err := c.GetParameter(ctx, p)
	if IsNotFound(err) {
		return GetParameterResult{}, false, nil
	}
	return r, err == nil, err
}

// DeleteParameterParams name an SSM parameter to delete.
type DeleteParameterParams struct {
	Name string
}

// Plan is the call DeleteParameter makes.
func (p DeleteParameterParams) Plan() []PlannedCall {
	return one(call("ssm DeleteParameter", "Name", p.Name))
}

// DeleteParameterResult says whether there was something to delete.
type DeleteParameterResult struct {
	Deleted bool
}

// DeleteParameter deletes an SSM parameter and its history (ssm
// DeleteParameter). A parameter that does not exist is not an error
// (Deleted=false): the goal is its absence.
func (c *Client) DeleteParameter(ctx context.Context, p DeleteParameterParams) (DeleteParameterResult, error) {
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
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
