package ui

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui/lag"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
)

// BenchmarkFrame draws one frame of a large run at 200x60: 40 steps, 20
// slots with five minutes of history each, 10,000 log lines. Target: under
// 5 ms a frame (DESIGN.md).
func BenchmarkFrame(b *testing.B) {
	m := benchModel(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = m.View()
	}
}

// BenchmarkFrameCursorMove is the frame after a cursor move: the step's
// detail (state read, plan rendered) is built again.
func BenchmarkFrameCursorMove(b *testing.B) {
	m := benchModel(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Update(keyMsg([]string{"j", "k"}[i%2]))
		_ = m.View()
	}
}

func benchModel(b *testing.B) *Model {
	store := openStore(b, false, "")
	cfg := testConfig()
	phases := []steps.Phase{steps.PhasePrepare, steps.PhaseAnchor, steps.PhaseProvision, steps.PhasePrepareGreen, steps.PhaseReplicate, steps.PhaseCutover, steps.PhaseCleanup}
	var all []*steps.Step
	for i := 0; i < 40; i++ {
		all = append(all, &steps.Step{ID: fmt.Sprintf("step-%02d", i), Phase: phases[i*len(phases)/40], Target: steps.Blue,
			Title: fmt.Sprintf("Step number %d of the benchmark", i), Why: "because a large runbook must stay fast to draw",
			Needs: []string{"slot_lsn"}, Plan: func(_ context.Context, e *steps.Env) ([]steps.Action, error) {
				return []steps.Action{{Target: steps.Blue, Kind: "sql", Text: "SELECT pg_create_logical_replication_slot('s', 'pgoutput')"}}, nil
			}})
	}
	real := &steps.Runner{Config: cfg, Steps: all, Store: store}
	m := New(Params{Config: cfg, Steps: all, Runner: &fakeRunner{real: real}, Store: store, Database: "app",
		Now: func() time.Time { return epoch }, Location: time.UTC})
	for i := 0; i < lag.HistoryLen; i++ {
		s := monitor.LagSample{At: epoch.Add(time.Duration(i-lag.HistoryLen) * time.Second)}
		for j := 0; j < 20; j++ {
			s.Slots = append(s.Slots, monitor.SlotLag{Slot: fmt.Sprintf("pgbg_slot_%02d", j), Active: j%2 == 0,
				BehindBytes: int64((i*7+j*13)%500) << 20, RetainedBytes: 1 << 30, WALStatus: "reserved", SafeWALBytes: -1})
		}
		m.Update(lagMsg(m, s))
	}
	for i := 0; i < 10000; i++ {
		m.log.Add(fmt.Sprintf("12:%02d:%02d step-%02d [blue sql] INSERT INTO accounts VALUES (%d, 'x') (1ms)", i/60%60, i%60, i%40, i), pane.SQL)
	}
	m.runbook.Select(20)
	m.Update(tea_WindowSize(200, 60))
	_ = m.View()
	return m
}
