package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/jackc/pgx/v5"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui"
)

// Who is connected, on a lab under load with a stray session: psql-like,
// straight to blue as the application role, holding a transaction open.
// `sessions --json` and the connections pane both list it, marked direct
// and long; the load's sessions come through PgBouncer and are not marked;
// x on it, confirmed by the database's name, ends it, journaled.

// drive runs a command as tea.Program would (batches in turn) and feeds
// every message back into the model; ticks are left out (they only re-arm).
func drive(m tea.Model, cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	msg := cmd()
	switch msg := msg.(type) {
	case tea.BatchMsg:
		for _, c := range msg {
			drive(m, c)
		}
	case nil:
	default:
		_, next := m.Update(msg)
		drive(m, next)
	}
}

func key(k string) tea.KeyMsg {
	switch k {
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

func TestConnectionsLab(t *testing.T) {
	info := labtest.Start(t, labtest.StartParams{Strategy: "copy"})
	// A transaction open longer than the drain timeout is long: 1 s here,
	// so the test does not wait the lab's 10 s.
	raw, err := os.ReadFile(info.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(info.Dir, "short.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(raw), "drain_timeout: 10s", "drain_timeout: 1s", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	stopLoad := labtest.StartLoad(t, info.Dir, labtest.LoadParams{Rate: 200, Clients: 4})
	defer stopLoad()

	ctx := context.Background()
	stray, err := pgx.Connect(ctx, strings.Replace(info.Blue.Conninfo, "user=postgres", "user="+lab.AppRole, 1)+" application_name=psql")
	if err != nil {
		t.Fatal(err)
	}
	defer stray.Close(ctx)
	var pid int32
	if err := stray.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := stray.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := stray.Exec(ctx, "SELECT count(*) FROM pg_class"); err != nil {
		t.Fatal(err)
	}
	g := globals{config: cfgPath, state: filepath.Join(info.Dir, "pgbluegreen.state.json")}

	// sessions --json, until the transaction is past the bound.
	var c monitor.Connections
	var stray1 monitor.SessionView
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out, errb strings.Builder
		if code := runSessions(&call{program: &program{stdout: &out, stderr: &errb}, g: g, cmd: sessionsCommand}, []string{"--json"}); code != exitOK {
			t.Fatalf("sessions --json: exit %d: %s", code, errb.String())
		}
		c = monitor.Connections{}
		if err := json.Unmarshal([]byte(out.String()), &c); err != nil {
			t.Fatalf("sessions --json is not one JSON document: %v\n%s", err, out.String())
		}
		for _, s := range c.Servers[0].Sessions {
			if s.PID == pid {
				stray1 = s
			}
		}
		if stray1.Long || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !stray1.Direct || !stray1.Long || stray1.Application != "psql" {
		t.Fatalf("the stray session in sessions --json: %+v", stray1)
	}
	through := 0
	for _, s := range c.Servers[0].Sessions {
		if s.Via == "lab" {
			through++
			if s.Direct {
				t.Errorf("a session through PgBouncer marked direct: %+v", s)
			}
		}
	}
	if through == 0 {
		t.Errorf("no session of the load counted as through PgBouncer: %+v", c.Servers[0].Sessions)
	}
	var text strings.Builder
	runSessions(&call{program: &program{stdout: &text, stderr: &text}, g: g, cmd: sessionsCommand}, nil)
	if !strings.Contains(text.String(), "⚠ DIRECT (not through PgBouncer) ⚠ LONG TRANSACTION: pid") {
		t.Errorf("sessions text lacks the marked session:\n%s", text.String())
	}
	t.Logf("sessions:\n%s", text.String())

	// The pane, on the real monitor and runner, at 120x40.
	s, code := (&call{program: &program{stdout: os.Stdout, stderr: os.Stderr}, g: g}).open(needs{state: writeState, journal: true, pools: stepPools})
	if s == nil {
		t.Fatalf("open session: exit %d", code)
	}
	defer s.close()
	mon := monitor.NewMonitor(s.blue, s.green, s.cfg)
	r := s.runner()
	m := ui.New(ui.Params{Config: s.cfg, Steps: r.Steps, Runner: r, Store: s.store, Database: lab.AppDB,
		Lag: mon.Lag, Traffic: mon.Traffic, Connections: mon.Connections, PollTimeout: 10 * time.Second})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	for i := 0; i < 4; i++ {
		_, cmd := m.Update(key("tab"))
		drive(m, cmd)
	}
	scr := ansi.Strip(m.View())
	t.Logf("the connections pane at 120x40 during lab load with a stray session:\n%s", scr)
	for _, want := range []string{"Connections · blue", "⚠ DIRECT ⚠ LONG TX", "app@127.0.0.1", "psql", "via PgBouncer lab", "PgBouncer lab", "(blue) · not paused"} {
		if !strings.Contains(scr, want) {
			t.Errorf("pane lacks %q", want)
		}
	}
	// x on the stray session (the marked group first, its session under it).
	for _, k := range []string{"down", "down", "x", "a", "p", "p", "enter"} {
		_, cmd := m.Update(key(k))
		drive(m, cmd)
	}
	if err := stray.Ping(ctx); err == nil {
		t.Errorf("the stray session still answers after x and the database's name")
	}
	entries, _, err := state.ReadJournal(journalPath(g.state), 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Step == "sessions" && e.Kind == "sql" && strings.Contains(e.Text, "pg_terminate_backend(pid)") && strings.Contains(e.Text, "WHERE pid = ") {
			found = true
			t.Logf("journaled: [%s %s] %s", e.Target, e.Kind, e.Text)
		}
	}
	if !found {
		t.Errorf("the ended session is not journaled as a statement")
	}
}
