package state

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// benchStore opens a store holding a run of realistic size: 40 steps and 30 values.
func benchStore(b *testing.B) *Store {
	b.Helper()
	st, err := Open(filepath.Join(b.TempDir(), "state.json"), OpenParams{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	now := time.Now()
	err = st.Update(func(s *State) error {
		for i := range 40 {
			r := s.EditStep(fmt.Sprint("step-", i))
			r.Status, r.Attempts, r.StartedAt, r.FinishedAt = Done, 1, &now, &now
			r.Result = "ok, 3 statements"
		}
		for i := range 30 {
			s.Set(fmt.Sprint("value_", i), "0/1A2B3C4D", "step-1")
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkUpdate is one status change saved durably (two fsyncs); the runner does a few per step.
func BenchmarkUpdate(b *testing.B) {
	st := benchStore(b)
	for b.Loop() {
		if err := st.Update(func(s *State) error { s.EditStep("step-3").Attempts++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshot is what the UI pays for a consistent copy of the run.
func BenchmarkSnapshot(b *testing.B) {
	st := benchStore(b)
	for b.Loop() {
		_ = st.Snapshot()
	}
}
