package config

import (
	"fmt"
	"net"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// What the steps derive from the configuration: publications, slots,
// subscriptions, the replication connection string, the sessions of a copy.

// BySnapshot reports whether copy-data copies publication p (copy:
// snapshot, or copy: auto not decided otherwise yet), with the copy
// strategy.
func (c *Config) BySnapshot(p Publication) bool {
	return c.CopyData() && p.Copy != CopyTableSync
}

// SnapshotPublications are the publications copy-data copies.
func (c *Config) SnapshotPublications() []Publication {
	var out []Publication
	for _, p := range c.Publications {
		if c.BySnapshot(p) {
			out = append(out, p)
		}
	}
	return out
}

// SlotPublications are the publications whose slot create-slots makes:
// all but the snapshot ones.
func (c *Config) SlotPublications() []Publication {
	var out []Publication
	for _, p := range c.Publications {
		if !c.BySnapshot(p) {
			out = append(out, p)
		}
	}
	return out
}

// Undecided are the copy strategy's publications with copy: auto whose
// way is not decided yet (WithCopyModes).
func (c *Config) Undecided() []Publication {
	var out []Publication
	for _, p := range c.Publications {
		if c.IsUndecided(p) {
			out = append(out, p)
		}
	}
	return out
}

// IsUndecided reports whether p is one of Undecided.
func (c *Config) IsUndecided(p Publication) bool {
	return c.CopyData() && (p.Copy == "" || p.Copy == CopyAuto)
}

// WithCopyModes is c with each copy: auto publication's way as decided
// (decided returns it, CopySnapshot or CopyTableSync, for a publication's
// name; false while undecided).
func (c *Config) WithCopyModes(decided func(pub string) (string, bool)) *Config {
	out := *c
	out.Publications = make([]Publication, len(c.Publications))
	for i, p := range c.Publications {
		if p.Copy == "" || p.Copy == CopyAuto {
			if m, ok := decided(p.Name); ok && (m == CopySnapshot || m == CopyTableSync) {
				p.Copy = m
			}
		}
		out.Publications[i] = p
	}
	return &out
}

// MaxCopyJobs bounds sync.copy_jobs: each job is a session on both servers.
const MaxCopyJobs = 32

// CopyJobs is how many sessions copy at once on each side: sync.copy_jobs,
// or two per core of green (a small table's copy mostly waits on round
// trips), at most 6.
func (c *Config) CopyJobs() int {
	if c.Sync.CopyJobs > 0 {
		return c.Sync.CopyJobs
	}
	return min(2*c.GreenCores(), 6)
}

// BouncerName names a PgBouncer in plans, reports and the journal: its
// configured name, else its console's host:port.
func BouncerName(b PgBouncerConfig) string {
	if b.Name != "" {
		return b.Name
	}
	if pc, err := pgconn.ParseConfig(b.AdminConninfo); err == nil {
		return fmt.Sprintf("%s:%d", pc.Host, pc.Port)
	}
	return b.Ini
}

func (c *Config) IsAWS() bool {
	for _, s := range awsStrategies {
		if c.Strategy == s {
			return true
		}
	}
	return false
}

func (p PasswordSource) Describe() string {
	switch {
	case p.Env != "":
		return "$" + p.Env
	case p.SecretARN != "":
		return p.SecretARN
	case p.PgpassFile != "":
		return "passfile " + p.PgpassFile
	default:
		return "~/.pgpass"
	}
}

// SlotsNeeded is the replication slots (and walsenders) blue needs: one
// per publication, plus, with the copy strategy, one temporary slot per
// table-sync worker during the initial copy.
func (c *Config) SlotsNeeded(dbs []string, syncWorkers int) int {
	n := 0
	for _, db := range dbs {
		n += len(c.PublicationsOf(db))
	}
	if c.CopyData() {
		n += n * syncWorkers
	}
	return n
}

// PublicationNames are the configured publications (= slots = subscriptions).
func (c *Config) PublicationNames() []string {
	out := make([]string, len(c.Publications))
	for i, p := range c.Publications {
		out[i] = p.Name
	}
	return out
}

// IsCloneStrategy reports whether green starts from a copy of blue's data.
func (c *Config) IsCloneStrategy() bool {
	for _, s := range cloneStrategies {
		if c.Strategy == s {
			return true
		}
	}
	return false
}

// SubscriptionConninfoSecret is the connection string green's subscriptions
// use, password included: built at run time, passed to pg only as a bind
// parameter. Values are quoted for libpq; a later keyword wins in libpq,
// so user and password appended to replication.blue_conninfo override any
// it holds.
func (c *Config) SubscriptionConninfoSecret() (string, error) {
	pw, err := c.ReplicationPassword()
	if err != nil {
		return "", err
	}
	q := pg.QuoteConninfoValue
	base := c.Replication.BlueConninfo
	if base == "" || strings.Contains(base, "://") {
		host, port, db := c.ReplicationEndpoint()
		if host == "" {
			return "", fmt.Errorf("cannot read blue's host from the configuration: check blue.conninfo / replication.blue_conninfo")
		}
		base = fmt.Sprintf("host=%s port=%s dbname=%s", q(host), q(port), q(db))
	}
	return base + " user=" + q(c.Replication.Role) + " password=" + q(pw), nil
}

// HasDedicated reports whether a publication lists its tables: the one
// that does not is then FOR TABLE the rest, not FOR ALL TABLES.
func (c *Config) HasDedicated() bool {
	for _, p := range c.Publications {
		if len(p.Tables) > 0 {
			return true
		}
	}
	return false
}

// SubscriptionConninfo is the connection string green uses to reach blue,
// with the password shown as a placeholder (it is read at run time only).
func (c *Config) SubscriptionConninfo() string {
	if c.Replication.BlueConninfo != "" {
		return c.Replication.BlueConninfo + " user=" + c.Replication.Role + " password=********"
	}
	host, port, db := "<blue host>", "5432", "<blue db>"
	if pc, err := pgconn.ParseConfig(c.Blue.Conninfo); err == nil {
		host, port, db = pc.Host, fmt.Sprint(pc.Port), pc.Database
	}
	return fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=********", host, port, db, c.Replication.Role)
}

func (c *Config) CopyData() bool { return c.Strategy == "copy" }

// Sync tunes the copy strategy's initial sync and the statistics after it
// (the `sync:` section of the configuration). Zero values are planned from
// green's cores and settings.
type Sync struct {
	// GreenCores is how many cores green has. 0: this machine's when green
	// is on a loopback address or a socket (the lab), else 2.
	GreenCores int `yaml:"green_cores"`
	// AnalyzeJobs is how many connections analyze-green uses at once
	// (vacuumdb -j). 0: green's cores.
	AnalyzeJobs int `yaml:"analyze_jobs"`
	// CopyJobs is how many sessions on each side copy-data uses for the
	// publications with copy: snapshot. 0: two per core of green, at most 6.
	CopyJobs int `yaml:"copy_jobs"`
}

// GreenCores is sync.green_cores, or this machine's cores when green runs
// here, or 2: PostgreSQL has no SQL function that says.
func (c *Config) GreenCores() int {
	if c.Sync.GreenCores > 0 {
		return c.Sync.GreenCores
	}
	if greenIsLocal(c.Green.Conninfo) {
		return runtime.NumCPU()
	}
	return 2
}

// greenIsLocal reports whether a connection string reaches this machine.
func greenIsLocal(conninfo string) bool {
	pc, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return false
	}
	if strings.HasPrefix(pc.Host, "/") || pc.Host == "localhost" {
		return true
	}
	ip := net.ParseIP(pc.Host)
	return ip != nil && ip.IsLoopback()
}

// SyncSources are the subscriptions progress reads, with their slots.
func (c *Config) SyncSources() pg.SyncSources {
	src := pg.SyncSources{Subscriptions: c.FeedNames(), Slots: map[string]string{}}
	for _, p := range c.Publications {
		src.Slots[c.Feed(p.Name)] = c.Feed(p.Name)
		if c.BySnapshot(p) {
			src.Snapshot = append(src.Snapshot, p.Name)
		}
	}
	return src
}

// Strategy-membership lists used by the catalog.
var (
	cloneStrategies = []string{"aurora-clone", "rds-snapshot", "clone"}
	awsStrategies   = []string{"aurora-clone", "rds-snapshot"}
)

// Endpoint describes a connection string without its password.
func Endpoint(conninfo string) string {
	pc, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return state.Redact(conninfo)
	}
	return fmt.Sprintf("%s:%d/%s as %s", pc.Host, pc.Port, pc.Database, pc.User)
}

// SplitQualified splits a possibly quoted, possibly schema-qualified name
// into its unquoted parts: `public."Order.Items"` -> [public Order.Items].
func SplitQualified(name string) []string {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(name); i++ {
		ch := name[i]
		switch {
		case ch == '"' && quoted && i+1 < len(name) && name[i+1] == '"':
			cur.WriteByte('"')
			i++
		case ch == '"':
			quoted = !quoted
		case ch == '.' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(ch)
		}
	}
	return append(parts, cur.String())
}
