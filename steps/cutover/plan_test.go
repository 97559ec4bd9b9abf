package cutover

import (
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// TestPlanOfTwoDatabases: the configuration with a second database maps
// onto one Params with each database's feeds named as steps/config names
// them, and the plan (made offline) of one cutover pauses, repoints and
// resumes both entries of every PgBouncer, drains, syncs and anchors each
// database, and fences each by CONNECT, never by NOLOGIN.
func TestPlanOfTwoDatabases(t *testing.T) {
	cfg, err := config.Parse([]byte("blue: {conninfo: 'host=b dbname=app'}\ngreen: {conninfo: 'host=g dbname=app'}\nreplication: {password: {env: PGBG_TEST_PW}}\napp_roles: [app]\npublications: [{name: pgbg_all}]\ncutover: {method: pgbouncer, pgbouncer: [{name: main, admin_conninfo: 'host=pb port=6432 dbname=pgbouncer user=admin', ini: /etc/pgbouncer.ini, database: app}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := FromConfig(cfg, []DatabasePools{{Name: "app"}, {Name: "billing"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Databases) != 2 || strings.Join(p.Databases[0].Subscriptions, ",") != "pgbg_all" || p.Databases[0].Reverse != "pgbg_reverse" ||
		strings.Join(p.Databases[1].Subscriptions, ",") != "pgbg_all_billing" || p.Databases[1].Reverse != "pgbg_reverse_billing" {
		t.Fatalf("databases: %+v", p.Databases)
	}
	var lines []string
	for _, s := range Plan(p, false) {
		lines = append(lines, "== "+s.Name)
		for _, l := range s.Lines {
			lines = append(lines, l.Text)
		}
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"PAUSE app", "PAUSE billing", "RESUME app", "RESUME billing", "WAIT_CLOSE billing",
		"[databases] app: host=g port=5432 dbname=app, billing: host=g port=5432 dbname=billing",
		"-- drain (billing)", "-- sync sequences (app)", "-- set where the reverse feed starts (billing)",
		`CREATE PUBLICATION "pgbg_reverse_billing" FOR ALL TABLES`, `FIRST 2`,
		`REVOKE CONNECT ON DATABASE "billing" FROM PUBLIC, "app"`, "== fence blue",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the plan lacks %q", want)
		}
	}
	if strings.Contains(text, "NOLOGIN") {
		t.Errorf("the plan takes LOGIN away:\n%s", text)
	}
	if t.Failed() {
		t.Logf("plan:\n%s", text)
	}
}
