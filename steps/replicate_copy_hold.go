package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
)

// The holder of a snapshot copy's snapshot: a process of its own
// (pgbluegreen hold-snapshot, main.go starts it) that makes the slot on a
// replication session and keeps that session idle, so that the snapshot
// it exported outlives the program copying in it. It writes a hold file
// beside the state file; the copy touches that file while it copies, and
// removes it once done. The holder lets go (it exits, and its session
// with it) when the file is gone, or when nobody has touched it for
// SnapshotHoldIdle: a copy killed half way can be run again within that
// time and goes on in the same snapshot. Letting go of a copy not done,
// the holder drops the slot too: nothing can go on from it any more, and
// it would hold blue's WAL.

// SnapshotHoldIdle is how long a holder keeps a snapshot that no copy
// touches: the time to run copy-data again after a kill. Meanwhile blue
// keeps the rows the snapshot shows (its vacuum waits).
const SnapshotHoldIdle = 15 * time.Minute

// snapshotHoldBeat is how often a copy touches its hold file.
const snapshotHoldBeat = 5 * time.Second

// SnapshotHold is what a holder holds: its hold file's content.
type SnapshotHold struct {
	Database string    `json:"database"`
	Slot     string    `json:"slot"`
	LSN      string    `json:"lsn"`
	Snapshot string    `json:"snapshot"`
	PID      int       `json:"pid"`
	Since    time.Time `json:"since"`
}

// SnapshotHolderFunc starts a holder that makes slot in database, and
// returns once the slot exists and its hold file is written.
type SnapshotHolderFunc func(ctx context.Context, database, slot string) (SnapshotHold, error)

// SnapshotHoldPath is the hold file of slot (a slot's name is of
// [a-z0-9_] alone, and one name on the cluster).
func SnapshotHoldPath(stateDir, slot string) string {
	return filepath.Join(stateDir, "pgbluegreen.snapshot."+slot+".json")
}

// WriteSnapshotHold writes a hold file whole, or not at all.
func WriteSnapshotHold(path string, h SnapshotHold) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return state.WriteFileAtomic(path, b, 0o600)
}

// ReadSnapshotHold reads a hold file; false when there is none.
func ReadSnapshotHold(path string) (SnapshotHold, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return SnapshotHold{}, false, nil
	}
	if err != nil {
		return SnapshotHold{}, false, err
	}
	var h SnapshotHold
	if err := json.Unmarshal(b, &h); err != nil {
		return SnapshotHold{}, false, fmt.Errorf("hold file %s: %w", path, err)
	}
	return h, true, nil
}

// beatHold touches the hold file every snapshotHoldBeat until stop is
// called.
func beatHold(path string) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(snapshotHoldBeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				now := time.Now()
				_ = os.Chtimes(path, now, now) // gone: the holder let go, and the copy finds out
			}
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}
