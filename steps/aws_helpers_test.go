package steps

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// The AWS steps' test harness: a lab (real PostgreSQL: blue's slots, the
// seed's validation) and the fake AWS of aws/awstest, reached by the real
// SDK clients through an explicit endpoint, every call captured with the
// step its context ran for.

// apiCall is one call the aws package reported.
type apiCall struct {
	step, call string
	text       string // the call's line, as the journal and a plan show it
	params     map[string]string
	err        error
}

type apiLog struct {
	mu    sync.Mutex
	calls []apiCall
}

func (l *apiLog) record(ctx context.Context, r aws.CallReport) {
	l.mu.Lock()
	defer l.mu.Unlock()
	params := map[string]string{}
	for _, p := range r.Call.Params {
		if !p.Secret {
			params[p.Key] = p.Value
		}
	}
	l.calls = append(l.calls, apiCall{StepFromContext(ctx), r.Call.Call, r.Call.String(), params, r.Err})
}

// of returns the calls made for one step, in order.
func (l *apiLog) of(step string) []apiCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []apiCall
	for _, c := range l.calls {
		if c.step == step {
			out = append(out, c)
		}
	}
	return out
}

// names lists the calls of a step without the polls of a wait (repeated
// describes collapse into one), as the report lists them.
func names(calls []apiCall) []string {
	var out []string
	for _, c := range calls {
		if len(out) > 0 && out[len(out)-1] == c.call && strings.Contains(c.call, "Describe") {
			continue
		}
		out = append(out, c.call)
	}
	return out
}

// newAWSClient is a real client on the fake, polling every millisecond.
func newAWSClient(t *testing.T, srv *awstest.Server, l *apiLog, poll time.Duration) *aws.Client {
	t.Helper()
	c, err := aws.New(context.Background(), aws.Options{
		Region: awstest.Region, Endpoint: srv.URL, Credentials: srv.Credentials(),
		Journal: l.record, PollInterval: poll, MaxBackoff: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newAWSClientJournal is newAWSClient whose calls are also journaled into
// j as main.go journals them (kind "api", the call's line, its step).
func newAWSClientJournal(t *testing.T, srv *awstest.Server, l *apiLog, poll time.Duration, j *state.Journal) *aws.Client {
	t.Helper()
	c, err := aws.New(context.Background(), aws.Options{
		Region: awstest.Region, Endpoint: srv.URL, Credentials: srv.Credentials(),
		PollInterval: poll, MaxBackoff: time.Millisecond,
		Journal: func(ctx context.Context, r aws.CallReport) {
			l.record(ctx, r)
			e := state.Entry{Step: StepFromContext(ctx), Target: "aws", Kind: "api", Text: state.Redact(r.Call.String()), Duration: r.Duration, Outcome: "ok"}
			if r.Err != nil {
				e.Outcome, e.Error = "error", state.Redact(r.Err.Error())
			}
			_ = j.Append(e)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newDryRunClient is a client on the fake that journals nothing: what
// main.go gives a --dry-run session.
func newDryRunClient(t *testing.T, srv *awstest.Server) *aws.Client {
	t.Helper()
	c, err := aws.New(context.Background(), aws.Options{
		Region: awstest.Region, Endpoint: srv.URL, Credentials: srv.Credentials(), PollInterval: time.Millisecond, MaxBackoff: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantParams fails unless the request carries every wanted parameter.
func wantParams(t *testing.T, r awstest.Request, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := r.Params[k]; !ok || got != v {
			t.Errorf("%s %s: %s = %q, want %q", r.Service, r.Action, k, got, v)
		}
	}
}

// onlyCall returns the single request of an action, failing on any other count.
func onlyCall(t *testing.T, srv *awstest.Server, action string) awstest.Request {
	t.Helper()
	calls := srv.Calls(action)
	if len(calls) != 1 {
		t.Fatalf("%s was called %d times, want once", action, len(calls))
	}
	return calls[0]
}

// skipSQL marks the SQL steps this test does not exercise skipped, through
// the runner (journaled, as `pgbluegreen skip` does).
func skipSQL(t *testing.T, r *Runner, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := r.Skip(id, "SQL step, tested by the copy and clone end-to-end tests; this test runs the AWS steps"); err != nil {
			t.Fatalf("skip %s: %v", id, err)
		}
	}
}

// runStep runs one step with confirmation and, when override is set, past
// the ordering checks (the SQL steps between are not part of the test).
func runStep(t *testing.T, r *Runner, id, override string) Outcome {
	t.Helper()
	out, err := r.Run(context.Background(), id, RunParams{Confirmed: true, Override: override})
	if err != nil {
		t.Fatalf("run %s: %v", id, err)
	}
	return out
}

// refusedStep runs a step that must be refused, and returns the refusal.
func refusedStep(t *testing.T, r *Runner, id, override string) string {
	t.Helper()
	_, err := r.Run(context.Background(), id, RunParams{Confirmed: true, Override: override})
	if !IsRefused(err) {
		t.Fatalf("run %s: %v, want a refusal", id, err)
	}
	return err.Error()
}

func stepStatus(r *Runner, id string) state.Status { return r.Store.Snapshot().Step(id).Status }

// planText is a step's rendered plan, one action a line.
func planText(r *Runner, id string) string {
	s, _ := r.Find(id)
	var b strings.Builder
	for _, a := range s.OfflinePlan(r.Env(id)) {
		b.WriteString(a.Text + "\n")
	}
	return b.String()
}

// assertPlanned fails unless every call a step made (reads, writes and
// the polls of its waits) was shown by its plan, as made: placeholders of
// an offline plan match any value, a trailing note is optional (the
// dry-run test's own matcher).
func assertPlanned(t *testing.T, plan string, calls []apiCall) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(plan), "\n")
	for _, c := range calls {
		if c.err != nil {
			continue
		}
		if !shownByDryRun(c.text, lines) {
			t.Errorf("%s was called but the plan does not show it:\n%s", c.text, plan)
		}
	}
}

// changeCNAME is a CNAME's UPSERT, for seeding the stand-in.
func changeCNAME(name, value string, ttl int64) aws.ChangeRecordParams {
	return aws.ChangeRecordParams{HostedZoneID: "Z0123", Name: name, Values: []string{value}, TTL: ttl}
}
