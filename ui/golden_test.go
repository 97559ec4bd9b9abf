package ui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
)

// goldenModel is a copy-strategy run part way: three steps done, one
// running, one failed, values recorded, two slots (one falling behind), a
// subscription, and a log. The clock is fixed, the runner a fake that
// never runs (the running step is set by hand).
func goldenModel(t testing.TB) *Model {
	store := openStore(t, false, "")
	cfg := testConfig()
	all := goldenSteps()
	real := &steps.Runner{Config: cfg, Steps: all, Store: store}
	started := epoch.Add(-95 * time.Second)
	finished := epoch.Add(-2 * time.Minute)
	err := store.Update(func(s *state.State) error {
		for i, st := range []state.Status{state.Done, state.Skipped, state.Done, state.Done, state.Done, state.Failed} {
			r := s.EditStep(all[i].ID)
			r.Status, r.Attempts, r.FinishedAt = st, 1, &finished
			if st == state.Failed {
				r.LastError = all[i].ID + ": permission denied for table accounts"
			}
		}
		r := s.EditStep(all[6].ID)
		r.Status, r.Attempts, r.StartedAt = state.Running, 1, &started
		s.Set("slot_lsn", "0/3000148", "create-slots")
		s.Set("blue_version", "15.14", "preflight")
		s.Set("extensions_upgraded", "pg_trgm 1.6 -> 1.6", "upgrade-extensions")
		s.Set("secret_arn", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgbg-repl", "operator")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	traffic := monitor.Traffic{Target: "blue", How: "PgBouncer lab: SHOW DATABASES app -> 127.0.0.1:5432 (blue); blue open; green closed (roles without LOGIN)"}
	m := New(Params{Config: cfg, Steps: all, Runner: &fakeRunner{real: real}, Store: store, Database: "app",
		Holder:  "pid 4242 ops@jumpbox since 11:58:03",
		Traffic: func(context.Context) (monitor.Traffic, error) { return traffic, nil },
		Now:     func() time.Time { return epoch }, Location: time.UTC})
	m.Update(trafficMsg(m, traffic))
	m.run.id, m.run.start = all[6].ID, started
	m.Update(versionMsg(m, true, "15.14"))
	m.Update(versionMsg(m, false, "17.5"))
	for i := 0; i < 60; i++ {
		at := epoch.Add(time.Duration(i-59) * time.Second)
		lag := 1.25 - float64(i)/60
		m.Update(lagMsg(m, monitor.LagSample{At: at, Slots: []monitor.SlotLag{
			{Slot: "pgbg_all", Server: "blue", Direction: "blue -> green", Active: true, BehindBytes: int64(200-3*i) << 20, RetainedBytes: int64(260-3*i) << 20, WALStatus: "reserved", SafeWALBytes: -1, MaxKeepBytes: -1,
				ConfirmedLSN: "0/9000000", CurrentLSN: "0/A000000", LagSeconds: &lag},
			{Slot: "pgbg_orders", Server: "blue", Direction: "blue -> green", Active: false, BehindBytes: int64(10+i) << 20, RetainedBytes: int64(40+i) << 20, WALStatus: "extended",
				SafeWALBytes: int64(2048-40-i) << 20, MaxKeepBytes: 2 << 30},
		}}))
	}
	m.Update(subsMsg(m, []monitor.Subscription{{Name: "pgbg_all", Enabled: true, Slot: "pgbg_all", WorkerRunning: true,
		ReceivedLSN: "0/9000000", LatestEndLSN: "0/9000000", LastMessage: epoch.Add(-2 * time.Second), Tables: 9, TablesNotReady: 2}}))
	for i := 0; i < 30; i++ {
		m.log.Add(fmt.Sprintf("11:59:%02d copy-schema [green sql] CREATE TABLE public.t%02d (id bigint PRIMARY KEY) (3ms)", i, i), pane.SQL)
	}
	m.note(pane.Error, "create-publications failed after 0s: permission denied for table accounts")
	for _, l := range preflightLines() {
		m.checks.TakeEntry(state.Entry{Step: "preflight", Kind: "log", Text: l})
	}
	m.runbook.Select(6)
	return m
}

// preflightLines are a preflight's checks: 12 pass, 1 warn.
func preflightLines() []string {
	out := []string{"WARN 1 table(s) with neither a primary key nor a replica identity: \"public\".\"events_log\"; replica-identity-full sets REPLICA IDENTITY FULL"}
	for i := 0; i < 12; i++ {
		out = append(out, fmt.Sprintf("PASS check %d", i))
	}
	return out
}

// goldenSteps is a copy-strategy runbook owned by the test, so the goldens
// change when the screen does, not when the catalog's wording does.
func goldenSteps() []*steps.Step {
	def := []struct {
		id    string
		phase steps.Phase
		title string
	}{
		{"preflight", steps.PhasePrepare, "Preflight checks"},
		{"enable-logical-replication", steps.PhasePrepare, "Enable logical replication"},
		{"create-replication-role", steps.PhasePrepare, "Create the replication role"},
		{"replica-identity-full", steps.PhasePrepare, "Replica identity for tables without a key"},
		{"create-publications", steps.PhaseAnchor, "Create publications"},
		{"create-slots", steps.PhaseAnchor, "Create logical replication slots"},
		{"copy-schema", steps.PhaseProvision, "Copy the schema to green"},
		{"upgrade-extensions", steps.PhasePrepareGreen, "Upgrade extensions"},
		{"block-green-logins", steps.PhasePrepareGreen, "Block application logins on green"},
		{"compare-schema", steps.PhasePrepareGreen, "Compare schemas"},
		{"create-subscriptions", steps.PhaseReplicate, "Create subscriptions"},
		{"enable-subscriptions", steps.PhaseReplicate, "Enable subscriptions"},
		{"wait-catch-up", steps.PhaseReplicate, "Wait for green to catch up"},
		{"analyze-green", steps.PhaseReplicate, "Analyze green"},
		{"verify-data", steps.PhaseReplicate, "Verify data"},
		{"cutover", steps.PhaseCutover, "Cut over to green"},
		{"rollback", steps.PhaseCutover, "Roll back to blue"},
		{"drop-subscriptions", steps.PhaseCleanup, "Drop subscriptions"},
		{"drop-publications", steps.PhaseCleanup, "Drop publications"},
		{"revert-replica-identity", steps.PhaseCleanup, "Revert replica identity"},
		{"decommission", steps.PhaseCleanup, "Decommission blue"},
	}
	var out []*steps.Step
	for i, d := range def {
		s := &steps.Step{ID: d.id, Phase: d.phase, Target: steps.BlueGreen, Title: d.title, Source: "000",
			Why: "With the copy strategy green starts empty: the schema is copied, the data comes with the subscription's initial sync.",
			Plan: func(_ context.Context, e *steps.Env) ([]steps.Action, error) {
				return []steps.Action{
					{Target: steps.Blue, Kind: "command", Text: "pg_dump --schema-only --no-publications --no-subscriptions --schema=public <blue>"},
					{Target: steps.Green, Kind: "sql", Text: "CREATE SUBSCRIPTION pgbg_all CONNECTION 'host=blue user=pgbg_repl password=hunter2' PUBLICATION pgbg_all"},
				}, nil
			}}
		if i < 15 {
			s.Run = func(context.Context, *steps.Env) error { return nil }
		}
		if i == 6 {
			s.Needs = []string{"slot_lsn", "green_start_lsn"}
		}
		out = append(out, s)
	}
	return out
}

// TestGoldenScreens compares whole screens at three sizes, colour stripped.
// go test ./ui -run Golden -update rewrites them.
func TestGoldenScreens(t *testing.T) {
	goldenScreens(t, "screen", goldenModel, nil)
}

// goldenScreens renders the model newModel gives at 80x24, 120x40 and
// 200x60, colour stripped: each screen must be exactly its height, no line
// wider than the terminal, hold every string of want, and match
// testdata/NAME_WxH.golden (-update rewrites it).
func goldenScreens(t *testing.T, name string, newModel func(testing.TB) *Model, want []string) {
	for _, size := range [][2]int{{80, 24}, {120, 40}, {200, 60}} {
		w, h := size[0], size[1]
		t.Run(fmt.Sprintf("%dx%d", w, h), func(t *testing.T) {
			m := newModel(t)
			m.Update(tea_WindowSize(w, h))
			got := ansi.Strip(m.View())
			lines := strings.Split(got, "\n")
			if len(lines) != h {
				t.Errorf("%d lines, want %d", len(lines), h)
			}
			for i, l := range lines {
				if ansi.StringWidth(l) > w {
					t.Errorf("line %d is %d wide, more than %d: %q", i, ansi.StringWidth(l), w, l)
				}
			}
			for _, s := range want {
				if !strings.Contains(got, s) {
					t.Errorf("screen lacks %q", s)
				}
			}
			path := filepath.Join("testdata", fmt.Sprintf("%s_%dx%d.golden", name, w, h))
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(golden) {
				t.Errorf("screen differs from %s (run with -update after checking):\n%s", path, got)
			}
		})
	}
}

// TestReflow: every size between the smallest and a large one draws exactly
// the terminal's size.
func TestReflow(t *testing.T) {
	m := goldenModel(t)
	for _, s := range [][2]int{{80, 24}, {81, 25}, {100, 24}, {80, 50}, {133, 37}, {250, 70}, {80, 24}} {
		m.Update(tea_WindowSize(s[0], s[1]))
		lines := strings.Split(ansi.Strip(m.View()), "\n")
		if len(lines) != s[1] {
			t.Errorf("%dx%d: %d lines", s[0], s[1], len(lines))
		}
		for i, l := range lines {
			if ansi.StringWidth(l) > s[0] {
				t.Errorf("%dx%d: line %d is %d wide", s[0], s[1], i, ansi.StringWidth(l))
			}
		}
	}
}
