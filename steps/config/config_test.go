package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// minimalConfig is the smallest valid configuration (testdata/minimal.yaml),
// which the steps package's tests read too.
var minimalConfig = readMinimal("testdata/minimal.yaml")

func readMinimal(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return "\n" + string(b)
}

func TestConfigDefaults(t *testing.T) {
	c, err := Parse([]byte(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Replication.Role != "pgbg_repl" || len(c.Publications) != 1 || c.Publications[0].Name != "pgbg_all" ||
		c.Cutover.Method != "pgbouncer" || c.Lag.Interval.Duration != time.Second || c.Cutover.DrainTimeout.Duration != 10*time.Second ||
		len(c.Schemas) != 0 { // omitted: every schema of blue, resolved by the runner
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "pgbluegreen.example.yaml"))
	if err != nil {
		t.Fatalf("the shipped example does not load: %v", err)
	}
	if c.Strategy != "copy" || !c.AWS.DeletionProtectionOn() || c.AWS.PollInterval.Duration != 15*time.Second || c.Timeouts.LagWait.Duration != 30*time.Minute {
		t.Fatalf("example parsed wrong: %+v", c)
	}
}

// edit replaces one line of minimalConfig.
func edit(old, new string) string { return strings.Replace(minimalConfig, old, new, 1) }

func TestConfigValidationErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"bad method", edit("cutover:\n", "cutover:\n  method: pgbouncr\n"),
			[]string{`config: cutover.method "pgbouncr" is not one of pgbouncer, nologin, readonly`}},
		{"bad strategy", edit("strategy: copy", "strategy: snapshot"),
			[]string{`config: strategy "snapshot" is not one of aurora-clone, rds-snapshot, copy, clone`}},
		{"unknown key", edit("replication:\n", "replication:\n  rol: x\n"),
			[]string{`config: line 8: unknown key "replication.rol"`}},
		{"bad duration", edit("cutover:\n", "cutover:\n  drain_timeout: ten\n"),
			[]string{`"ten" is not a duration`}},
		{"missing blue", edit(`  conninfo: "host=127.0.0.1 port=5432 dbname=app user=postgres"`, `  conninfo: ""`),
			[]string{"config: blue.conninfo is missing"}},
		{"broken conninfo", edit(`port=5432 dbname=app`, `port=notaport dbname=app password=s3cret`),
			[]string{"config: blue.conninfo: "}},
		{"no password source", edit("    env: PGBG_REPL_PASSWORD\n", "    env: \"\"\n"),
			[]string{"config: replication.password needs exactly one of"}},
		{"two password sources", edit("    env: PGBG_REPL_PASSWORD\n", "    env: X\n    pgpass: true\n"),
			[]string{"config: replication.password needs exactly one of"}},
		{"bad role", edit("replication:\n", "replication:\n  role: \"repl; drop\"\n"),
			[]string{`config: replication.role "repl; drop" is not a valid role name`}},
		{"duplicate publication and table", edit("cutover:\n", "publications:\n  - name: p1\n    tables: [public.a]\n  - name: p1\n    tables: [public.a]\ncutover:\n"),
			[]string{`config: publications[1].name "p1" is used twice`, `config: publications[1].tables: "public.a" is already in publication "p1"`}},
		{"two all-tables publications", edit("cutover:\n", "publications:\n  - name: p1\n  - name: p2\ncutover:\n"),
			[]string{"config: publications: only one publication may leave tables empty"}},
		{"bad copy mode", edit("cutover:\n", "publications:\n  - name: p1\n    copy: fast\ncutover:\n"),
			[]string{`config: publications[0].copy "fast": want auto, tablesync or snapshot`}},
		{"snapshot copy of a clone", edit("strategy: copy", "strategy: clone\nclone:\n  blue_bindir: /b\n  green_bindir: /g\npublications:\n  - name: p1\n    copy: snapshot"),
			[]string{"config: publications[0].copy: snapshot is for the copy strategy"}},
		{"too many copy jobs", edit("cutover:\n", "sync:\n  copy_jobs: 200\ncutover:\n"),
			[]string{"config: sync.copy_jobs 200: from 1 to 32"}},
		{"app role is replication role", edit("cutover:\n", "app_roles: [pgbg_repl]\ncutover:\n"),
			[]string{`config: app_roles: "pgbg_repl" is the replication role`}},
		{"pgbouncer method without pgbouncer", strings.Split(minimalConfig, "cutover:")[0],
			[]string{"config: cutover.pgbouncer is empty"}},
		{"clone without binaries", edit("strategy: copy", "strategy: clone"),
			[]string{"config: clone strategy needs clone.blue_bindir"}},
		{"aurora without identifiers", edit("strategy: copy", "strategy: aurora-clone"),
			[]string{"config: aurora-clone strategy needs aws.blue_cluster"}},
		{"rds without identifiers", edit("strategy: copy", "strategy: rds-snapshot"),
			[]string{"config: rds-snapshot strategy needs aws.blue_instance"}},
		{"bad secret arn", edit("    env: PGBG_REPL_PASSWORD\n", "    secret_arn: my-secret\n"),
			[]string{`config: replication.password.secret_arn "my-secret" is not an ARN`}},
		{"negative lag", edit("cutover:\n", "cutover:\n  max_lag_bytes: -1\n"),
			[]string{"config: cutover.max_lag_bytes -1 must be 0 or more"}},
		{"unlogged tables neither copied nor skipped", edit("cutover:\n", "unlogged_tables: maybe\ncutover:\n"),
			[]string{`config: unlogged_tables "maybe" is not one of copy, skip`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want a *Error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			for _, p := range ce.Problems {
				if strings.Contains(p, "\n") || !strings.HasPrefix(p, "config: ") {
					t.Errorf("problem is not one line starting with config: %q", p)
				}
				if strings.Contains(p, "s3cret") {
					t.Errorf("a password reached the error: %q", p)
				}
			}
		})
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	y := edit("strategy: copy", "strategy: nope")
	y = strings.Replace(y, "cutover:\n", "cutover:\n  method: nope\n", 1)
	_, err := Parse([]byte(y))
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("want both problems reported, got %v", err)
	}
}

// TestConfigReportsEveryTypeError: issue 12's "several type errors in the
// config" are all reported at once, each naming the key, its line, the
// type expected and an example, along with what Validate finds in the rest.
func TestConfigReportsEveryTypeError(t *testing.T) {
	y := strings.Replace(minimalConfig, "cutover:\n", `cutover:
  max_lag_bytes: lots
  drain_timeout: ten
  sequence_margin: [1]
`, 1) + `schemas: public
app_roles: [app, [nested]]
clone:
  port: "5434x"
aws:
  multi_az: maybe
  switch: {route53: {ttl: sixty, zone: z1}}
timeouts:
  statement: forever
strategy_typo: clone
publications:
  - name: p1
  - name: p2
`
	_, err := Parse([]byte(y))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want a *Error, got %v", err)
	}
	want := []string{
		`config: line 11: cutover.max_lag_bytes: "lots" is not an integer (e.g. 1048576)`,
		`config: line 12: cutover.drain_timeout: "ten" is not a duration (e.g. 30s)`,
		`config: line 13: cutover.sequence_margin: a list is not an integer (e.g. 1000)`,
		`config: line 18: schemas: "public" is not a list (e.g. [public, inventory, "Sales Dept"])`,
		`config: line 19: app_roles[1]: a list is not text (e.g. [app, reporting])`,
		`config: line 21: clone.port: "5434x" is not an integer (e.g. 5434)`,
		`config: line 23: aws.multi_az: "maybe" is not true or false (e.g. true)`,
		`config: line 24: aws.switch.route53.ttl: "sixty" is not an integer (e.g. 60)`,
		`config: line 24: unknown key "aws.switch.route53.zone"`,
		`config: line 26: timeouts.statement: "forever" is not a duration (e.g. 30s)`,
		`config: line 27: unknown key "strategy_typo"`,
		// And what the rest of the file holds is validated too.
		"config: publications: only one publication may leave tables empty",
	}
	if len(ce.Problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(ce.Problems), len(want), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%s", w, err)
		}
	}
}

func TestConfigMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "lab up") {
		t.Fatalf("missing file error does not say what to do: %v", err)
	}
}

func TestConfigPGEnvironmentApplied(t *testing.T) {
	t.Setenv("PGHOST", "db.internal")
	t.Setenv("PGPORT", "6543")
	t.Setenv("PGUSER", "alice")
	t.Setenv("PGDATABASE", "orders")
	y := edit(`"host=127.0.0.1 port=5432 dbname=app user=postgres"`, `""`)
	y = strings.Replace(y, `  conninfo: ""`, `  conninfo: "sslmode=disable"`, 1)
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if got := Endpoint(c.Blue.Conninfo); got != "db.internal:6543/orders as alice" {
		t.Fatalf("PG* variables not applied: %s", got)
	}
	t.Setenv("PGSSLMODE", "sometimes")
	// blue sets sslmode itself, so only green picks up the bad variable.
	_, err = Parse([]byte(y))
	if err == nil || !strings.Contains(err.Error(), "green.conninfo") || strings.Contains(err.Error(), "blue.conninfo") {
		t.Fatalf("a bad PGSSLMODE is not reported against green.conninfo alone: %v", err)
	}
}

func TestConfigPassfileHonoured(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(pass, []byte("127.0.0.1:5432:app:postgres:fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPASSFILE", pass)
	c, err := Parse([]byte(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	pw, err := ConnPassword(c.Blue.Conninfo)
	if err != nil || pw != "fromfile" {
		t.Fatalf("passfile not honoured: %q %v", pw, err)
	}
}

func TestSplitQualified(t *testing.T) {
	for in, want := range map[string]string{
		`public.orders`:       "public|orders",
		`public."OrderItems"`: "public|OrderItems",
		`"my.schema"."a""b"`:  `my.schema|a"b`,
		`orders`:              "orders",
	} {
		if got := strings.Join(SplitQualified(in), "|"); got != want {
			t.Errorf("SplitQualified(%s) = %s, want %s", in, got, want)
		}
	}
}

// FuzzParseConfig: any text either parses or is refused with problems that
// are each one line starting with "config: "; it never panics (the type
// check walks and edits the YAML tree before decoding it).
func FuzzParseConfig(f *testing.F) {
	f.Add(minimalConfig)
	f.Add(minimalConfig + "schemas: public\ncutover:\n  max_lag_bytes: lots\n")
	f.Add("aws: {readers: [{id: 1}, 2, [3]]}\npublications: [{tables: {a: b}}]\n")
	f.Add("timeouts: [1, 2]\n")
	f.Fuzz(func(t *testing.T, text string) {
		_, err := Parse([]byte(text))
		if err == nil {
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("not a *Error: %v", err)
		}
		for _, p := range ce.Problems {
			if !strings.HasPrefix(p, "config: ") {
				t.Errorf("problem %q does not start with config: ", p)
			}
		}
	})
}

// TestDrainTimeoutHasOneMeaning: cutover.drain_timeout bounds the drain
// alone; a file that sets it and not the keys its other meanings became
// keeps what it had, told in one line; a key it sets itself wins.
func TestDrainTimeoutHasOneMeaning(t *testing.T) {
	c, err := Parse([]byte(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cutover.DrainTimeout.Duration != DefaultDrainTimeout || c.Cutover.PauseTimeout.Duration != DefaultPauseTimeout ||
		c.Cutover.GuardTimeout.Duration != DefaultGuardTimeout || c.Cutover.WayOutLagWait.Duration != DefaultWayOutLagWait ||
		c.Sessions.LongTransaction.Duration != DefaultLongTransaction || len(c.Notices) != 0 {
		t.Fatalf("defaults: %+v %+v notices %q", c.Cutover, c.Sessions, c.Notices)
	}
	c, err = Parse([]byte(minimalConfig + "  drain_timeout: 30s\n  pause_timeout: 5s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cutover.DrainTimeout.Duration != 30*time.Second || c.Cutover.PauseTimeout.Duration != 5*time.Second ||
		c.Cutover.GuardTimeout.Duration != 30*time.Second || c.Cutover.WayOutLagWait.Duration != 90*time.Second ||
		c.Sessions.LongTransaction.Duration != 30*time.Second {
		t.Fatalf("drain_timeout 30s: %+v %+v", c.Cutover, c.Sessions)
	}
	want := "config: cutover.drain_timeout 30s now bounds the drain alone; as before, it gave cutover.guard_timeout 30s, cutover.way_out_lag_wait 1m30s, sessions.long_transaction 30s: set those keys to choose them yourself"
	if len(c.Notices) != 1 || c.Notices[0] != want {
		t.Fatalf("notices %q, want one: %s", c.Notices, want)
	}
	c, err = Parse([]byte(minimalConfig + "  drain_timeout: 200ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cutover.PauseTimeout.Duration != MinPauseTimeout || c.Cutover.GuardTimeout.Duration != MinPauseTimeout {
		t.Fatalf("drain_timeout 200ms: PAUSE and guard %s %s, want the floor %s", c.Cutover.PauseTimeout, c.Cutover.GuardTimeout, MinPauseTimeout)
	}
	_, err = Parse([]byte(minimalConfig + "  guard_timeout: 500ms\n"))
	if err == nil || !strings.Contains(err.Error(), "cutover.guard_timeout 500ms: at least 1s") {
		t.Fatalf("a guard_timeout under the floor: %v", err)
	}
}

// TestFeedNames: the primary database keeps the names a one-database run
// had; another database's are made unique and valid slot names.
func TestFeedNames(t *testing.T) {
	c, err := Parse([]byte(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.PrimaryDatabase() != "app" || c.FeedName("app", "pgbg_all") != "pgbg_all" || c.ReverseName("app") != "pgbg_reverse" {
		t.Fatalf("primary: %s %s %s", c.PrimaryDatabase(), c.FeedName("app", "pgbg_all"), c.ReverseName("app"))
	}
	if got := c.FeedName("billing", "pgbg_all"); got != "pgbg_all_billing" {
		t.Errorf("billing: %s", got)
	}
	b := c.ForDatabase("billing")
	if b.PrimaryDatabase() != "app" || b.Feed("pgbg_all") != "pgbg_all_billing" || !strings.Contains(b.Blue.Conninfo, "dbname='billing'") ||
		!strings.HasSuffix(b.Green.Conninfo, "/billing") || !strings.Contains(b.SubscriptionConninfo(), "dbname=billing") {
		t.Errorf("billing's configuration: primary %s, feed %s, blue %s, green %s, subscription %s", b.PrimaryDatabase(), b.Feed("pgbg_all"), b.Blue.Conninfo, b.Green.Conninfo, b.SubscriptionConninfo())
	}
	seen := map[string]string{}
	for _, db := range []string{"Billing", "billing", "my db", "my_db", "é", strings.Repeat("x", 80), strings.Repeat("x", 81)} {
		got := c.FeedName(db, "pgbg_reverse")
		if len(got) > 63 || strings.Trim(got, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Errorf("%q: %q is not a valid slot name", db, got)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%q and %q share %q", db, other, got)
		}
		seen[got] = db
	}
}

// TestDatabasesChecked: the lists of databases moving and staying are
// checked when the file is read.
func TestDatabasesChecked(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"databases: [billing]\n", `blue.conninfo's database "app" is not in the list`},
		{"databases: [app, app]\n", `databases[1] "app" is listed twice`},
		{"stay: [{name: reporting}]\n", `stay[0] "reporting" has no reason`},
		{"databases: [app, billing]\nstay: [{name: billing, reason: x}]\n", `stay[0] "billing" is also in databases`},
		{"stay: [{name: app, reason: x}]\n", `stay[0] "app" is blue.conninfo's database`},
	} {
		_, err := Parse([]byte(minimalConfig + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := Parse([]byte(minimalConfig + "databases: [app, billing]\nstay: [{name: reporting, reason: read by the old BI until March}]\n")); err != nil {
		t.Errorf("a valid list: %v", err)
	}
}
