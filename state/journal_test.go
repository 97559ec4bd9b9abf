package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func tempJournal(t *testing.T) (string, *Journal) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgbluegreen.journal")
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return path, j
}

func TestJournalRoundTrip(t *testing.T) {
	path, j := tempJournal(t)
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	in := []Entry{
		{Time: at, Step: "create-slots", Target: "blue", Kind: "sql",
			Text:     "SELECT lsn FROM pg_create_logical_replication_slot('pgbg_all', 'pgoutput') WHERE 1 < 2 AND true",
			Duration: 3 * time.Millisecond, Outcome: "ok"},
		{Step: "create-replication-role", Target: "blue", Kind: "sql",
			Text: "CREATE ROLE pgbg_repl LOGIN PASSWORD 'hunter2'", Outcome: "error",
			Error: "connect host=blue password=hunter2: refused"},
		{Target: "operator", Kind: "operator", Text: "confirmed cutover"},
	}
	before := time.Now()
	for _, e := range in {
		if err := j.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, want 0600", info.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), "hunter2") {
		t.Fatalf("secret in the journal:\n%s", raw)
	}
	if !strings.Contains(string(raw), "1 < 2") {
		t.Errorf("SQL not kept readable (HTML escaping?):\n%s", raw)
	}

	got, next, err := ReadJournal(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || next != info.Size() {
		t.Fatalf("ReadJournal = %d entries, next %d; want 3, %d", len(got), next, info.Size())
	}
	if got[0].Text != in[0].Text || !got[0].Time.Equal(at) || got[0].Duration != 3*time.Millisecond || got[0].Step != "create-slots" {
		t.Errorf("first entry %+v", got[0])
	}
	if got[1].Text != "CREATE ROLE pgbg_repl LOGIN PASSWORD '********'" || got[1].Error != "connect host=blue password=******** refused" {
		t.Errorf("second entry not redacted as expected: %+v", got[1])
	}
	if got[1].Time.Before(before.Add(-time.Second)) {
		t.Errorf("zero Time not filled: %v", got[1].Time)
	}
	if more, n, err := ReadJournal(path, next); err != nil || len(more) != 0 || n != next {
		t.Fatalf("reading at the end = %v, %d, %v", more, n, err)
	}
}

func TestReadJournalPartialLastLine(t *testing.T) {
	path, j := tempJournal(t)
	for i := range 2 {
		if err := j.Append(Entry{Kind: "log", Text: fmt.Sprint("line ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	complete, _ := os.Stat(path)
	// A writer caught mid-line (by another process's view of the file).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(`{"time":"2026-11-21T12:00:00Z","kind":"log","te`); err != nil {
		t.Fatal(err)
	}

	got, next, err := ReadJournal(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || next != complete.Size() {
		t.Fatalf("with a partial last line: %d entries, next %d; want 2, %d", len(got), next, complete.Size())
	}
	if got, n2, err := ReadJournal(path, next); err != nil || len(got) != 0 || n2 != next {
		t.Fatalf("partial line alone: %v, %d, %v", got, n2, err)
	}
	if _, err := f.WriteString(`xt":"line 2"}` + "\n"); err != nil {
		t.Fatal(err)
	}
	got, next2, err := ReadJournal(path, next)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Text != "line 2" {
		t.Fatalf("after the line was completed: %+v", got)
	}
	if end, _ := os.Stat(path); next2 != end.Size() {
		t.Fatalf("next %d, file size %d", next2, end.Size())
	}
}

func TestReadJournalOddFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.journal")
	if got, next, err := ReadJournal(missing, 7); err != nil || got != nil || next != 7 {
		t.Fatalf("missing journal: %v, %d, %v", got, next, err)
	}

	path := filepath.Join(dir, "j")
	content := `{"kind":"log","text":"ok 1"}` + "\n" + "\x00\x00garbage password=hunter2\n" + "\n" + `{"kind":"log","text":"ok 2"}` + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, next, err := ReadJournal(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || next != int64(len(content)) {
		t.Fatalf("got %d entries, next %d: %+v", len(got), next, got)
	}
	if got[1].Outcome != OutcomeUnreadable || strings.Contains(got[1].Text, "hunter2") || got[2].Text != "ok 2" {
		t.Fatalf("unreadable line handled as %+v, then %+v", got[1], got[2])
	}

	// An offset past the end means the journal was replaced: read it from the start.
	if got, next, err := ReadJournal(path, 1<<20); err != nil || len(got) != 3 || next != int64(len(content)) {
		t.Fatalf("offset past the end: %d entries, next %d, %v", len(got), next, err)
	}
}

func TestJournalConcurrentAppend(t *testing.T) {
	path, j := tempJournal(t)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := Entry{Kind: "log", Step: fmt.Sprint("w", w), Text: fmt.Sprintf("w%d line %d %s", w, i, strings.Repeat("x", 300))}
				if err := j.Append(e); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, _, err := ReadJournal(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*each {
		t.Fatalf("%d entries, want %d", len(got), writers*each)
	}
	seen := map[string]bool{}
	for _, e := range got {
		if e.Outcome == OutcomeUnreadable || seen[e.Text] {
			t.Fatalf("interleaved or duplicated line: %+v", e)
		}
		seen[e.Text] = true
	}
}

func TestJournalAppendAfterClose(t *testing.T) {
	_, j := tempJournal(t)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(Entry{Kind: "log", Text: "late"}); err == nil {
		t.Fatal("Append after Close succeeded")
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func BenchmarkJournalAppend(b *testing.B) {
	j, err := OpenJournal(filepath.Join(b.TempDir(), "j"))
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	e := Entry{Step: "wait-catch-up", Target: "blue", Kind: "sql", Text: "SELECT slot_name, confirmed_flush_lsn FROM pg_replication_slots", Outcome: "ok", Duration: time.Millisecond}
	for b.Loop() {
		if err := j.Append(e); err != nil {
			b.Fatal(err)
		}
	}
}
