package steps

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// TestSwitchOffline: without connections, the cutover's check and run say
// they need the servers (where traffic goes is read from them, never taken
// from the state file), and the plan lists every sub-step of the attempt,
// the fence included, with placeholders for what only the servers know.
func TestSwitchOffline(t *testing.T) {
	cfg, err := config.Parse([]byte("blue: {conninfo: 'host=b dbname=app'}\ngreen: {conninfo: 'host=g dbname=app'}\nreplication: {password: {env: PGBG_TEST_PW}}\napp_roles: [app]\ncutover: {method: pgbouncer, pgbouncer: [{name: main, admin_conninfo: 'host=pb port=6432 dbname=pgbouncer user=admin', ini: /etc/pgbouncer.ini, database: app}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	e := &Env{Config: cfg, Values: map[string]string{CutoverDoneAtKey: at.Format(time.RFC3339Nano)}, step: "cutover"}
	ctx := context.Background()
	if _, err := e.checkSwitch(ctx, false); err == nil || !strings.Contains(err.Error(), "no connection") {
		t.Errorf("offline check, with a cutover recorded: %v, want: no connection", err)
	}
	if err := e.switchover(ctx, true); err == nil || IsRefused(err) || !strings.Contains(err.Error(), "no connection") {
		t.Errorf("offline rollback: %v", err)
	}
	acts, err := cutoverStep().RenderPlan(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for _, a := range acts {
		plan = append(plan, a.Text)
	}
	text := strings.Join(plan, "\n")
	for _, want := range []string{"== pause", "PAUSE app", "== fence blue", `REVOKE CONNECT ON DATABASE "app" FROM PUBLIC, "app"`, "SET server_login_retry = <its value before the cutover>",
		"<the drain LSN:", "edit /etc/pgbouncer.ini: [databases] app: host=g port=5432 dbname=app"} {
		if !strings.Contains(text, want) {
			t.Errorf("offline plan lacks %q:\n%s", want, text)
		}
	}
}
