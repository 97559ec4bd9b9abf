package cutover

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestBouncerClientConninfo: the client connection through PgBouncer keeps
// the console's host and port and takes the served database and the first
// application role, for keyword strings and URLs alike; no role is an error.
func TestBouncerClientConninfo(t *testing.T) {
	for _, admin := range []string{
		"host=10.0.0.5 port=6432 dbname=pgbouncer user=pgbouncer sslmode=disable",
		"postgres://pgbouncer@10.0.0.5:6432/pgbouncer?sslmode=disable",
	} {
		got, err := bouncerClientConninfo(admin, "my app", []string{"App User", "other"})
		if err != nil {
			t.Fatalf("%s: %v", admin, err)
		}
		cfg, err := pgconn.ParseConfig(got)
		if err != nil {
			t.Fatalf("%s -> %s: %v", admin, got, err)
		}
		if cfg.Host != "10.0.0.5" || cfg.Port != 6432 || cfg.Database != "my app" || cfg.User != "App User" {
			t.Errorf("%s -> %s: host %s port %d db %q user %q", admin, got, cfg.Host, cfg.Port, cfg.Database, cfg.User)
		}
	}
	if _, err := bouncerClientConninfo("host=h dbname=pgbouncer", "app", nil); err == nil || !strings.Contains(err.Error(), "app_roles") {
		t.Errorf("no application role: %v", err)
	}
}
