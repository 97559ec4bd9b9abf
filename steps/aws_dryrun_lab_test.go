package steps

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// The AWS part of "what the plan shows is what runs" (issue 10): each AWS
// strategy on the stand-in with the lab behind it, every step through
// decommission (the optional traffic and reader steps included, rollback
// left out), each preceded by its dry run as `pgbluegreen run STEP
// --dry-run` takes it: read-only pools, the state file read-only, and an
// AWS client that journals nothing. Every API call the journal then
// records for a step must appear in its dry run, and so must every SQL
// statement and command of the AWS steps. Other steps' statements are
// reported: they are checked by TestDryRunShowsWhatRuns{Copy,Clone}.

// awsSteps are the steps this test holds to their SQL too.
var awsSteps = map[string]bool{
	"enable-logical-replication": true, "clone-cluster": true, "green-start-lsn": true, "upgrade-green": true,
	"create-green-readers": true, "snapshot-blue": true, "upgrade-snapshot": true, "restore-green": true,
	trafficToPgBouncerID: true, switchTrafficID: true, readersToGreenID: true, "decommission": true,
}

// awsDryRunLines is id's dry run the way main.go takes it.
func awsDryRunLines(t *testing.T, a *awsLabEnv, id string) []string {
	t.Helper()
	store, err := state.Open(a.Store.Path(), state.OpenParams{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	blue, err := pg.NewPool(pg.PoolParams{Conninfo: a.Config.Blue.Conninfo, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer blue.Close()
	green, err := pg.NewPool(pg.PoolParams{Conninfo: a.Config.Green.Conninfo, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer green.Close()
	r := NewRunner(a.Config, store, nil)
	r.Steps = a.Runner.Steps
	r.Blue, r.Green, r.AWS = blue, green, newDryRunClient(t, a.srv)
	lines := make(chan Line, 4096)
	r.Out = lines
	if _, err := r.Run(context.Background(), id, RunParams{DryRun: true}); err != nil {
		t.Fatalf("%s --dry-run: %v", id, err)
	}
	close(lines)
	var out []string
	for l := range lines {
		if _, text, ok := strings.Cut(l.Text, "] "); ok && strings.HasPrefix(l.Text, "[") {
			out = append(out, text)
		}
	}
	return out
}

func testDryRunShowsWhatRunsAWS(t *testing.T, strategy string) {
	a := startAWSLab(t, strategy, awsLabParams{})
	c, srv := a.Config, a.srv
	srv.AddSecret("app/db", `{"host":"blue","password":"blue-pw"}`)
	srv.AddSecret("app/db-readers", `{"host":"blue-ro","password":"blue-pw"}`)
	srv.AddParameter("/app/db/host", "blue", "String")
	srv.AddParameter("/app/db/proxy", "proxy.internal", "String")
	srv.AddParameter("/app/db/readers", "arn:readers", "String")
	srv.AddHostedZone("Z0123")
	t.Setenv("PGBG_TEST_PGBOUNCER", `{"host":"pgbouncer","password":"p"}`)
	t.Setenv("PGBG_TEST_GREEN", `{"host":"green","password":"g"}`)
	t.Setenv("PGBG_TEST_GREEN_READERS", `{"host":"green-ro","password":"g"}`)
	c.AWS.PreCutover = config.TrafficChanges{SecretID: "app/db", SecretValueFrom: "PGBG_TEST_PGBOUNCER", SSMDelete: []string{"/app/db/proxy", "/app/db/readers"}}
	c.AWS.Switch = config.Switch{SecretID: "app/db", SecretValueFrom: "PGBG_TEST_GREEN", SSMParameter: "/app/db/host",
		Route53: config.Route53{HostedZoneID: "Z0123", Record: "db.example.com"}}
	c.AWS.PostCutover = config.TrafficChanges{SecretID: "app/db-readers", SecretValueFrom: "PGBG_TEST_GREEN_READERS", SSMRestore: []string{"/app/db/readers"}}
	if strategy == "aurora-clone" {
		c.AWS.Readers = []config.AWSReader{{ID: "green-reader-1"}}
	}
	if p := c.Validate(); len(p) > 0 {
		t.Fatalf("config: %v", p)
	}
	var offset int64
	var checks []dryRunCheck
	for _, s := range a.Runner.Steps {
		if s.ID == "rollback" {
			continue
		}
		dry := awsDryRunLines(t, a, s.ID)
		_, offset = journalEntries(t, a.JournalPath, 0)
		start := time.Now()
		out, err := a.Runner.Run(context.Background(), s.ID, RunParams{Confirmed: true})
		if err != nil {
			t.Fatalf("run %s: %v", s.ID, err)
		}
		t.Logf("step %s: %s in %s", s.ID, out, time.Since(start).Round(time.Millisecond))
		entries, _ := journalEntries(t, a.JournalPath, offset)
		check := dryRunCheck{Step: s.ID}
		var others []string
		for _, e := range entries {
			if e.Step != s.ID || (e.Kind != "sql" && e.Kind != "api" && e.Kind != "command") {
				continue
			}
			check.Checked++
			if shownByDryRun(e.Text, dry) {
				continue
			}
			line := "[" + e.Target + " " + e.Kind + "] " + e.Text
			if e.Kind == "api" || awsSteps[s.ID] {
				check.Missing = append(check.Missing, line)
			} else {
				others = append(others, line)
			}
		}
		if len(check.Missing)+len(others) > 0 {
			t.Logf("%s dry run:\n  %s", s.ID, strings.Join(dry, "\n  "))
		}
		for _, o := range others {
			t.Logf("NOT an AWS step, reported only: %s ran what its dry run did not show: %s", s.ID, o)
		}
		checks = append(checks, check)
	}
	reportDryRunChecks(t, checks)
	api := 0
	for _, c := range a.log.calls {
		if c.step != "" {
			api++
		}
	}
	t.Logf("%s: %d API calls made by the steps, every one of them shown by its step's dry run", strategy, api)
	t.Logf("calls by step:\n%s", callReport(a.log, a.Runner))
}

// TestDryRunShowsWhatRunsAurora: aurora-clone, every step through
// decommission.
func TestDryRunShowsWhatRunsAurora(t *testing.T) { testDryRunShowsWhatRunsAWS(t, "aurora-clone") }

// TestDryRunShowsWhatRunsRDS: rds-snapshot, every step through
// decommission.
func TestDryRunShowsWhatRunsRDS(t *testing.T) { testDryRunShowsWhatRunsAWS(t, "rds-snapshot") }
