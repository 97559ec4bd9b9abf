package lab

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestPurgeRemovesTheRunToo: a run driven on the lab keeps its state,
// journal and reports in DIR; purging the lab must take them along, or a new
// lab in the same DIR inherits a run that says its steps are done.
func TestPurgeRemovesTheRunToo(t *testing.T) {
	dir := t.TempDir()
	made := []string{"pgbluegreen.yaml", "lab.json", "ledger", "pgbluegreen.state.json", "pgbluegreen.state.json.lock",
		"pgbluegreen.state.journal.jsonl", "cutover-20261121T130716Z.json", "cutover-20261121T130716Z.md",
		"rollback-20261121T130735Z.json", "green-clone.pgbluegreen/recovery.log"}
	for _, f := range made {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mine := filepath.Join(dir, "notes.txt") // not the lab's: stays
	if err := os.WriteFile(mine, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Down(context.Background(), dir, true, nil); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "notes.txt" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("after purge DIR holds %v, want only notes.txt", names)
	}
}
