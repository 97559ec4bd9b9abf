package steps

import (
	"context"
	"strings"
	"testing"
	"time"

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

// TestCutoverRefusals: a second cutover and a rollback with no cutover in
// force are refused before anything is opened; a rollback recorded after
// the cutover lets a new cutover through the guard.
func TestCutoverRefusals(t *testing.T) {
	cfg, err := ParseConfig([]byte("blue: {conninfo: 'host=b dbname=app'}\ngreen: {conninfo: 'host=g dbname=app'}\nreplication: {password: {env: PGBG_TEST_PW}}\ncutover: {method: nologin}\n"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	env := func(values map[string]string) *Env { return &Env{Config: cfg, Values: values, step: "cutover"} }
	ctx := context.Background()

	e := env(map[string]string{CutoverDoneAtKey: at.Format(time.RFC3339Nano)})
	if err := runCutover(ctx, e); !IsRefused(err) || !strings.Contains(err.Error(), "second cutover") {
		t.Errorf("cutover after a cutover: %v", err)
	}
	if res, err := checkCutover(ctx, e); err != nil || !res.Done {
		t.Errorf("check after a cutover: %+v %v", res, err)
	}
	if err := runRollback(ctx, env(map[string]string{})); !IsRefused(err) {
		t.Errorf("rollback with no cutover: %v", err)
	}
	rolled := env(map[string]string{CutoverDoneAtKey: at.Format(time.RFC3339Nano), RollbackDoneAtKey: at.Add(time.Minute).Format(time.RFC3339Nano)})
	if err := runRollback(ctx, rolled); !IsRefused(err) {
		t.Errorf("rollback after a rollback: %v", err)
	}
	if res, _ := checkRollback(ctx, rolled); !res.Done {
		t.Error("check of a done rollback")
	}
	if res, err := checkCutover(ctx, rolled); err != nil || res.Done {
		t.Errorf("cutover check after a rollback (offline): %+v %v", res, err)
	}
	// Past the guard it needs the servers: offline it says so.
	if err := runCutover(ctx, rolled); err == nil || IsRefused(err) || !strings.Contains(err.Error(), "no connection") {
		t.Errorf("cutover after a rollback, offline: %v", err)
	}
}
