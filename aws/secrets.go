package aws

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// The secret's version stages Secrets Manager moves on each new value.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
)

// PutSecretParams describe a new value for a Secrets Manager secret.
type PutSecretParams struct {
	// SecretID is the secret's name or ARN.
	SecretID string
	// Value is the new SecretString. It is never shown or journaled.
	Value string
}

// Plan is the call PutSecret makes, the value shown as "(secret)".
func (p PutSecretParams) Plan() []PlannedCall {
	c := call("secretsmanager PutSecretValue", "SecretId", p.SecretID)
	c.addSecret("SecretString", p.Value)
	return one(c)
}

// PutSecretResult identifies the version written.
type PutSecretResult struct {
	ARN       string
	Name      string
	VersionID string
}

// PutSecret writes a new current version of a secret (secretsmanager
// PutSecretValue): AWSCURRENT moves to it, AWSPREVIOUS to the version that
// was current. How an application's connection settings are switched; the
// journal gets the secret's ID, never its value.
func (c *Client) PutSecret(ctx context.Context, p PutSecretParams) (PutSecretResult, error) {
	if p.SecretID == "" {
		return PutSecretResult{}, errors.New("put secret: the secret name or ARN is required")
	}
	var out *secretsmanager.PutSecretValueOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
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

// GetSecretParams name a secret to read, and which version: the current
// one unless VersionID or VersionStage says otherwise.
type GetSecretParams struct {
	// SecretID is the secret's name or ARN.
	SecretID     string
	VersionID    string
	VersionStage string
}

// Plan is the call GetSecret makes.
func (p GetSecretParams) Plan() []PlannedCall {
	c := call("secretsmanager GetSecretValue", "SecretId", p.SecretID)
	c.addIf("VersionId", p.VersionID)
	c.addIf("VersionStage", p.VersionStage)
	return one(c)
}

// GetSecretResult is a secret's version. Value must not be logged.
type GetSecretResult struct {
	ARN       string
	Name      string
	VersionID string
	Stages    []string
	Value     string
}

// GetSecret reads a secret's SecretString (secretsmanager GetSecretValue).
func (c *Client) GetSecret(ctx context.Context, p GetSecretParams) (GetSecretResult, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: sdkaws.String(p.SecretID)}
	if p.VersionID != "" {
		in.VersionId = sdkaws.String(p.VersionID)
	}
	if p.VersionStage != "" {
		in.VersionStage = sdkaws.String(p.VersionStage)
	}
	var out *secretsmanager.GetSecretValueOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.secrets.GetSecretValue(ctx, in)
		return err
	})
	if err != nil {
		return GetSecretResult{}, err
	}
	return GetSecretResult{
		ARN:       sdkaws.ToString(out.ARN),
		Name:      sdkaws.ToString(out.Name),
		VersionID: sdkaws.ToString(out.VersionId),
		Stages:    out.VersionStages,
		Value:     sdkaws.ToString(out.SecretString),
	}, nil
}

// MoveStageParams move a version stage of a secret from one version to
// another: AWSCURRENT back to the version a switch replaced.
type MoveStageParams struct {
	SecretID string
	Stage    string
	// MoveTo is the version that gets the stage; RemoveFrom the version
	// that has it now (Secrets Manager refuses a move that does not name it).
	MoveTo, RemoveFrom string
}

// Plan is the call MoveStage makes.
func (p MoveStageParams) Plan() []PlannedCall {
	return one(call("secretsmanager UpdateSecretVersionStage", "SecretId", p.SecretID, "VersionStage", p.Stage,
		"MoveToVersionId", p.MoveTo, "RemoveFromVersionId", p.RemoveFrom))
}

// MoveStage moves a version stage (secretsmanager UpdateSecretVersionStage).
// Moving AWSCURRENT puts AWSPREVIOUS on the version it left: a switch is
// undone without writing the old value again (the tool never holds it).
func (c *Client) MoveStage(ctx context.Context, p MoveStageParams) error {
	if p.SecretID == "" || p.Stage == "" || p.MoveTo == "" || p.RemoveFrom == "" {
		return errors.New("move secret stage: the secret, the stage and both versions are required")
	}
	return c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		_, err := c.secrets.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: sdkaws.String(p.SecretID), VersionStage: sdkaws.String(p.Stage),
			MoveToVersionId: sdkaws.String(p.MoveTo), RemoveFromVersionId: sdkaws.String(p.RemoveFrom)})
		return err
	})
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
