package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// What the steps derive from the configuration: publications and their
// tables, slots, subscriptions, the replication connection string.

// Strategy-membership lists used by the catalog.
var (
	cloneStrategies = []string{"aurora-clone", "rds-snapshot", "clone"}
	awsStrategies   = []string{"aurora-clone", "rds-snapshot"}
)

// relList renders relations for a message or a recorded value.
func relList(rels []pg.Rel) string {
	s := make([]string, len(rels))
	for i, r := range rels {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

// configRel reads a table name of the configuration (schema.table, parts
// optionally quoted; no schema means public).
func configRel(name string) pg.Rel {
	parts := SplitQualified(name)
	if len(parts) == 1 {
		return pg.Rel{Schema: "public", Name: parts[0]}
	}
	return pg.Rel{Schema: parts[len(parts)-2], Name: parts[len(parts)-1]}
}

// parseRelList reads a value recorded by relList back.
func parseRelList(v string) []pg.Rel {
	if v == "none" {
		return nil
	}
	var out []pg.Rel
	var cur strings.Builder
	quoted := false
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, configRel(s))
		}
		cur.Reset()
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			quoted = !quoted
			cur.WriteByte(c)
		case c == ',' && !quoted:
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// wantPublication is what one configured publication must contain.
type wantPublication struct {
	Name      string
	AllTables bool
	Tables    []pg.Rel // sorted as the server sorts them (byte order)
}

// desiredPublications resolves the configured publications against blue:
// dedicated ones name their tables; the one with no tables is FOR ALL
// TABLES, or, when others list tables, FOR TABLE the rest of the schemas.
func (e *Env) desiredPublications(ctx context.Context) ([]wantPublication, error) {
	listed := map[pg.Rel]bool{}
	dedicated := false
	for _, p := range e.Config.Publications {
		for _, t := range p.Tables {
			listed[configRel(t)] = true
			dedicated = true
		}
	}
	var rest []pg.Rel
	if dedicated {
		all, err := pg.PublishableTables(ctx, e.Blue, e.Config.Schemas)
		if err != nil {
			return nil, err
		}
		for _, t := range all {
			if !listed[t] {
				rest = append(rest, t)
			}
		}
	}
	var out []wantPublication
	for _, p := range e.Config.Publications {
		w := wantPublication{Name: p.Name}
		switch {
		case len(p.Tables) > 0:
			for _, t := range p.Tables {
				w.Tables = append(w.Tables, configRel(t))
			}
		case dedicated:
			w.Tables = rest
		default:
			w.AllTables = true
		}
		sort.Slice(w.Tables, func(i, j int) bool {
			a, b := w.Tables[i], w.Tables[j]
			return a.Schema < b.Schema || (a.Schema == b.Schema && a.Name < b.Name)
		})
		out = append(out, w)
	}
	return out, nil
}

func sameRels(a, b []pg.Rel) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// publicationNames are the configured publications (= slots = subscriptions).
func (c *Config) publicationNames() []string {
	out := make([]string, len(c.Publications))
	for i, p := range c.Publications {
		out[i] = p.Name
	}
	return out
}

// isCloneStrategy reports whether green starts from a copy of blue's data.
func (c *Config) isCloneStrategy() bool {
	for _, s := range cloneStrategies {
		if c.Strategy == s {
			return true
		}
	}
	return false
}

// subscriptionConninfoSecret is the connection string green's subscriptions
// use, password included: built at run time, passed to pg only as a bind
// parameter. Values are quoted for libpq; a later keyword wins in libpq,
// so user and password appended to replication.blue_conninfo override any
// it holds.
func (c *Config) subscriptionConninfoSecret() (string, error) {
	pw, err := c.ReplicationPassword()
	if err != nil {
		return "", err
	}
	q := pg.QuoteConninfoValue
	base := c.Replication.BlueConninfo
	if base == "" || strings.Contains(base, "://") {
		host, port, db := c.replicationEndpoint()
		if host == "" {
			return "", fmt.Errorf("cannot read blue's host from the configuration: check blue.conninfo / replication.blue_conninfo")
		}
		base = fmt.Sprintf("host=%s port=%s dbname=%s", q(host), q(port), q(db))
	}
	return base + " user=" + q(c.Replication.Role) + " password=" + q(pw), nil
}

// slotName is the slot of a publication; the subscription has the same name.
func slotName(pub string) string { return pub }

// hasDedicated reports whether a publication lists its tables: the one
// that does not is then FOR TABLE the rest, not FOR ALL TABLES.
func (c *Config) hasDedicated() bool {
	for _, p := range c.Publications {
		if len(p.Tables) > 0 {
			return true
		}
	}
	return false
}

// subscriptionConninfo is the connection string green uses to reach blue,
// with the password shown as a placeholder (it is read at run time only).
func (c *Config) subscriptionConninfo() string {
	if c.Replication.BlueConninfo != "" {
		return c.Replication.BlueConninfo + " user=" + c.Replication.Role + " password=********"
	}
	host, port, db := "<blue host>", "5432", "<blue db>"
	if pc, err := pgconn.ParseConfig(c.Blue.Conninfo); err == nil {
		host, port, db = pc.Host, fmt.Sprint(pc.Port), pc.Database
	}
	return fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=********", host, port, db, c.Replication.Role)
}

func (c *Config) copyData() bool { return c.Strategy == "copy" }
