package ui

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/lag"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
)

// Table-sync slots as PostgreSQL names them: pg_<subscription oid>_sync_<table oid>_<system id>.
const (
	syncSlotA = "pg_16400_sync_16385_7391234567890123456"
	syncSlotB = "pg_16400_sync_16912_7391234567890123456"
	syncSlotC = "pg_16401_sync_16500_7391234567890123456"
)

// copyingProgress is a copy of 476 tables part way: two tables in flight,
// the largest 40% copied.
func copyingProgress(at time.Time) monitor.SyncProgress {
	var p monitor.SyncProgress
	p.At = at
	p.Subscriptions = []pg.SubscriptionSync{{Name: "pgbg_all", Enabled: true, WorkerRunning: true,
		TablesDone: 474, TablesTotal: 476, BytesDone: 700 << 20, BytesTotal: 1600 << 20, LagSeconds: -1,
		InFlight: []pg.TableCopy{
			{Table: "public.pgbench_accounts", BytesDone: 512 << 20, BytesTotal: 1280 << 20, Rows: 4100000, State: "d"},
			{Table: "public.bench_parts_17", BytesDone: 128 << 10, BytesTotal: 256 << 10, Rows: 1000, State: "d"},
		},
		SyncSlots: []string{syncSlotA, syncSlotB}}}
	p.Phase, p.TablesDone, p.TablesTotal, p.BytesDone, p.BytesTotal = "copying", 474, 476, 700<<20, 1600<<20
	p.BytesPerSec, p.ETASeconds, p.LagSeconds = 24.3*(1<<20), 37.3, -1
	return p
}

// syncLag is a lag sample: the subscription's slot behind by behind, and
// the table-sync slots given.
func syncLag(at time.Time, behind int64, lagSec float64, syncSlots ...string) monitor.LagSample {
	s := monitor.LagSample{At: at, Slots: []monitor.SlotLag{{Slot: "pgbg_all", Server: "blue", Direction: "blue -> green", Active: true,
		BehindBytes: behind, RetainedBytes: behind + 48<<20, WALStatus: "reserved", SafeWALBytes: -1, MaxKeepBytes: -1, LagSeconds: &lagSec}}}
	for _, n := range syncSlots {
		s.Slots = append(s.Slots, monitor.SlotLag{Slot: n, Server: "blue", Direction: "blue -> green", Active: true,
			BehindBytes: 300 << 20, RetainedBytes: 300 << 20, WALStatus: "reserved", SafeWALBytes: -1, MaxKeepBytes: -1})
	}
	return s
}

// syncSub is green's subscription with notReady of its 476 tables to sync.
func syncSub(notReady int) []monitor.Subscription {
	return []monitor.Subscription{{Name: "pgbg_all", Enabled: true, Slot: "pgbg_all", WorkerRunning: true,
		ReceivedLSN: "0/9000000", LatestEndLSN: "0/9000000", LastMessage: epoch.Add(-time.Second), Tables: 476, TablesNotReady: notReady}}
}

// syncModel is the screen of a copy-strategy run in wait-catch-up, one
// minute into the initial sync of 476 tables (the clock fixed, nothing run).
func syncModel(t testing.TB, read SyncProgressFunc) *Model {
	store := openStore(t, false, "")
	cfg := testConfig()
	all := goldenSteps()
	real := &steps.Runner{Config: cfg, Steps: all, Store: store}
	started := epoch.Add(-time.Minute)
	finished := epoch.Add(-70 * time.Second)
	err := store.Update(func(s *state.State) error {
		for i := 0; i < 12; i++ {
			r := s.EditStep(all[i].ID)
			r.Status, r.Attempts, r.FinishedAt = state.Done, 1, &finished
		}
		r := s.EditStep(all[12].ID)
		r.Status, r.Attempts, r.StartedAt = state.Running, 1, &started
		s.Set("slot_lsn", "0/3000148", "create-slots")
		s.Set("blue_version", "15.14", "preflight")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	traffic := monitor.Traffic{Target: "blue", How: "PgBouncer lab: SHOW DATABASES app -> 127.0.0.1:5432 (blue)"}
	m := New(Params{Config: cfg, Steps: all, Runner: &fakeRunner{real: real}, Store: store, Database: "app",
		Traffic:      func(context.Context) (monitor.Traffic, error) { return traffic, nil },
		SyncProgress: read,
		Now:          func() time.Time { return epoch }, Location: time.UTC})
	m.Update(trafficMsg(m, traffic))
	m.run.id, m.run.start = all[12].ID, started
	m.Update(versionMsg(m, true, "15.14"))
	m.Update(versionMsg(m, false, "17.5"))
	for i := 0; i < 60; i++ {
		m.Update(lagMsg(m, syncLag(epoch.Add(time.Duration(i-59)*time.Second), 0, 0, syncSlotA, syncSlotB)))
	}
	m.Update(subsMsg(m, syncSub(2)))
	for i := 0; i < 8; i++ {
		m.log.Add(fmt.Sprintf("11:59:%02d wait-catch-up copying: %d/476 tables, %d MB of 1.6 GB", 10+6*i, 466+i, 500+25*i), pane.Info)
	}
	m.runbook.Select(12)
	m.Update(syncMsg(m, copyingProgress(epoch)))
	return m
}

// TestSyncStages follows one initial sync through the model: copying (the
// bar, N/M tables, rate, ETA, the table in flight; the slot's row says
// copying, not caught up), then the catch-up (lag in bytes and in time),
// then done (a note in the log, the slot's row caught up).
func TestSyncStages(t *testing.T) {
	m := syncModel(t, nil)
	m.Update(tea_WindowSize(120, 40))
	scr := ansi.Strip(m.View())
	for _, want := range []string{"COPYING", "44% · 700 MB of 1.6 GB · 474/476 tables copied · 24.3 MB/s · ETA 37s",
		"↳ public.pgbench_accounts", "40% 512 MB of 1.2 GB · 4,100,000 rows · copying", "↳ public.bench_parts_17",
		"sub pgbg_all · 2 table syncs in flight: enabled"} {
		if !strings.Contains(scr, want) {
			t.Errorf("copying: screen lacks %q:\n%s", want, scr)
		}
	}
	if row := lineWith(scr, "blue→green  pgbg_all"); !strings.Contains(row, "copying") || strings.Contains(row, "caught up") {
		t.Errorf("copying: the slot's row should say copying, not caught up: %q", row)
	}

	// Every table copied; the slot is 20 MB behind.
	at := epoch.Add(5 * time.Second)
	feed(m, lagMsg(m, syncLag(at, 20<<20, 1.5)))
	feed(m, subsMsg(m, syncSub(0)))
	var p monitor.SyncProgress
	p.Phase, p.TablesDone, p.TablesTotal, p.BytesDone, p.BytesTotal, p.LagBytes, p.LagSeconds = "streaming", 476, 476, 1600<<20, 1600<<20, 20<<20, 1.5
	feed(m, syncMsg(m, p))
	scr = ansi.Strip(m.View())
	if !strings.Contains(scr, "CATCHING UP · all 476 tables copied · 20.0 MB behind · lag 1.50s") {
		t.Errorf("catch-up: no lag in bytes and time:\n%s", scr)
	}
	if strings.Contains(scr, "COPYING") || strings.Contains(scr, "table syncs in flight") {
		t.Errorf("catch-up: still copying:\n%s", scr)
	}

	// Within the lag gate (1 MB): done, said once in the log.
	feed(m, lagMsg(m, syncLag(at.Add(time.Second), 4096, 0.02)))
	scr = ansi.Strip(m.View())
	if strings.Contains(scr, "CATCHING UP") || strings.Contains(scr, "COPYING") {
		t.Errorf("done: the sync lines remain:\n%s", scr)
	}
	if row := lineWith(scr, "blue→green  pgbg_all"); !strings.Contains(row, "caught up") {
		t.Errorf("done: the slot's row should say caught up: %q", row)
	}
	if n := strings.Count(m.logText(), "initial sync done: all 476 tables copied, green caught up (4.0 kB behind)"); n != 1 {
		t.Errorf("done said %d times in the log, want 1:\n%s", n, m.logText())
	}
	// Later load does not bring the catch-up back: it happens once per copy.
	feed(m, lagMsg(m, syncLag(at.Add(2*time.Second), 50<<20, 3)))
	if scr := ansi.Strip(m.View()); strings.Contains(scr, "CATCHING UP") {
		t.Errorf("a lag after the catch-up brought CATCHING UP back:\n%s", scr)
	}
}

// TestSyncNarrow: at 80 columns the copy takes two lines (phase, bar, N/M
// tables, rate, ETA; bytes and the largest table in flight), and the
// slot's row still says copying.
func TestSyncNarrow(t *testing.T) {
	m := syncModel(t, nil)
	m.Update(tea_WindowSize(80, 24))
	lines := strings.Split(ansi.Strip(m.View()), "\n")
	i := indexWith(lines, "COPYING")
	if i < 0 {
		t.Fatalf("no COPYING line:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.HasSuffix(lines[i], " 44% · 474/476 tables · 24.3 MB/s · ETA 37s") {
		t.Errorf("first line %q", lines[i])
	}
	if want := "  700 MB of 1.6 GB · in flight: public.pgbench_accoun… 512 MB of 1.2 GB, +1 more"; lines[i+1] != want {
		t.Errorf("second line %q, want %q", lines[i+1], want)
	}
	if strings.Contains(lines[i+2], "↳") {
		t.Errorf("tables listed one per line at 80x24: %q", lines[i+2])
	}
	if row := lineWith(strings.Join(lines, "\n"), "b→g pgbg_all"); !strings.Contains(row, "copying") {
		t.Errorf("the slot's row should say copying: %q", row)
	}
}

// TestTableSyncSlotsGrouped: the table-sync slots of a lag sample are
// counted under their subscription, never gauge rows of their own; by the
// progress's list, by a sibling's oid, or by the oid when nothing names it.
func TestTableSyncSlotsGrouped(t *testing.T) {
	m := syncModel(t, nil)
	m.Update(tea_WindowSize(200, 60))
	// A slot of another subscription nothing names yet, and a third slot of
	// pgbg_all the progress has not seen (its oid says whose it is).
	later := "pg_16400_sync_17000_7391234567890123456"
	m.Update(lagMsg(m, syncLag(epoch.Add(time.Second), 0, 0, syncSlotA, syncSlotB, later, syncSlotC)))
	scr := ansi.Strip(m.View())
	if strings.Contains(scr, "_sync_") {
		t.Errorf("a table-sync slot is drawn:\n%s", scr)
	}
	if !strings.Contains(scr, "sub pgbg_all · 3 table syncs in flight: enabled, worker running, no errors, tables 474/476 synced") {
		t.Errorf("pgbg_all's table syncs not counted under it:\n%s", scr)
	}
	if !strings.Contains(scr, "sub subscription oid 16401 · 1 table sync in flight") {
		t.Errorf("an unnamed subscription's table sync not grouped by its oid:\n%s", scr)
	}
	if n := m.lag.Slots(); n != 1 {
		t.Errorf("%d gauge rows, want 1 (the subscription's slot)", n)
	}

	// Without any progress read, one subscription: every table sync is its.
	m = New(Params{Config: testConfig(), Now: func() time.Time { return epoch }, Location: time.UTC})
	m.Update(tea_WindowSize(120, 40))
	m.Update(subsMsg(m, syncSub(2)))
	m.Update(lagMsg(m, syncLag(epoch, 0, 0, syncSlotA, syncSlotC)))
	scr = ansi.Strip(m.View())
	if strings.Contains(scr, "_sync_") || !strings.Contains(scr, "sub pgbg_all · 2 table syncs in flight:") {
		t.Errorf("table syncs not grouped under the only subscription:\n%s", scr)
	}
}

// TestSyncPollCadence: the progress is read only while a subscription is
// enabled with tables to sync, once per syncEvery (not every tick), and
// not at all once every table is synced.
func TestSyncPollCadence(t *testing.T) {
	var reads atomic.Int32
	now := epoch
	read := func(context.Context) (monitor.SyncProgress, error) {
		reads.Add(1)
		return copyingProgress(now), nil
	}
	m := New(Params{Config: testConfig(), SyncProgress: read, Now: func() time.Time { return now }, Location: time.UTC})
	tick := func() {
		for _, msg := range runCmd(m.pollDue()) {
			m.Update(msg)
		}
	}
	tick()
	if n := reads.Load(); n != 0 {
		t.Fatalf("%d reads before any subscription is known", n)
	}
	m.Update(subsMsg(m, []monitor.Subscription{{Name: "pgbg_all", Slot: "pgbg_all", Tables: 476, TablesNotReady: 476}}))
	tick()
	if n := reads.Load(); n != 0 {
		t.Fatalf("%d reads while the subscription is disabled", n)
	}
	m.Update(subsMsg(m, syncSub(300)))
	for i := 0; i < 10; i++ { // ten ticks of one second, in 3 s reads: at 0, 3, 6, 9
		tick()
		now = now.Add(time.Second)
	}
	if n := reads.Load(); n != 4 {
		t.Errorf("%d reads in 10 s of ticks, want 4 (one per %s)", n, lag.SyncEvery)
	}
	if m.lag.Stage() != lag.Copying {
		t.Errorf("stage %d after reads of a copy, want copying", m.lag.Stage())
	}
	m.Update(subsMsg(m, syncSub(0)))
	for i := 0; i < 10; i++ {
		tick()
		now = now.Add(time.Second)
	}
	if n := reads.Load(); n != 4 {
		t.Errorf("%d reads, want none more once every table is synced", n-4)
	}
}

// TestGoldenSyncScreens: the copying state at three sizes, colour
// stripped. go test ./ui -run Golden -update rewrites them.
func TestGoldenSyncScreens(t *testing.T) {
	goldenScreens(t, "sync", func(t testing.TB) *Model { return syncModel(t, nil) }, nil)
}

// runCmd runs a command and its batches at once, returning their messages
// (ticks excepted: they would wait).
func runCmd(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if b, ok := msg.(tea.BatchMsg); ok {
		var out []tea.Msg
		for _, c := range b {
			out = append(out, runCmd(c)...)
		}
		return out
	}
	if msg == nil {
		return nil
	}
	return []tea.Msg{msg}
}

// lineWith is the first line of s that contains sub.
func lineWith(s, sub string) string {
	lines := strings.Split(s, "\n")
	if i := indexWith(lines, sub); i >= 0 {
		return lines[i]
	}
	return ""
}

// indexWith is the index of the first line that contains sub, or -1.
func indexWith(lines []string, sub string) int {
	for i, l := range lines {
		if strings.Contains(l, sub) {
			return i
		}
	}
	return -1
}

// TestSnapshotCopyShown: while copy-data copies a publication in its
// slot's snapshot there is no subscription yet; the slot on blue without
// one is reason enough to read the progress, which then shows the copy
// (from its sessions on green); once the copy ends and reads "not
// started", the bar goes.
func TestSnapshotCopyShown(t *testing.T) {
	now := epoch
	p := copyingProgress(now)
	p.Subscriptions[0].Enabled, p.Subscriptions[0].WorkerRunning, p.Subscriptions[0].Snapshot = false, false, true
	p.Subscriptions[0].SyncSlots = nil
	var reads atomic.Int32
	read := func(context.Context) (monitor.SyncProgress, error) {
		reads.Add(1)
		return p, nil
	}
	m := New(Params{Config: testConfig(), SyncProgress: read, Now: func() time.Time { return now }, Location: time.UTC})
	m.Update(tea_WindowSize(120, 40))
	tick := func() {
		for _, msg := range runCmd(m.pollDue()) {
			m.Update(msg)
		}
	}
	m.Update(lagMsg(m, syncLag(now, 0, 0)))
	m.Update(subsMsg(m, nil))
	tick()
	if reads.Load() == 0 {
		t.Fatal("no progress read while blue's slot has no subscription")
	}
	scr := ansi.Strip(m.View())
	for _, want := range []string{"COPYING", "474/476 tables copied", "↳ public.pgbench_accounts"} {
		if !strings.Contains(scr, want) {
			t.Errorf("snapshot copy: screen lacks %q:\n%s", want, scr)
		}
	}
	if strings.Contains(scr, "not launched") {
		t.Errorf("a snapshot copy has no apply worker to wait for:\n%s", scr)
	}
	p = monitor.SyncProgress{Phase: "not started"}
	now = now.Add(lag.SyncEvery)
	tick()
	if scr := ansi.Strip(m.View()); strings.Contains(scr, "COPYING") {
		t.Errorf("the copy ended, the bar stays:\n%s", scr)
	}
}

// A snapshot copy of a split table copies several ranges of it at once:
// the wide list says how many, the one line at 80 columns too.
func TestSyncShowsRangesInFlight(t *testing.T) {
	p := copyingProgress(epoch)
	p.Subscriptions[0].InFlight[0].Ranges = 3
	for _, c := range []struct {
		w, h int
		want string
	}{{200, 60, "4,100,000 rows · copying 3 ranges at once"}, {80, 24, "×3 512 MB of 1.2 GB, +1 more"}} {
		m := syncModel(t, nil)
		m.Update(syncMsg(m, p))
		m.Update(tea_WindowSize(c.w, c.h))
		if scr := ansi.Strip(m.View()); !strings.Contains(scr, c.want) {
			t.Errorf("at %dx%d the screen lacks %q:\n%s", c.w, c.h, c.want, scr)
		}
	}
}
