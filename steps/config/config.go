// Package config is pgbluegreen.yaml: its keys, each default written once
// (defaults.go), and every check made when the file is read, before any
// server is touched. The steps read it; nothing in it talks to a server.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gopkg.in/yaml.v3"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// Strategies, cutover methods and other closed sets of the configuration.
var (
	StrategyNames  = []string{"aurora-clone", "rds-snapshot", "copy", "clone"}
	CutoverMethods = []string{"pgbouncer", "nologin", "readonly"}
)

// Config is pgbluegreen.yaml, after flags have overridden it.
type Config struct {
	Strategy    string      `yaml:"strategy"`
	Blue        Conn        `yaml:"blue"`
	Green       Conn        `yaml:"green"`
	Replication Replication `yaml:"replication"`
	// Databases are the databases of blue that move to green. Empty: every
	// database of blue that accepts connections and holds a table, read
	// from blue when the run starts (templates and providers' own aside).
	Databases []string `yaml:"databases"`
	// Stay are databases of blue left there on purpose, each with the
	// reason, which is journaled. Any other database with rows or sessions
	// that does not move makes preflight fail.
	Stay         []StayingDatabase `yaml:"stay"`
	Publications []Publication     `yaml:"publications"`
	// Schemas are the schemas of blue.conninfo's database that move
	// (default: all of its own); every other database's are all of its own.
	Schemas  []string `yaml:"schemas"`
	AppRoles []string `yaml:"app_roles"`
	Cutover  Cutover  `yaml:"cutover"`
	Clone    Clone    `yaml:"clone"`
	AWS      AWS      `yaml:"aws"`
	Timeouts Timeouts `yaml:"timeouts"`
	Lag      Lag      `yaml:"lag"`
	Sync     Sync     `yaml:"sync"`
	Sessions Sessions `yaml:"sessions"`
	// Alerts say where alerts go and when (config_alerts.go).
	Alerts Alerts `yaml:"alerts"`
	// UnloggedTables says what copy-unlogged does with blue's unlogged
	// tables, which replication never carries: UnloggedCopy (their rows as
	// they are right before the cutover; rows written to them on blue
	// after that are lost) or UnloggedSkip (green's stay as they are,
	// empty after a copy of the schema or a clone). No default
	// (DefaultUnloggedTables): preflight fails while blue has unlogged
	// tables and this is unset.
	UnloggedTables string `yaml:"unlogged_tables"`

	// Path is the file the configuration was read from ("" for the embedded default).
	Path string `yaml:"-"`
	// Notices are lines for the operator about the file as read: a key
	// whose meaning changed, and what it became.
	Notices []string `yaml:"-"`

	// aws reads a replication password held in Secrets Manager (UseAWS).
	aws *aws.Client
	// primary is blue.conninfo's database, kept by ForDatabase in a copy
	// whose connection strings name another.
	primary string
	// InDatabase is the database a step's configuration is for (a step
	// that runs in each database sees a copy: its publications, its feeds'
	// names); "" for the whole cluster, which means the primary database.
	InDatabase string `yaml:"-"`
	// SchemasFromBlue says schemas was omitted and Schemas holds every
	// schema of blue, read live by the runner (withSchemas).
	SchemasFromBlue bool `yaml:"-"`
}

// Conn is one database, as a libpq connection string or URL. PG* environment
// variables and the passfile apply as pgx's config parsing applies them.
type Conn struct {
	Conninfo string `yaml:"conninfo"`
}

// Replication names the role green's subscriptions connect to blue as.
type Replication struct {
	Role     string         `yaml:"role"`
	Password PasswordSource `yaml:"password"`
	// BlueConninfo is how green reaches blue, when that differs from how
	// this program reaches it (a private endpoint, say). Default: blue's host,
	// port and database from blue.conninfo.
	BlueConninfo string `yaml:"blue_conninfo"`
}

// PasswordSource says where the replication role's password comes from.
// Exactly one of its fields is set; the password itself never is.
type PasswordSource struct {
	Env        string `yaml:"env"`
	PgpassFile string `yaml:"pgpass_file"`
	Pgpass     bool   `yaml:"pgpass"`
	SecretARN  string `yaml:"secret_arn"`
}

// StayingDatabase is a database of blue that does not move, and why.
type StayingDatabase struct {
	Name   string `yaml:"name"`
	Reason string `yaml:"reason"`
}

// Publication is one publication on blue. With no tables it is FOR ALL
// TABLES, or, when other publications list tables, for the tables they do not.
type Publication struct {
	Name   string   `yaml:"name"`
	Tables []string `yaml:"tables"`
	// Database is the database a publication that lists its tables is in
	// (default: blue.conninfo's). One without tables is made in every
	// database that moves.
	Database string `yaml:"database"`
	// Copy is how the copy strategy copies its tables: "snapshot"
	// (copy-data copies them in the slot's exported snapshot over a few
	// sessions, a large table in ranges and its indexes built after its
	// data; every byte through this machine), "tablesync" (PostgreSQL's
	// table sync, a worker per table, from blue to green directly), or
	// "auto" (the default): snapshot, unless create-slots measures blue
	// read here slower than AutoSnapshotFloor, where the table sync is the
	// faster way.
	Copy string `yaml:"copy"`
}

// UnloggedTables' values.
const (
	UnloggedCopy = "copy"
	UnloggedSkip = "skip"
)

// UnloggedChoices are unlogged_tables' values.
var UnloggedChoices = []string{UnloggedCopy, UnloggedSkip}

// copyModes are Publication.Copy's values.
const (
	CopyAuto      = "auto"
	CopyTableSync = "tablesync"
	CopySnapshot  = "snapshot"
)

// AutoSnapshotFloor is the rate at which blue must read through this
// machine, one session's text COPY timed, for copy: auto to copy by
// snapshot. A snapshot copy moves every byte through here, its sessions
// sharing this machine's network; the table sync copies from blue to green
// directly, at 67-72 MB/s a table measured on the lab, where one session
// reads 65-80 MB/s through here. Below this floor the way through here is
// a narrow link (another region, a small jumpbox), and the table sync is
// the faster way.
const AutoSnapshotFloor = 25 << 20

// Cutover configures the cutover step.
type Cutover struct {
	Method      string `yaml:"method"`
	MaxLagBytes int64  `yaml:"max_lag_bytes"`
	// DrainTimeout bounds the drain: how long, writes paused, the target
	// may take to apply what the source wrote before the pause. Past it the
	// attempt aborts and everything is put back.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// PauseTimeout bounds each PgBouncer's PAUSE: how long it may wait for
	// the transactions in flight to end (a longer one aborts the attempt).
	PauseTimeout Duration `yaml:"pause_timeout"`
	// GuardTimeout is how long the guard lets a driver that stopped
	// answering (killed, frozen) hold an attempt before it undoes it.
	GuardTimeout Duration `yaml:"guard_timeout"`
	// WayOutLagWait bounds a way out's wait for the feed it starts to come
	// within the lag gate before the rollback it runs.
	WayOutLagWait Duration `yaml:"way_out_lag_wait"`
	// Window bounds the cutover's wait, before anything changes, for the
	// lag to come under max_lag_bytes: it goes at the first reading under.
	Window Duration `yaml:"window"`
	// PauseBudget bounds how long PgBouncer's clients stay paused: past it
	// the guard stops the driver, whatever it is doing, and undoes the
	// attempt.
	PauseBudget    Duration          `yaml:"pause_budget"`
	SequenceMargin int64             `yaml:"sequence_margin"`
	PgBouncer      []PgBouncerConfig `yaml:"pgbouncer"`
	// Administrators are roles the fence never closes out (as it never
	// touches a superuser or the role pgbluegreen connects as): the DBAs'.
	Administrators []string `yaml:"administrators"`
	// TerminateDirectSessions lets the cutover end the sessions on blue that
	// do not come through a configured PgBouncer; without it they make the
	// precheck refuse.
	TerminateDirectSessions bool `yaml:"terminate_direct_sessions"`
	// HealthWindow: an apply or sync error counted within it makes the
	// precheck refuse (default 10m).
	HealthWindow Duration `yaml:"health_window"`
	// HoldCommits: for at most this long before the pause, blue's commits
	// wait for green's apply (a synchronous standby entry set with ALTER
	// SYSTEM), so the pause starts with no lag. Unset: 2s on self-managed
	// servers, off on AWS (no ALTER SYSTEM there); 0: off. See holdCommits.
	HoldCommits *Duration `yaml:"hold_commits"`
}

// Clone configures the self-managed clone strategy: a pg_basebackup of blue
// recovered with blue's binaries and upgraded with green's pg_upgrade.
type Clone struct {
	BlueBindir  string `yaml:"blue_bindir"`
	GreenBindir string `yaml:"green_bindir"`
	DataDir     string `yaml:"data_dir"`
	Port        int    `yaml:"port"`
	OSUser      string `yaml:"os_user"`
}

// AWS names the AWS resources of the aurora-clone and rds-snapshot
// strategies, and the traffic switch any strategy may use. Credentials and
// region come from the SDK's default chain unless Region and Profile say.
type AWS struct {
	Region  string `yaml:"region"`
	Profile string `yaml:"profile"`
	// PollInterval is how often waits describe the resource they wait for.
	PollInterval           Duration `yaml:"poll_interval"`
	BlueCluster            string   `yaml:"blue_cluster"`
	BlueInstance           string   `yaml:"blue_instance"`
	BlueParameterGroup     string   `yaml:"blue_parameter_group"`
	GreenCluster           string   `yaml:"green_cluster"`
	GreenInstance          string   `yaml:"green_instance"`
	GreenInstanceClass     string   `yaml:"green_instance_class"`
	EngineVersion          string   `yaml:"engine_version"`
	ClusterParameterGroup  string   `yaml:"cluster_parameter_group"`
	InstanceParameterGroup string   `yaml:"instance_parameter_group"`
	SubnetGroup            string   `yaml:"subnet_group"`
	SecurityGroups         []string `yaml:"security_groups"`
	Snapshot               string   `yaml:"snapshot"`
	MultiAZ                bool     `yaml:"multi_az"`
	IAMAuth                bool     `yaml:"iam_auth"`
	// DeletionProtection of the clone; nil (unset) means on.
	DeletionProtection *bool       `yaml:"deletion_protection"`
	Readers            []AWSReader `yaml:"readers"`
	FinalSnapshot      string      `yaml:"final_snapshot"`
	DeleteBlue         bool        `yaml:"delete_blue"`
	Switch             Switch      `yaml:"switch"`
	// PreCutover and PostCutover are runbook 000's optional traffic
	// changes around the cutover (see TrafficChanges).
	PreCutover  TrafficChanges `yaml:"pre_cutover"`
	PostCutover TrafficChanges `yaml:"post_cutover"`
}

// AWSReader is one reader instance to add to green's cluster.
type AWSReader struct {
	ID    string `yaml:"id"`
	Class string `yaml:"class"`
}

// Switch says where the application finds its database, so switch-traffic
// can point it at green: a Secrets Manager secret, an SSM parameter, a
// Route 53 CNAME. Each part is used only when configured.
type Switch struct {
	SecretID string `yaml:"secret_id"`
	// SecretValueFrom is where the secret's new value comes from: an
	// environment variable's name, or the ARN of a secret to copy (000's
	// "DB secret w/ green"). Never the value itself.
	SecretValueFrom string   `yaml:"secret_value_from"`
	SSMParameter    string   `yaml:"ssm_parameter"`
	SSMValue        string   `yaml:"ssm_value"`
	SSMDelete       []string `yaml:"ssm_delete"`
	Route53         Route53  `yaml:"route53"`
}

// Route53 names the CNAME the application connects through.
type Route53 struct {
	HostedZoneID string `yaml:"hosted_zone_id"`
	Record       string `yaml:"record"`
	TTL          int64  `yaml:"ttl"`
}

// Configured reports whether any part of the switch is set.
func (s Switch) Configured() bool {
	return s.SecretID != "" || s.SSMParameter != "" || len(s.SSMDelete) > 0 || s.Route53.Record != ""
}

// NeedsAWS reports whether a run with this configuration talks to AWS: an
// AWS strategy, a traffic switch, or a password in Secrets Manager.
func (c *Config) NeedsAWS() bool {
	return c.IsAWS() || c.AWS.Switch.Configured() || c.Replication.Password.SecretARN != ""
}

// Timeouts bound the waits and statements of every step.
type Timeouts struct {
	Connect   Duration `yaml:"connect"`
	Statement Duration `yaml:"statement"`
	LagWait   Duration `yaml:"lag_wait"`
}

// Sessions configures the sessions the connections pane and `sessions`
// mark.
type Sessions struct {
	// LongTransaction marks a transaction open longer than this as LONG TX:
	// PgBouncer's PAUSE waits for it.
	LongTransaction Duration `yaml:"long_transaction"`
}

// Lag configures the lag monitor.
type Lag struct {
	Interval Duration `yaml:"interval"`
}

// Duration is a time.Duration written as "10s" in the file.
type Duration struct{ time.Duration }

// UnmarshalYAML reads "1m30s"-style durations.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use e.g. 10s, 5m, 1h)", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration back as text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Error lists every problem found in a configuration, one per line.
type Error struct{ Problems []string }

// Error is one line per problem.
func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

// Load reads and validates a configuration file. Every problem found
// is reported, one line each, in a *Error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{[]string{fmt.Sprintf("config: %s does not exist; pass --config FILE, or run `pgbluegreen lab up --dir DIR` for a local lab", path)}}
		}
		return nil, &Error{[]string{fmt.Sprintf("config: %v", err)}}
	}
	c, err := Parse(data)
	if err != nil {
		return nil, err
	}
	c.Path = path
	return c, nil
}

// Parse decodes, defaults and validates configuration text. Every
// problem is reported at once: unknown keys and keys of the wrong type
// (checkNode: each with its line, the type expected and an example), then
// what Validate finds in the rest.
func Parse(data []byte) (*Config, error) {
	var c Config
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{yamlProblems(err)} // not YAML at all: nothing to validate
	}
	var problems []string
	if len(root.Content) > 0 { // empty: every default
		doc := root.Content[0]
		problems = checkNode(doc, reflect.TypeOf(c), "")
		if err := doc.Decode(&c); err != nil {
			problems = append(problems, yamlProblems(err)...)
		}
	}
	c.Defaults()
	if problems = append(problems, c.Validate()...); len(problems) > 0 {
		return nil, &Error{problems}
	}
	return &c, nil
}

func yamlProblems(err error) []string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []string{"config: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var out []string
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			out = append(out, fmt.Sprintf("config: line %s: unknown key %q (see pgbluegreen.example.yaml for the keys)", m[1], m[2]))
			continue
		}
		out = append(out, "config: "+e)
	}
	return out
}

// Validate returns every problem with the configuration, one line each.
func (c *Config) Validate() []string {
	var p []string
	bad := func(format string, args ...any) { p = append(p, "config: "+fmt.Sprintf(format, args...)) }
	oneOf := func(key, v string, allowed []string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad("%s %q is not one of %s", key, v, strings.Join(allowed, ", "))
	}
	oneOf("strategy", c.Strategy, StrategyNames)
	oneOf("cutover.method", c.Cutover.Method, CutoverMethods)
	if c.UnloggedTables != DefaultUnloggedTables {
		oneOf("unlogged_tables", c.UnloggedTables, UnloggedChoices)
	}

	for _, db := range []struct {
		key  string
		conn Conn
	}{{"blue.conninfo", c.Blue}, {"green.conninfo", c.Green}} {
		if db.conn.Conninfo == "" {
			bad("%s is missing (a libpq connection string or postgres:// URL)", db.key)
			continue
		}
		if _, err := pgconn.ParseConfig(db.conn.Conninfo); err != nil {
			bad("%s: %s", db.key, state.Redact(err.Error()))
		}
	}
	for _, s := range c.Schemas {
		if s == pg.RecorderSchema {
			bad("schemas: %q is this program's own schema on blue (the optional DDL recorder), never the application's: remove it from schemas", s)
		}
	}
	if c.Replication.BlueConninfo != "" {
		if _, err := pgconn.ParseConfig(c.Replication.BlueConninfo); err != nil {
			bad("replication.blue_conninfo: %s", state.Redact(err.Error()))
		}
	}
	if !ValidName(c.Replication.Role) {
		bad("replication.role %q is not a valid role name (letters, digits, _ and $, at most 63 bytes)", c.Replication.Role)
	}
	src := c.Replication.Password
	n := 0
	for _, set := range []bool{src.Env != "", src.PgpassFile != "" || src.Pgpass, src.SecretARN != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		bad("replication.password needs exactly one of env (a variable name), pgpass / pgpass_file, secret_arn")
	}
	if src.SecretARN != "" && !strings.HasPrefix(src.SecretARN, "arn:") {
		bad("replication.password.secret_arn %q is not an ARN (arn:aws:secretsmanager:...)", src.SecretARN)
	}

	if c.Sync.CopyJobs < 0 || c.Sync.CopyJobs > MaxCopyJobs {
		bad("sync.copy_jobs %d: from 1 to %d (each is a session on blue and one on green), or 0 for two per core of green", c.Sync.CopyJobs, MaxCopyJobs)
	}
	seenPub := map[string]bool{}
	seenTable := map[string]string{}
	allTables := 0
	for i, pub := range c.Publications {
		key := fmt.Sprintf("publications[%d]", i)
		if !ValidName(pub.Name) {
			bad("%s.name %q is not a valid publication name", key, pub.Name)
		}
		if seenPub[pub.Name] {
			bad("%s.name %q is used twice", key, pub.Name)
		}
		seenPub[pub.Name] = true
		if len(pub.Tables) == 0 {
			allTables++
		}
		switch pub.Copy {
		case "", CopyAuto, CopyTableSync:
		case CopySnapshot:
			if c.Strategy != "copy" {
				bad("%s.copy: snapshot is for the copy strategy (a clone holds the data already)", key)
			}
		default:
			bad("%s.copy %q: want auto, tablesync or snapshot", key, pub.Copy)
		}
		for _, t := range pub.Tables {
			if other, ok := seenTable[t]; ok {
				bad("%s.tables: %q is already in publication %q (a table belongs to one publication)", key, t, other)
			}
			seenTable[t] = pub.Name
		}
	}
	if allTables > 1 {
		bad("publications: only one publication may leave tables empty (it takes every table the others do not list)")
	}
	for _, r := range c.AppRoles {
		if r == c.Replication.Role {
			bad("app_roles: %q is the replication role; the cutover must not block it", r)
		}
		if slices.Contains(c.Cutover.Administrators, r) {
			bad("cutover.administrators: %q is also in app_roles: the fence closes the application's roles and never an administrator's", r)
		}
	}
	for i, r := range c.Cutover.Administrators {
		if r == "" {
			bad("cutover.administrators[%d] is empty: name a role", i)
		}
	}
	p = append(p, c.validatePgBouncers()...) // config_pgbouncer.go
	p = append(p, c.validateDatabases()...)
	for _, d := range []struct {
		key string
		v   Duration
	}{{"cutover.pause_timeout", c.Cutover.PauseTimeout}, {"cutover.guard_timeout", c.Cutover.GuardTimeout}, {"cutover.pause_budget", c.Cutover.PauseBudget}} {
		if d.v.Duration < MinPauseTimeout {
			bad("%s %s: at least %s (below it a busy machine's scheduling alone aborts the attempt)", d.key, d.v, MinPauseTimeout)
		}
	}
	if c.Cutover.MaxLagBytes < 0 {
		bad("cutover.max_lag_bytes %d must be 0 or more", c.Cutover.MaxLagBytes)
	}
	if c.Strategy == "clone" {
		if c.Clone.BlueBindir == "" || c.Clone.GreenBindir == "" || c.Clone.DataDir == "" || c.Clone.Port == 0 {
			bad("clone strategy needs clone.blue_bindir, clone.green_bindir, clone.data_dir and clone.port")
		}
	}
	p = append(p, c.validateAWS()...)
	p = append(p, c.validateAlerts()...)
	switch c.Strategy {
	case "aurora-clone":
		if c.AWS.BlueCluster == "" || c.AWS.GreenCluster == "" || c.AWS.EngineVersion == "" {
			bad("aurora-clone strategy needs aws.blue_cluster, aws.green_cluster and aws.engine_version")
		}
	case "rds-snapshot":
		if c.AWS.BlueInstance == "" || c.AWS.GreenInstance == "" || c.AWS.EngineVersion == "" {
			bad("rds-snapshot strategy needs aws.blue_instance, aws.green_instance and aws.engine_version")
		}
	}
	return p
}

// ValidName accepts the unquoted identifiers pgbluegreen creates itself.
func ValidName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case (r >= '0' && r <= '9') || r == '$':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
