package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// A run moves databases, and a server's replication slots are the
// cluster's: each database's feeds need names of their own. The primary
// database (blue.conninfo's) keeps the names a one-database run always had
// (pgbg_all, pgbg_reverse); another's get its name appended.

// DefaultReverseName names the reverse feed's publication, slot and
// subscription in the primary database.
const DefaultReverseName = "pgbg_reverse"

// ProviderDatabases are databases of the providers' own that never move
// and never count as left behind.
var ProviderDatabases = []string{"rdsadmin", "azure_maintenance", "azure_sys", "cloudsqladmin", "alloydbadmin", "alloydbmetadata"}

// PrimaryDatabase is blue.conninfo's database: the one pgbluegreen's own
// sessions use, whose feeds keep their unqualified names.
func (c *Config) PrimaryDatabase() string {
	if c.primary != "" {
		return c.primary // a copy for another database (ForDatabase)
	}
	pc, err := pgconn.ParseConfig(c.Blue.Conninfo)
	if err != nil {
		return ""
	}
	return pc.Database
}

// FeedName names the slot on blue, and the subscription on green, of
// publication pub in database db: pub in the primary database, else pub_db
// made a valid slot name (QualifiedName).
func (c *Config) FeedName(db, pub string) string {
	if db == "" || db == c.PrimaryDatabase() {
		return pub
	}
	return QualifiedName(pub, db)
}

// ReverseName names the reverse feed (green -> blue) of database db: its
// publication and slot on green, its subscription on blue.
func (c *Config) ReverseName(db string) string { return c.FeedName(db, DefaultReverseName) }

// QualifiedName is base_db as a replication slot may be named: lower-case
// letters, digits and underscores, at most 63 bytes. Other characters of
// db become underscores; a name that would be longer, or that changed,
// ends in 8 hex digits of db's hash, so two databases never share one.
func QualifiedName(base, db string) string {
	var b strings.Builder
	changed := false
	for _, r := range db {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r - 'A' + 'a')
			changed = true
		default:
			b.WriteByte('_')
			changed = true
		}
	}
	name := base + "_" + b.String()
	if !changed && len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(db))
	suffix := "_" + hex.EncodeToString(sum[:4])
	if len(name)+len(suffix) > 63 {
		name = name[:63-len(suffix)]
	}
	return name + suffix
}

// validateDatabases returns the problems of databases and stay.
func (c *Config) validateDatabases() []string {
	var p []string
	bad := func(format string, args ...any) { p = append(p, "config: "+fmt.Sprintf(format, args...)) }
	moving := map[string]bool{}
	for i, d := range c.Databases {
		switch {
		case d == "":
			bad("databases[%d] is empty: name a database of blue", i)
		case moving[d]:
			bad("databases[%d] %q is listed twice", i, d)
		}
		moving[d] = true
	}
	if len(c.Databases) > 0 && c.PrimaryDatabase() != "" && !moving[c.PrimaryDatabase()] {
		bad("databases: blue.conninfo's database %q is not in the list: pgbluegreen's sessions use it, so it moves too", c.PrimaryDatabase())
	}
	staying := map[string]bool{}
	for i, s := range c.Stay {
		switch {
		case s.Name == "":
			bad("stay[%d].name is missing", i)
		case strings.TrimSpace(s.Reason) == "":
			bad("stay[%d] %q has no reason: say why it stays on blue (it is journaled)", i, s.Name)
		case moving[s.Name]:
			bad("stay[%d] %q is also in databases: a database moves or stays", i, s.Name)
		case staying[s.Name]:
			bad("stay[%d] %q is listed twice", i, s.Name)
		case s.Name == c.PrimaryDatabase():
			bad("stay[%d] %q is blue.conninfo's database, which moves: point blue.conninfo at a database that moves", i, s.Name)
		}
		staying[s.Name] = true
	}
	for i, pub := range c.Publications {
		if pub.Database != "" && len(pub.Tables) == 0 {
			bad("publications[%d].database is for a publication that lists its tables; one without tables is made in every database", i)
		}
		if pub.Database != "" && (staying[pub.Database] || len(c.Databases) > 0 && !moving[pub.Database]) {
			bad("publications[%d].database %q does not move", i, pub.Database)
		}
	}
	return p
}

// Staying reports whether db is listed as staying on blue, and why.
func (c *Config) Staying(db string) (reason string, ok bool) {
	for _, s := range c.Stay {
		if s.Name == db {
			return s.Reason, true
		}
	}
	return "", false
}

// PublicationsOf are the publications made in database db: those without
// tables, and those that list tables of db.
func (c *Config) PublicationsOf(db string) []Publication {
	primary := c.PrimaryDatabase()
	var out []Publication
	for _, p := range c.Publications {
		in := p.Database
		if in == "" {
			in = primary
		}
		if len(p.Tables) == 0 || in == db || db == "" {
			out = append(out, p)
		}
	}
	return out
}

// ForDatabase is a copy of c for a step acting in database db: its
// publications (PublicationsOf) and the names of its feeds (Feed).
func (c *Config) ForDatabase(db string) *Config {
	out := *c
	out.primary = c.PrimaryDatabase()
	out.InDatabase = db
	out.Publications = c.PublicationsOf(db)
	if db != "" && db != out.primary {
		// Every connection string names db: pg_dump's, the subscriptions'.
		out.Blue.Conninfo = pg.WithDatabase(c.Blue.Conninfo, db)
		out.Green.Conninfo = pg.WithDatabase(c.Green.Conninfo, db)
		if c.Replication.BlueConninfo != "" {
			out.Replication.BlueConninfo = pg.WithDatabase(c.Replication.BlueConninfo, db)
		}
	}
	return &out
}

// Feed names the slot on blue and the subscription on green of
// publication pub in the configuration's database (FeedName).
func (c *Config) Feed(pub string) string { return c.FeedName(c.InDatabase, pub) }

// FeedNames are the feeds of the configuration's publications: one slot
// and one subscription each, of the same name.
func (c *Config) FeedNames() []string {
	out := make([]string, len(c.Publications))
	for i, p := range c.Publications {
		out[i] = c.Feed(p.Name)
	}
	return out
}
