package steps

import (
	"context"
	"sort"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// What the steps derive from the configuration: publications and their
// tables, slots, subscriptions, the replication connection string.

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
	parts := config.SplitQualified(name)
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
