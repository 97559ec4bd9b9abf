package ui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/conns"
	"github.com/pgbluegreen/pgbluegreen/ui/lag"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
	"github.com/pgbluegreen/pgbluegreen/ui/statusline"
)

var update = flag.Bool("update", false, "rewrite the golden screens")

func TestMain(m *testing.M) {
	// Goldens are compared without colour; the profile also keeps the
	// renderer from asking the terminal anything.
	lipgloss.SetColorProfile(termenv.Ascii)
	os.Exit(m.Run())
}

// epoch is the fixed clock of the tests.
var epoch = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func testConfig() *config.Config {
	c := &config.Config{Strategy: "copy"}
	c.Blue.Conninfo = "host=blue.internal port=5432 dbname=app user=postgres"
	c.Green.Conninfo = "host=green.internal port=5432 dbname=app user=postgres"
	c.Replication.Password.Env = "PGBG_TEST_PASSWORD"
	c.Defaults()
	return c
}

// openStore opens a real state file in a temp folder (state is plain files).
func openStore(t testing.TB, readOnly bool, dir string) *state.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := state.Open(filepath.Join(dir, "state.json"), state.OpenParams{ReadOnly: readOnly})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fakeRunner counts runs, for the tests where nothing may run.
type fakeRunner struct {
	mu   sync.Mutex
	runs []string
	// params are the RunParams of each run, in order.
	params []steps.RunParams
	real   *steps.Runner
	// ways and halfWay are what WaysOut answers.
	ways    steps.WaysOut
	halfWay bool
}

func (f *fakeRunner) Run(ctx context.Context, id string, p steps.RunParams) (steps.Outcome, error) {
	f.mu.Lock()
	f.runs = append(f.runs, id)
	f.params = append(f.params, p)
	f.mu.Unlock()
	return steps.OutcomeRan, nil
}
func (f *fakeRunner) Preconditions(id string, p steps.RunParams) string {
	return f.real.Preconditions(id, p)
}
func (f *fakeRunner) Env(step string) *steps.Env { return f.real.Env(step) }
func (f *fakeRunner) Skip(id, reason string) error {
	f.mu.Lock()
	f.runs = append(f.runs, "skip "+id)
	f.mu.Unlock()
	return nil
}
func (f *fakeRunner) WaysOut(ctx context.Context, step string) (steps.WaysOut, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ways, f.halfWay && step == f.ways.Step, nil
}
func (f *fakeRunner) RecordIfDone(ctx context.Context, id string) (steps.Outcome, string, error) {
	return "", "", nil
}
func (f *fakeRunner) TerminateSession(ctx context.Context, server string, pid int32, started time.Time, who string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = append(f.runs, fmt.Sprintf("terminate %s %d", server, pid))
	return true, nil
}
func (f *fakeRunner) SetValue(key, value, reason string) error {
	return f.real.SetValue(key, value, reason)
}
func (f *fakeRunner) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.runs)
}

// harness plays the part of tea.Program for model-level tests: it runs the
// commands Update returns in goroutines (as the program does) and feeds the
// messages they produce back into Update, one at a time, in the test's
// goroutine.
type harness struct {
	t    *testing.T
	m    *Model
	msgs chan tea.Msg
	quit bool
	// sent are the messages delivered, in order.
	sent []tea.Msg
}

func newHarness(t *testing.T, m *Model, w, h int) *harness {
	hs := &harness{t: t, m: m, msgs: make(chan tea.Msg, 1024)}
	hs.send(tea.WindowSizeMsg{Width: w, Height: h})
	hs.exec(m.Init())
	return hs
}

func (h *harness) exec(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		if b, ok := msg.(tea.BatchMsg); ok {
			for _, c := range b {
				h.exec(c)
			}
			return
		}
		if msg != nil {
			h.msgs <- msg
		}
	}()
}

// send delivers one message, as the program would.
func (h *harness) send(msg tea.Msg) {
	if _, ok := msg.(tea.QuitMsg); ok {
		h.quit = true
		return
	}
	h.sent = append(h.sent, msg)
	_, cmd := h.m.Update(msg)
	h.exec(cmd)
}

// count is how many messages delivered so far are of a kind.
func (h *harness) count(kind func(tea.Msg) bool) int {
	n := 0
	for _, msg := range h.sent {
		if kind(msg) {
			n++
		}
	}
	return n
}

// feed delivers msg as the program would, at once: the commands Update
// returns run here and their messages are fed back in turn (the panes'
// notes for the log, the alerts). Only for messages whose commands return
// at once: no tick, no step.
func feed(m *Model, msg tea.Msg) {
	_, cmd := m.Update(msg)
	for _, msg := range runCmd(cmd) {
		feed(m, msg)
	}
}

// key sends key presses: "enter", "esc", "tab", "up", "down", "ctrl+c", or
// runes.
func (h *harness) key(keys ...string) {
	for _, k := range keys {
		h.send(keyMsg(k))
	}
}

func keyMsg(k string) tea.KeyMsg {
	switch k {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	case "backspace":
		return tea.KeyMsg{Type: tea.KeyBackspace}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

// typeText types text into a prompt.
func (h *harness) typeText(s string) {
	for _, r := range s {
		h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

// until feeds messages into the model until cond holds. The deadline only
// guards against a hang; no assertion depends on timing.
func (h *harness) until(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case msg := <-h.msgs:
			h.send(msg)
		case <-deadline:
			h.t.Fatalf("gave up waiting for %s; screen:\n%s", what, h.screen())
		}
	}
}

func (h *harness) screen() string { return ansi.Strip(h.m.View()) }

// logText is the whole log, for assertions.
func (m *Model) logText() string {
	return m.log.Text()
}

func tea_QuitMsg() tea.Msg { return tea.QuitMsg{} }

func tea_WindowSize(w, h int) tea.Msg { return tea.WindowSizeMsg{Width: w, Height: h} }

// Results of the screen's polls, as their pollers send them, tagged with
// the current generation of the chain.
func lagMsg(m *Model, s monitor.LagSample) tea.Msg {
	return poll.Msg[monitor.LagSample]{Source: lag.SourceSlots, Gen: m.ticks.Gen(), Value: s}
}

func lagErrMsg(m *Model, err error) tea.Msg {
	return poll.Msg[monitor.LagSample]{Source: lag.SourceSlots, Gen: m.ticks.Gen(), Err: err}
}

// staleLagMsg is a sample of the chain's previous generation.
func staleLagMsg(m *Model, s monitor.LagSample) tea.Msg {
	return poll.Msg[monitor.LagSample]{Source: lag.SourceSlots, Gen: m.ticks.Gen() - 1, Value: s}
}

func subsMsg(m *Model, subs []monitor.Subscription) tea.Msg {
	return poll.Msg[[]monitor.Subscription]{Source: lag.SourceSubscriptions, Gen: m.ticks.Gen(), Value: subs}
}

func trafficMsg(m *Model, t monitor.Traffic) tea.Msg {
	return poll.Msg[monitor.Traffic]{Source: statusline.SourceTraffic, Gen: m.ticks.Gen(), Value: t}
}

func versionMsg(m *Model, blue bool, v string) tea.Msg {
	source := statusline.SourceGreenVersion
	if blue {
		source = statusline.SourceBlueVersion
	}
	return poll.Msg[string]{Source: source, Gen: m.ticks.Gen(), Value: v}
}

func syncMsg(m *Model, p monitor.SyncProgress) tea.Msg {
	return poll.Msg[monitor.SyncProgress]{Source: lag.SourceSync, Gen: m.ticks.Gen(), Value: p}
}

func connsMsg(m *Model, c monitor.Connections) tea.Msg {
	return poll.Msg[monitor.Connections]{Source: conns.Source, Gen: m.ticks.Gen(), Value: c}
}

func driftMsg(m *Model, d monitor.Drift) tea.Msg {
	return poll.Msg[monitor.Drift]{Source: lag.SourceDrift, Gen: m.ticks.Gen(), Value: d}
}
