package pg

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestWithDatabase: the database changes and nothing else does, for
// keyword strings and URLs, names with spaces and quotes included.
func TestWithDatabase(t *testing.T) {
	for _, in := range []string{
		"host=10.0.0.5 port=6432 dbname=app user=admin sslmode=require passfile=/tmp/p",
		"postgres://admin@10.0.0.5:6432/app?sslmode=require&passfile=/tmp/p",
		"host=10.0.0.5 port=6432 user=admin sslmode=require passfile=/tmp/p",
	} {
		for _, db := range []string{"billing", "my db", `it's "x"`} {
			got := WithDatabase(in, db)
			cfg, err := pgconn.ParseConfig(got)
			if err != nil {
				t.Fatalf("%s -> %s: %v", in, got, err)
			}
			if cfg.Database != db || cfg.Host != "10.0.0.5" || cfg.Port != 6432 || cfg.User != "admin" || cfg.RuntimeParams["passfile"] != "" {
				t.Errorf("%s -> %s: db %q host %s port %d user %s", in, got, cfg.Database, cfg.Host, cfg.Port, cfg.User)
			}
			if cfg.TLSConfig == nil {
				t.Errorf("%s -> %s: sslmode=require lost", in, got)
			}
		}
	}
}

// TestSettingValue: a stored setting renders as pg_dump writes it: a list
// of names (search_path) one literal per name, anything else one literal.
func TestSettingValue(t *testing.T) {
	for _, c := range []struct{ name, value, want string }{
		{"search_path", `"$user", public`, `'$user', 'public'`},
		{"search_path", `"my ""odd"" schema",public`, `'my "odd" schema', 'public'`},
		{"work_mem", "64MB", "'64MB'"},
		{"application_name", "it's", "'it''s'"},
	} {
		if got := settingValue(c.name, c.value); got != c.want {
			t.Errorf("%s = %s: %s, want %s", c.name, c.value, got, c.want)
		}
	}
}
