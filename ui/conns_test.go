package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/prompt"
)

// connsFixture is a read of who is connected during a load: four
// application sessions through PgBouncer, one psql session straight to blue
// with a transaction open for 1m05s, pgbluegreen's own, and one session on
// green.
func connsFixture() monitor.Connections {
	started := epoch.Add(-10 * time.Minute)
	sess := func(pid int32, user, app, client, st string, xact time.Duration, wait, query string) monitor.SessionView {
		return monitor.SessionView{Activity: monitor.Activity{Session: monitor.Session{PID: pid, User: user, Application: app, Client: client, State: st,
			XactAge: xact, WaitEvent: wait, Query: query}, BackendStart: started, StateAge: 3 * time.Second}}
	}
	blue := []monitor.SessionView{
		sess(4101, "app", "", "127.0.0.1:40001", "idle", 0, "Client:ClientRead", "COMMIT"),
		sess(4102, "app", "", "127.0.0.1:40002", "idle", 0, "Client:ClientRead", "COMMIT"),
		sess(4103, "app", "", "127.0.0.1:40003", "active", 12*time.Millisecond, "", "INSERT INTO ledger VALUES ($1, $2)"),
		sess(4104, "app", "", "127.0.0.1:40004", "idle", 0, "Client:ClientRead", "COMMIT"),
		sess(4242, "app", "psql", "10.0.3.7:51234", "idle in transaction", 65*time.Second, "Client:ClientRead", "UPDATE accounts SET balance = balance - 10 WHERE id = 7"),
		sess(4300, "postgres", "pgbluegreen", "127.0.0.1:40100", "idle", 0, "Client:ClientRead", "SELECT slot_name"),
	}
	for i := range blue[:4] {
		blue[i].Via = "lab"
	}
	blue[4].Direct, blue[4].Long = true, true
	blue[5].Ours = true
	green := []monitor.SessionView{sess(5200, "postgres", "pgbluegreen", "127.0.0.1:40200", "idle", 0, "Client:ClientRead", "SELECT 1")}
	green[0].Ours = true
	c := monitor.Connections{At: epoch, LongAfter: 10 * time.Second, Flagged: 1,
		Servers: []monitor.ServerSessions{{Name: "blue", Sessions: blue}, {Name: "green", Sessions: green}},
		Bouncers: []monitor.BouncerActivity{{Name: "lab",
			Databases: []monitor.BouncerDatabase{{Name: "app", Host: "127.0.0.1", Port: 5432, Database: "app", PoolMode: "transaction"}, {Name: "pgbouncer", Host: "", Port: 6432, Database: "pgbouncer"}},
			Pools:     []monitor.BouncerPool{{Database: "app", User: "app", ClActive: 8, ClWaiting: 0, SvActive: 1, SvIdle: 3, PoolMode: "transaction"}}}},
		Sides: map[string]map[string]string{"lab": {"app": "blue"}},
	}
	c.Servers[0].Groups = monitor.GroupSessions(blue)
	c.Servers[1].Groups = monitor.GroupSessions(green)
	return c
}

// connsModel is the golden model with the connections pane focused and read.
func connsModel(t testing.TB) *Model {
	m := goldenModel(t)
	m.focus = focusConns
	m.Update(connsMsg(m, connsFixture()))
	return m
}

// TestConnsGoldenScreens: the connections pane at the smallest and a large
// size, colour stripped. go test ./ui -run ConnsGolden -update rewrites them.
func TestConnsGoldenScreens(t *testing.T) {
	goldenScreens(t, "conns", connsModel, []string{"⚠ 1 DIRECT", "⚠ LONG TX 1m05s", "pid 4242 app@10.0.3.7:51234 psql", "PgBouncer lab", "app → 127.0.0.1:5432/app (blue)"})
}

// TestConnsTerminate: tab reaches the pane; enter opens a group; x on a
// session asks for the database's name, a wrong name ends nothing, the
// right one ends it through the runner; pgbluegreen's own is refused.
func TestConnsTerminate(t *testing.T) {
	h, f := switchModel(t, nil)
	m := h.m
	for m.focus != focusConns {
		h.key("tab")
	}
	if !m.keys.Terminate.Enabled() || m.keys.Run.Enabled() {
		t.Fatalf("keys in the pane: terminate %t, run %t", m.keys.Terminate.Enabled(), m.keys.Run.Enabled())
	}
	h.send(connsMsg(m, connsFixture()))
	scr := h.screen()
	if !strings.Contains(scr, "Connections · blue 6 · green 1 · ⚠ 1 marked") || strings.Contains(scr, "pid 4101") {
		t.Fatalf("pane:\n%s", scr)
	}
	// The cursor to the direct session: the blue heading, its group, the session.
	h.key("down", "down")
	h.key("x")
	if m.prompt.Kind() != prompt.Terminate || !strings.Contains(h.screen(), "end session pid 4242 on blue (app@10.0.3.7:51234 psql)") {
		t.Fatalf("x did not ask:\n%s", h.screen())
	}
	h.typeText("nope")
	h.key("enter")
	if f.count() != 0 || !strings.Contains(h.screen(), "nothing was ended") {
		t.Fatalf("a wrong name ended a session:\n%s", h.screen())
	}
	h.key("esc", "x")
	h.typeText("app")
	h.key("enter")
	h.until("the session to be ended", func() bool { return strings.Contains(m.logText(), "session pid 4242 on blue") })
	if f.runs[0] != "terminate blue 4242" {
		t.Errorf("runner got %v", f.runs)
	}
	// enter opens the group of four: their sessions show.
	h.key("g", "down", "down", "down", "enter")
	if scr := h.screen(); !strings.Contains(scr, "pid 4101") {
		t.Errorf("enter did not open the group:\n%s", scr)
	}
}
