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
