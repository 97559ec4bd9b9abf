package steps

import (
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

func TestRelListRoundTrip(t *testing.T) {
	rels := []pg.Rel{{Schema: "public", Name: "events_log"}, {Schema: "inv", Name: `Odd, "Name"`}, {Schema: "x.y", Name: "z"}}
	v := relList(rels)
	if got := parseRelList(v); !reflect.DeepEqual(got, rels) {
		t.Errorf("parseRelList(%q) = %q", v, got)
	}
	if got := parseRelList("none"); got != nil {
		t.Errorf("none parsed as %q", got)
	}
	if got := configRel("OrderItems"); got != (pg.Rel{Schema: "public", Name: "OrderItems"}) {
		t.Errorf("configRel without schema: %v", got)
	}
}

func FuzzParseRelList(f *testing.F) {
	f.Add("public", "events_log", "inv", `A "b", c`)
	f.Fuzz(func(t *testing.T, s1, n1, s2, n2 string) {
		rels := []pg.Rel{{Schema: s1, Name: n1}, {Schema: s2, Name: n2}}
		for _, r := range rels {
			// pgx's Sanitize drops NUL bytes; PostgreSQL names never hold them.
			if strings.ContainsRune(r.Schema+r.Name, 0) {
				return
			}
		}
		if got := parseRelList(relList(rels)); !reflect.DeepEqual(got, rels) {
			t.Errorf("round trip of %q gave %q", rels, got)
		}
	})
}

// The subscription's connection string, password included, parses back to
// exactly the configured values, whatever the password holds.
func TestSubscriptionConninfoSecretEscapes(t *testing.T) {
	const pw = `p a's\s=w"rd`
	t.Setenv("PGBG_TEST_REPL_PW", pw)
	c := &config.Config{Blue: config.Conn{Conninfo: "host=db.example port=5433 dbname=app user=postgres"},
		Replication: config.Replication{Role: "pgbg_repl", Password: config.PasswordSource{Env: "PGBG_TEST_REPL_PW"}}}
	s, err := c.SubscriptionConninfoSecret()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pgconn.ParseConfig(s)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if pc.Password != pw || pc.User != "pgbg_repl" || pc.Host != "db.example" || pc.Port != 5433 || pc.Database != "app" {
		t.Errorf("parsed back as user %q host %q port %d db %q, password ok %v", pc.User, pc.Host, pc.Port, pc.Database, pc.Password == pw)
	}
	if strings.Contains(c.SubscriptionConninfo(), pw) {
		t.Error("the plan's connection string shows the password")
	}
}

func TestSlotsNeeded(t *testing.T) {
	c := &config.Config{Strategy: "copy", Blue: config.Conn{Conninfo: "host=b dbname=app"}, Publications: []config.Publication{{Name: "a"}, {Name: "b", Tables: []string{"t"}}}}
	if n := c.SlotsNeeded([]string{"app"}, 2); n != 6 {
		t.Errorf("copy, 2 publications, 2 sync workers: %d slots", n)
	}
	// The publication that lists app's tables is app's alone.
	if n := c.SlotsNeeded([]string{"app", "billing"}, 2); n != 9 {
		t.Errorf("copy, 2 databases, 3 feeds, 2 sync workers: %d slots", n)
	}
	c.Strategy = "clone"
	if n := c.SlotsNeeded([]string{"app"}, 2); n != 2 {
		t.Errorf("clone, 2 publications: %d slots", n)
	}
}
