// Package aws is everything pgbluegreen says to AWS: RDS and Aurora (parameter
// groups, clones, upgrades, snapshots, log files), Secrets Manager, SSM
// Parameter Store and Route 53, through aws-sdk-go-v2.
//
// It knows nothing of steps: each operation is one method taking a ...Params
// struct and returning a result struct. Every API call is bounded by the
// caller's context (plus a per-call timeout), reported to an optional journal
// hook, and its error is translated once, here, into one readable line that
// names the call and says what to do (see Error).
package aws

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// CallReport is one AWS API call as it was made, what the Journal hook
// receives: the call with its parameters in the order a plan shows them
// (Call.String() is the very line a step's plan and dry run print, a
// secret value shown as "(secret)"), how long it took (retries included)
// and the translated error, or nil.
type CallReport struct {
	Call     PlannedCall
	Duration time.Duration
	Err      error
}

// Options configure a Client. The zero value uses the SDK's default chain for
// region and credentials (environment, shared config and SSO, instance role).
type Options struct {
	// Region overrides the region from the environment and profile.
	Region string
	// Profile selects a shared config profile (like --profile / AWS_PROFILE).
	Profile string
	// Endpoint, when set, sends every service's calls to this URL. Without it
	// the SDK's own overrides apply: AWS_ENDPOINT_URL for all services and
	// AWS_ENDPOINT_URL_RDS, _SECRETS_MANAGER, _SSM, _ROUTE_53 per service.
	// Meant for tests and local fakes (aws/awstest).
	Endpoint string
	// Credentials replaces the default credential chain (tests: static keys).
	Credentials sdkaws.CredentialsProvider
	// Journal, when set, is told of every API call (reads and writes) with
	// the caller's context, so a journal can name what the call was made
	// for (a step). A client without it journals nothing: what a dry run uses.
	Journal func(ctx context.Context, r CallReport)
	// CallTimeout bounds each API call, retries included. Default 2 minutes.
	CallTimeout time.Duration
	// PollInterval is the default interval of the Wait functions. Default 15 s.
	PollInterval time.Duration
	// MaxAttempts is the SDK's attempts per call (throttling and 5xx are
	// retried). Default: the SDK's (3).
	MaxAttempts int
	// MaxBackoff caps the wait between retries. Default: the SDK's (20 s).
	MaxBackoff time.Duration
}

// Client talks to RDS, Secrets Manager, SSM and Route 53 in one account and
// region. It is safe for concurrent use.
type Client struct {
	rds       *rds.Client
	secrets   *secretsmanager.Client
	ssm       *ssm.Client
	r53       *route53.Client
	region    string
	creds     sdkaws.CredentialsProvider
	journal   func(ctx context.Context, r CallReport)
	timeout   time.Duration
	pollEvery time.Duration
}

// Default timings, chosen for real AWS: RDS operations take minutes, so a
// 15 s poll is frequent enough for a progress display without burning the
// account's API rate.
const (
	DefaultCallTimeout  = 2 * time.Minute
	DefaultPollInterval = 15 * time.Second
)

// New loads the AWS configuration (config.LoadDefaultConfig with the options
// above) and builds the service clients. It makes no API call.
func New(ctx context.Context, opts Options) (*Client, error) {
	var load []func(*config.LoadOptions) error
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(opts.Profile))
	}
	if opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(opts.Credentials))
	}
	if opts.Endpoint != "" {
		load = append(load, config.WithBaseEndpoint(opts.Endpoint))
	}
	if opts.MaxAttempts > 0 || opts.MaxBackoff > 0 {
		load = append(load, config.WithRetryer(func() sdkaws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				if opts.MaxAttempts > 0 {
					o.MaxAttempts = opts.MaxAttempts
				}
				if opts.MaxBackoff > 0 {
					o.MaxBackoff = opts.MaxBackoff
				}
			})
		}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration (profile %q): %w; check AWS_PROFILE, ~/.aws/config and the --profile flag", opts.Profile, err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("load AWS configuration: no region set; set AWS_REGION, a region in the profile, or the region in the config")
	}
	c := &Client{
		rds:       rds.NewFromConfig(cfg),
		secrets:   secretsmanager.NewFromConfig(cfg),
		ssm:       ssm.NewFromConfig(cfg),
		r53:       route53.NewFromConfig(cfg),
		region:    cfg.Region,
		creds:     cfg.Credentials,
		journal:   opts.Journal,
		timeout:   opts.CallTimeout,
		pollEvery: opts.PollInterval,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultCallTimeout
	}
	if c.pollEvery <= 0 {
		c.pollEvery = DefaultPollInterval
	}
	return c, nil
}

// Region is the region the client's calls go to.
func (c *Client) Region() string { return c.region }

// CredentialsAvailable resolves the credentials the client would sign with
// (environment, profile, SSO cache, instance role), making no API call, and
// says why there are none: a dry run without credentials plans offline
// instead of failing on its first describe.
func (c *Client) CredentialsAvailable(ctx context.Context) error {
	if c.creds == nil {
		return errors.New("no AWS credentials configured")
	}
	if _, err := c.creds.Retrieve(ctx); err != nil {
		return translate("AWS credentials", err)
	}
	return nil
}

// call runs one API call under the per-call timeout, translates its error and
// reports it to the journal. Every SDK call in this package goes through it
// with the PlannedCall its Params' Plan() shows, so no error escapes
// untranslated, no call escapes the journal, and what is journaled is what
// the plan showed.
func (c *Client) call(ctx context.Context, pc PlannedCall, fn func(ctx context.Context) error) error {
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := time.Now()
	err := fn(callCtx)
	if err != nil {
		err = translate(pc.Call, err)
	}
	if c.journal != nil {
		c.journal(ctx, CallReport{Call: pc, Duration: time.Since(start), Err: err})
	}
	return err
}
