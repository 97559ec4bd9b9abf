package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// `watch --alerts`, the real program headless on a lab: a slot on blue that
// nobody consumes falls behind past lag_bytes, then a step finishes; a
// local HTTP server receives each alert's JSON once.
func TestWatchAlertsLab(t *testing.T) {
	labtest.Require(t)
	info := labtest.Start(t, labtest.StartParams{Strategy: "copy"})
	var mu sync.Mutex
	var got []monitor.Alert
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var a monitor.Alert
		if err := json.Unmarshal(body, &a); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
		t.Logf("alert body received: %s", strings.TrimSpace(string(body)))
	}))
	defer srv.Close()
	received := func(event string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range got {
			if a.Event == event {
				n++
			}
		}
		return n
	}
	raw, err := os.ReadFile(info.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(info.Dir, "alerts.yaml")
	alerts := "\nalerts:\n  webhook: " + srv.URL + "/services/T000/B000/SECRET\n  lag_bytes: 64kB\n  for: 1s\n"
	if err := os.WriteFile(cfg, append(raw, alerts...), 0o600); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(info.Dir, "pgbluegreen.state.json")
	bin := binary(t)
	cmd := exec.Command(bin, "watch", "--alerts", "--config", cfg, "--state", statePath)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s; watch said:\n%s", what, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ctx := context.Background()
	blue, err := pgx.Connect(ctx, info.Blue.Conninfo)
	if err != nil {
		t.Fatal(err)
	}
	defer blue.Close(ctx)
	for _, sql := range []string{
		"SELECT pg_create_logical_replication_slot('alert_test_slot', 'pgoutput')",
		"CREATE TABLE alert_filler (id int PRIMARY KEY, v text)",
		"INSERT INTO alert_filler SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g",
	} {
		if _, err := blue.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	waitFor("lag alert", func() bool { return received("lag_bytes") > 0 })
	if code, o, e := cli(t, "run", "preflight", "--config", cfg, "--state", statePath); code != exitOK {
		t.Fatalf("run preflight: exit %d\n%s%s", code, o, e)
	}
	waitFor("step alert", func() bool { return received("step_done") > 0 })
	// A few more polls of the same conditions: still once each.
	time.Sleep(3 * time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("watch after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("watch still running a minute after SIGTERM")
	}
	if l, s := received("lag_bytes"), received("step_done"); l != 1 || s != 1 {
		t.Errorf("received lag_bytes %d times, step_done %d times; want once each", l, s)
	}
	t.Logf("watch said:\n%s", out.String())
	if strings.Contains(out.String(), "SECRET") {
		t.Errorf("watch printed the webhook's secret")
	}
	journal, _ := os.ReadFile(journalPath(statePath))
	if strings.Contains(string(journal), "SECRET") || !strings.Contains(string(journal), `"kind":"alert"`) {
		t.Errorf("journal: secret leaked or no alert journaled")
	}
}
