package aws_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
)

func TestErrorsAreOneReadableLinePerClass(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault awstest.Fault
		kind  aws.Kind
		want  string
	}{
		{"access denied", awstest.Fault{Code: "AccessDenied", Status: 403, Message: "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: rds:RestoreDBClusterToPointInTime"},
			aws.KindAccessDenied,
			"rds RestoreDBClusterToPointInTime: access denied (AccessDenied): User: arn:aws:iam::123456789012:user/ops is not authorized to perform: rds:RestoreDBClusterToPointInTime; check the IAM policy of the profile in use"},
		{"invalid state", awstest.Fault{Code: "InvalidDBClusterStateFault", Message: "DbCluster blue is not in available state."},
			aws.KindInvalidState,
			"rds RestoreDBClusterToPointInTime: invalid state (InvalidDBClusterStateFault): DbCluster blue is not in available state; the resource is busy or in the wrong state; wait until it is available and retry"},
		{"not found", awstest.Fault{Code: "DBClusterNotFoundFault", Status: 404, Message: "DBCluster blue not found."},
			aws.KindNotFound,
			"rds RestoreDBClusterToPointInTime: not found (DBClusterNotFoundFault): DBCluster blue not found; check the identifier in the config, and that the region and profile in use are the right account"},
		{"throttled after retries", awstest.Fault{Code: "Throttling", Message: "Rate exceeded"},
			aws.KindThrottling,
			"rds RestoreDBClusterToPointInTime: throttled (Throttling): Rate exceeded; AWS is throttling this account's API calls; wait a minute and retry"},
		{"expired session", awstest.Fault{Code: "ExpiredToken", Message: "The security token included in the request is expired"},
			aws.KindCredentials,
			"rds RestoreDBClusterToPointInTime: no usable credentials (ExpiredToken): The security token included in the request is expired; the session has expired; refresh it (aws sso login) and retry"},
		{"other", awstest.Fault{Code: "StorageQuotaExceeded", Message: "The request cannot be processed\nbecause it would exceed the quota."},
			aws.KindOther,
			"rds RestoreDBClusterToPointInTime: failed (StorageQuotaExceeded): The request cannot be processed because it would exceed the quota"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.seedAurora()
			f.srv.Fail("RestoreDBClusterToPointInTime", tc.fault)
			_, err := f.c.RestoreClone(f.ctx, cloneParams())
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
			if aws.KindOf(err) != tc.kind {
				t.Errorf("kind %v, want %v", aws.KindOf(err), tc.kind)
			}
			var e *aws.Error
			if !errors.As(err, &e) || e.Code != tc.fault.Code || e.Call != "rds RestoreDBClusterToPointInTime" {
				t.Errorf("errors.As: %+v", e)
			}
			// The journal saw the same translated error for the call.
			last := f.j.entries[len(f.j.entries)-1]
			if last.call != "rds RestoreDBClusterToPointInTime" || last.err == nil || last.err.Error() != tc.want {
				t.Errorf("journal's last entry %s: %v", last.call, last.err)
			}
		})
	}
}

func TestThrottlingIsRetriedBySDK(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()
	f.srv.Fail("DescribeDBClusters", awstest.Fault{Code: "Throttling", Message: "Rate exceeded", Times: 2})
	cl, err := f.c.DescribeCluster(f.ctx, aws.DescribeClusterParams{ClusterID: "blue"})
	if err != nil || cl.ID != "blue" {
		t.Fatalf("DescribeCluster after 2 throttles: %+v, %v", cl, err)
	}
	if n := f.srv.Count("DescribeDBClusters"); n != 3 {
		t.Errorf("%d attempts, want 3 (two throttled, one answered)", n)
	}
	if calls := f.j.calls(); len(calls) != 1 {
		t.Errorf("journal has %d entries for one call with retries: %v", len(calls), calls)
	}
}

func TestWaitOutlastsThrottling(t *testing.T) {
	f := newFixture(t)
	f.seedAurora()
	// Four throttles: the first poll's three attempts all fail, the second
	// poll's first attempt too; the wait goes on and succeeds.
	f.srv.Fail("DescribeDBClusters", awstest.Fault{Code: "Throttling", Times: 4})
	if _, err := f.c.WaitClusterAvailable(f.ctx, aws.WaitParams{ID: "blue"}); err != nil {
		t.Fatalf("wait: %v", err)
	}
}

func TestWaitStopsWhenContextEnds(t *testing.T) {
	f := newFixture(t)
	f.srv.Ticks = 1 << 30 // creating for ever
	f.seedAurora()
	if _, err := f.c.RestoreClone(f.ctx, cloneParams()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	var seen int
	_, err := f.c.WaitClusterAvailable(ctx, aws.WaitParams{ID: "green", Progress: func(status string, _ time.Duration) {
		if seen++; seen == 3 {
			cancel()
		}
	}})
	if aws.KindOf(err) != aws.KindCanceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if !strings.HasPrefix(err.Error(), "wait DB cluster green: canceled") {
		t.Errorf("message %q", err)
	}
}

func TestOptionsEndpointAndCredentials(t *testing.T) {
	srv := awstest.New(t)
	srv.AddCluster(awstest.Cluster{ID: "blue", EngineVersion: "15.4"})
	// No AWS_* environment from the fake: only Options point at it.
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_ENDPOINT_URL", "")
	c, err := aws.New(context.Background(), aws.Options{
		Region: "eu-west-1", Endpoint: srv.URL,
		Credentials: srv.Credentials(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Region() != "eu-west-1" {
		t.Errorf("region %q", c.Region())
	}
	if _, err := c.DescribeCluster(context.Background(), aws.DescribeClusterParams{ClusterID: "blue"}); err != nil {
		t.Fatalf("DescribeCluster: %v", err)
	}
}

func TestPerServiceEndpointVariable(t *testing.T) {
	f := newFixture(t) // AWS_ENDPOINT_URL points at f.srv
	other := awstest.New(t)
	arn := other.AddSecret("only-on-the-other", "pw")
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", other.URL)
	c, err := aws.New(f.ctx, aws.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(f.ctx, aws.GetSecretParams{SecretID: arn}); err != nil {
		t.Fatalf("GetSecret through AWS_ENDPOINT_URL_SECRETS_MANAGER: %v", err)
	}
	if other.Count("GetSecretValue") != 1 || f.srv.Count("GetSecretValue") != 0 {
		t.Errorf("secret calls: other %d, main %d", other.Count("GetSecretValue"), f.srv.Count("GetSecretValue"))
	}
}

func TestMissingCredentialsSayHowToFix(t *testing.T) {
	f := newFixture(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	c, err := aws.New(f.ctx, aws.Options{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeCluster(f.ctx, aws.DescribeClusterParams{ClusterID: "blue"})
	if aws.KindOf(err) != aws.KindCredentials || !strings.Contains(err.Error(), "AWS_PROFILE") {
		t.Fatalf("err = %v", err)
	}
	if f.srv.Count("DescribeDBClusters") != 0 {
		t.Error("an unsigned request reached the server")
	}
}

func TestNoRegionIsAConfigurationError(t *testing.T) {
	f := newFixture(t)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	_, err := aws.New(f.ctx, aws.Options{})
	if err == nil || !strings.Contains(err.Error(), "no region set; set AWS_REGION") {
		t.Fatalf("err = %v", err)
	}
	_, err = aws.New(f.ctx, aws.Options{Profile: "does-not-exist"})
	if err == nil || !strings.Contains(err.Error(), `profile "does-not-exist"`) {
		t.Fatalf("unknown profile: %v", err)
	}
}
