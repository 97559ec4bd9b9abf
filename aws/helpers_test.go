package aws_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
)

// journalEntry is one report to the Journal hook.
type journalEntry struct {
	call   string
	text   string // the PlannedCall's line, as a plan shows it
	params map[string]string
	err    error
}

type journal struct {
	mu      sync.Mutex
	entries []journalEntry
}

func (j *journal) record(_ context.Context, r aws.CallReport) {
	j.mu.Lock()
	defer j.mu.Unlock()
	params := map[string]string{}
	for _, p := range r.Call.Params {
		if !p.Secret {
			params[p.Key] = p.Value
		}
	}
	j.entries = append(j.entries, journalEntry{r.Call.Call, r.Call.String(), params, r.Err})
}

func (j *journal) calls() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, e := range j.entries {
		out = append(out, e.call)
	}
	return out
}

// fixture is a fake AWS and a real client pointed at it through the SDK's
// own AWS_ENDPOINT_URL override.
type fixture struct {
	srv *awstest.Server
	c   *aws.Client
	j   *journal
	ctx context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := awstest.New(t)
	srv.Env(t)
	j := &journal{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := aws.New(ctx, aws.Options{
		Journal:      j.record,
		PollInterval: time.Millisecond,
		MaxBackoff:   time.Millisecond,
	})
	if err != nil {
		t.Fatalf("aws.New: %v", err)
	}
	return &fixture{srv: srv, c: c, j: j, ctx: ctx}
}

// seedAurora is blue: an Aurora PostgreSQL 15 cluster with a writer and a
// reader, its cluster parameter group, in a subnet group with two security
// groups; and green's parameter groups for 16.
func (f *fixture) seedAurora() {
	f.srv.AddParameterGroup(awstest.ParameterGroup{Name: "blue-cluster-pg15", Cluster: true})
	f.srv.AddParameterGroup(awstest.ParameterGroup{Name: "cpg-16", Cluster: true, Family: "aurora-postgresql16", Values: map[string]string{"rds.logical_replication": "1"}})
	f.srv.AddParameterGroup(awstest.ParameterGroup{Name: "ipg-16", Family: "aurora-postgresql16"})
	f.srv.AddCluster(awstest.Cluster{
		ID: "blue", EngineVersion: "15.4", ParameterGroup: "blue-cluster-pg15",
		SubnetGroup: "blue-subnets", SecurityGroupIDs: []string{"sg-111", "sg-222"},
	})
	f.srv.AddInstance(awstest.Instance{ID: "blue-writer", ClusterID: "blue", Class: "db.r6g.large"})
	f.srv.AddInstance(awstest.Instance{ID: "blue-reader", ClusterID: "blue", Class: "db.r6g.large"})
}

// progress records the statuses a wait reports.
type progress struct {
	mu       sync.Mutex
	statuses []string
}

func (p *progress) fn(status string, _ time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.statuses = append(p.statuses, status)
}

func (p *progress) String() string { return strings.Join(p.statuses, ",") }

// want fails the test when got differs from want for key in params.
func wantParams(t *testing.T, what string, params map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := params[k]; !ok || got != v {
			t.Errorf("%s: param %s = %q (present %v), want %q", what, k, got, ok, v)
		}
	}
}

// only returns the single request for action, failing if there is not one.
func only(t *testing.T, srv *awstest.Server, action string) awstest.Request {
	t.Helper()
	calls := srv.Calls(action)
	if len(calls) != 1 {
		t.Fatalf("%s called %d times, want 1", action, len(calls))
	}
	return calls[0]
}
