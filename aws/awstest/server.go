// Package awstest is a fake AWS for tests: an httptest.Server that answers
// the RDS query API (form-encoded, XML answers), Secrets Manager and SSM
// (JSON 1.1, X-Amz-Target) and Route 53 (REST XML) the way AWS does, so the
// real SDK clients build and parse real requests and responses.
//
// It keeps an in-memory model (clusters, instances, snapshots, parameter
// groups, log files, secrets, parameters, DNS records and changes) whose
// statuses evolve as they are described ("creating" for Ticks describes, then
// "available"), records every request with its decoded parameters, and can
// inject faults per action. Point a client at it with Env (the SDK's
// AWS_ENDPOINT_URL and static credentials) or with its URL.
package awstest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region and Account are what the fake's ARNs and endpoints use.
const (
	Region  = "us-east-1"
	Account = "123456789012"
)

// Request is one request the server received, decoded.
type Request struct {
	// Service is "rds", "secretsmanager", "ssm" or "route53".
	Service string
	// Action is the operation, e.g. "RestoreDBClusterToPointInTime".
	Action string
	// Params are the decoded parameters. RDS: the form fields as sent
	// ("VpcSecurityGroupIds.VpcSecurityGroupId.1"). JSON services: the
	// top-level fields, nested ones joined with dots. Route 53: HostedZoneId
	// or Id, and for a change batch Action, Name, Type, TTL, Value, Comment.
	Params map[string]string
}

// Fault is an error the server returns instead of handling an action.
type Fault struct {
	// Code is the AWS error code ("AccessDenied", "Throttling",
	// "AccessDeniedException", ...).
	Code    string
	Message string
	// Status is the HTTP status; default 400.
	Status int
	// Times is how many calls fail before the action works again; 0 means
	// every call fails.
	Times int
}

// Server is the fake AWS endpoint. Its fields may be set before the first
// request; use its methods to seed the model and read what happened.
type Server struct {
	*httptest.Server

	// Ticks is how many describes a transitional status (creating,
	// upgrading, rebooting, PENDING) is seen before it settles. Default 2.
	Ticks int
	// PageSize is the page size of paginated RDS lists unless the request
	// asks for fewer (MaxRecords). Default 100.
	PageSize int
	// LogPortion is the bytes per DownloadDBLogFilePortion answer. Default 1 MB.
	LogPortion int
	// RedoLSN is the "redo done at" LSN written to the log of an instance
	// restored from a snapshot (RestoreDBInstanceFromDBSnapshot), as RDS's
	// recovery of the snapshot would print it; a later, second "redo done"
	// follows it as after the engine upgrade's restart. Default "0/3000148".
	RedoLSN string
	// Backend, when set, puts real servers behind the model (a test's lab):
	// what a clone, a snapshot, a restore and an upgrade do to the data.
	Backend Backend

	mu       sync.Mutex
	requests []Request
	faults   map[string]*Fault
	nextID   int
	rds      rdsModel
	secrets  map[string]*secret
	params   map[string]*ssmParam
	zones    map[string]*zone
	changes  map[string]*change
}

// Backend is what a test with real PostgreSQL servers does when the model
// makes, copies or upgrades a database. Each hook is optional; an error it
// returns fails the API call with BackendFailure (no retry), so the test
// sees it. The hooks run while the server holds its lock: they must not
// call the server.
type Backend struct {
	// CloneCluster runs when RestoreDBClusterToPointInTime makes a clone of
	// source (copy-on-write): the clone runs source's major afterwards. It
	// returns the `redo done at` LSN of the clone's recovery, written to the
	// log of the clone's first instance ("" for none).
	CloneCluster func(source, clone string) (redo string, err error)
	// SnapshotInstance runs when CreateDBSnapshot snapshots an instance.
	SnapshotInstance func(instance, snapshot string) error
	// RestoreInstance runs when RestoreDBInstanceFromDBSnapshot restores a
	// snapshot at its (upgraded) engine version; it returns the `redo done
	// at` LSN of the restore's recovery, for the instance's log.
	RestoreInstance func(snapshot, instance, engineVersion string) (redo string, err error)
	// UpgradeCluster runs when a major upgrade of a cluster passes the
	// precheck.
	UpgradeCluster func(cluster, engineVersion string) error
	// LogicalSlots counts the logical replication slots on a cluster's
	// writer, for Aurora's upgrade precheck (which refuses any).
	LogicalSlots func(cluster string) (int, error)
}

func backendFailure(err error) *Fault {
	return &Fault{Code: "BackendFailure", Message: "the test's backend failed: " + err.Error(), Status: 400}
}

// New starts a server, closed when the test ends.
func New(t testing.TB) *Server {
	s := NewServer()
	t.Cleanup(s.Close)
	return s
}

// NewServer starts a server; the caller closes it.
func NewServer() *Server {
	s := &Server{
		Ticks:      2,
		PageSize:   100,
		LogPortion: 1 << 20,
		RedoLSN:    "0/3000148",
		faults:     map[string]*Fault{},
		secrets:    map[string]*secret{},
		params:     map[string]*ssmParam{},
		zones:      map[string]*zone{},
		changes:    map[string]*change{},
	}
	s.rds.init()
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// PostRDS sends one RDS query request as the SDK would, signed-looking,
// without the client's checks, and returns the status and the body: how
// tests reach what the stand-in refuses that a client would never send.
func (s *Server) PostRDS(t testing.TB, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20240105/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// RawRDS is PostRDS of action with the parameters kv (name, value, ...).
func (s *Server) RawRDS(t testing.TB, action string, kv ...string) (int, string) {
	t.Helper()
	form := url.Values{"Action": {action}, "Version": {"2014-10-31"}}
	for i := 0; i+1 < len(kv); i += 2 {
		form.Set(kv[i], kv[i+1])
	}
	return s.PostRDS(t, form)
}

// Env points the SDK's default configuration at the server for the rest of
// the test: AWS_ENDPOINT_URL, a region, static credentials, and no shared
// config files, so nothing on the machine is read and nothing leaves it.
func (s *Server) Env(t testing.TB) {
	t.Setenv("AWS_ENDPOINT_URL", s.URL)
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-key")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent/awstest/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/awstest/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Credentials are static keys to sign requests to the server with, for
// clients built with an explicit endpoint instead of Env (aws.Options
// Endpoint and Credentials), which lets tests run in parallel.
func (s *Server) Credentials() sdkaws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake-secret-key", "")
}

// Fail makes action fail with f (see Fault.Times). Actions are named as in
// Request.Action; a later Fail for the same action replaces the earlier one.
func (s *Server) Fail(action string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Status == 0 {
		f.Status = http.StatusBadRequest
	}
	if f.Message == "" {
		f.Message = "injected fault " + f.Code
	}
	s.faults[action] = &f
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Calls returns the requests for one action, in order.
func (s *Server) Calls(action string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

// Count is len(Calls(action)).
func (s *Server) Count(action string) int { return len(s.Calls(action)) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	// Every AWS API call is SigV4-signed; an unsigned one means the client
	// had no credentials, and AWS would refuse it.
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		s.mu.Lock()
		s.record("unsigned", r.URL.Path, map[string]string{})
		s.mu.Unlock()
		writeXMLError(w, rdsNS, &Fault{Code: "MissingAuthenticationToken", Message: "Request is missing Authentication Token", Status: 403}, "req-unsigned")
		return
	}
	switch {
	case r.Header.Get("X-Amz-Target") != "":
		s.serveJSON(w, r, body)
	case strings.HasPrefix(r.URL.Path, "/2013-04-01/"):
		s.serveRoute53(w, r, body)
	default:
		s.serveRDS(w, r, body)
	}
}

// record logs a request and returns the fault to answer with, if any.
func (s *Server) record(service, action string, params map[string]string) *Fault {
	s.requests = append(s.requests, Request{Service: service, Action: action, Params: params})
	f := s.faults[action]
	if f == nil {
		return nil
	}
	out := *f
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			delete(s.faults, action)
		}
	}
	return &out
}

// newID returns a short unique suffix for request IDs, ARNs and change IDs.
func (s *Server) newID() string {
	s.nextID++
	return fmt.Sprintf("%08d", s.nextID)
}

// transition is a status change that happens after some describes.
type transition struct {
	left int
	then func()
}

// tick counts one describe of a resource and applies its transition when due.
func tick(t **transition) {
	if *t == nil {
		return
	}
	(*t).left--
	if (*t).left <= 0 {
		then := (*t).then
		*t = nil
		then()
	}
}

func (s *Server) after(then func()) *transition {
	return &transition{left: max(s.Ticks, 0) + 1, then: then}
}
