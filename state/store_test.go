package state

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// childEnv makes the test binary act as a second process that holds a state file's lock: it
// opens the store named by the variable, prints "locked <pid>" (or "error <message>"), waits
// until its stdin is closed, closes the store and exits.
const childEnv = "PGBG_STATE_TEST_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	if path := os.Getenv(churnEnv); path != "" {
		os.Exit(runChurn(path))
	}
	os.Exit(m.Run())
}

func runChild(path string) int {
	st, err := Open(path, OpenParams{})
	if err != nil {
		var le *LockedError
		if errors.As(err, &le) {
			fmt.Printf("locked-by %d\n", le.Holder.PID)
		} else {
			fmt.Printf("error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		}
		return 0
	}
	fmt.Printf("locked %d\n", os.Getpid())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	if err := st.Close(); err != nil {
		fmt.Printf("close error %s\n", err)
		return 1
	}
	return 0
}

// child is a second process started from the test binary.
type child struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
	out   *bufio.Reader
}

func startChild(t *testing.T, path string) (*child, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	c := &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		c.stdin.Close()
		_ = c.cmd.Wait()
	})
	line, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("read child's report: %v", err)
	}
	return c, strings.TrimSpace(line)
}

func tempStatePath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "pgbluegreen.state.json")
}

func TestOpenMissingFileIsNewRunNotWritten(t *testing.T) {
	path := tempStatePath(t)
	st, err := Open(path, OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.Snapshot()
	if s.SchemaVersion != SchemaVersion || s.Values == nil || s.Steps == nil || len(s.Steps) != 0 {
		t.Fatalf("unexpected new state %+v", s)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file written before the first Update: %v", err)
	}
	if got := s.Step("preflight"); got.Status != Pending || got.ID != "preflight" {
		t.Fatalf("Step of unknown id = %+v", got)
	}
}

func TestUpdateSavesAndReopens(t *testing.T) {
	path := tempStatePath(t)
	st, err := Open(path, OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 11, 21, 12, 1, 2, 0, time.UTC)
	err = st.Update(func(s *State) error {
		s.Strategy = "clone"
		s.Set("slot_lsn", "0/1A2B3C4", "create-slots")
		r := s.EditStep("create-slots")
		r.Status, r.Attempts, r.StartedAt, r.FinishedAt = Done, 1, &started, &started
		r.Result = "slot pgbg_all at 0/1A2B3C4"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", info.Mode().Perm())
	}

	ro, err := Open(path, OpenParams{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	s := ro.Snapshot()
	if v, ok := s.Get("slot_lsn"); !ok || v != "0/1A2B3C4" {
		t.Errorf("Get(slot_lsn) = %q, %v", v, ok)
	}
	if s.Values["slot_lsn"].RecordedBy != "create-slots" || s.Values["slot_lsn"].RecordedAt.IsZero() {
		t.Errorf("value provenance lost: %+v", s.Values["slot_lsn"])
	}
	r := s.Step("create-slots")
	if r.Status != Done || r.Attempts != 1 || r.StartedAt == nil || !r.StartedAt.Equal(started) || s.Strategy != "clone" {
		t.Errorf("step record after reopen = %+v, strategy %q", r, s.Strategy)
	}
	if s.UpdatedAt.Before(s.CreatedAt) {
		t.Errorf("UpdatedAt %v before CreatedAt %v", s.UpdatedAt, s.CreatedAt)
	}
}

func TestUpdateErrorChangesNothing(t *testing.T) {
	st, err := Open(tempStatePath(t), OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mustUpdate(t, st, func(s *State) error { s.Set("a", "1", "operator"); return nil })
	refused := errors.New("refused")
	err = st.Update(func(s *State) error {
		s.Set("a", "2", "operator")
		s.EditStep("x").Status = Running
		return refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	s := st.Snapshot()
	if v, _ := s.Get("a"); v != "1" || len(s.Steps) != 0 {
		t.Fatalf("a failed Update changed the state: a=%q steps=%v", v, s.Steps)
	}
}

func TestUpdateRedactsSecrets(t *testing.T) {
	path := tempStatePath(t)
	st, err := Open(path, OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mustUpdate(t, st, func(s *State) error {
		s.Set("blue_dsn", "postgres://repl:hunter2@blue/app", "operator")
		r := s.EditStep("create-subscriptions")
		r.Status = Failed
		r.LastError = "connect host=blue password=hunter2: refused"
		r.Result = "CREATE ROLE repl PASSWORD 'hunter2'"
		return nil
	})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "hunter2") {
		t.Fatalf("secret written to the state file:\n%s", data)
	}
	if v, _ := st.Snapshot().Get("blue_dsn"); v != "postgres://repl:********@blue/app" {
		t.Fatalf("in-memory value %q differs from what was saved", v)
	}
}

func TestSnapshotIsDeepCopy(t *testing.T) {
	st, err := Open(tempStatePath(t), OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Now()
	mustUpdate(t, st, func(s *State) error {
		r := s.EditStep("preflight")
		r.Status, r.StartedAt = Done, &at
		s.Set("k", "v", "operator")
		return nil
	})
	snap := st.Snapshot()
	*snap.Steps["preflight"].StartedAt = time.Time{}
	snap.Steps["preflight"].Status = Failed
	snap.Set("k", "changed", "operator")
	rec := snap.Step("preflight")
	*rec.StartedAt = time.Unix(1, 0)

	s := st.Snapshot()
	if r := s.Step("preflight"); r.Status != Done || !r.StartedAt.Equal(at) {
		t.Fatalf("changing a snapshot changed the store: %+v", r)
	}
	if v, _ := s.Get("k"); v != "v" {
		t.Fatalf("value changed through a snapshot: %q", v)
	}
	if snap2 := s.Clone(); snap2.Steps["preflight"] == s.Steps["preflight"] {
		t.Fatal("Clone shares step records")
	}
	var nilState *State
	if nilState.Clone() != nil {
		t.Fatal("Clone of nil state is not nil")
	}
}

func TestInterruptedWriteKeepsPreviousState(t *testing.T) {
	path := tempStatePath(t)
	st, err := Open(path, OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, st, func(s *State) error { s.Set("slot_lsn", "0/100", "create-slots"); return nil })

	var leftTemp string
	beforeRename = func(tmp string) error {
		leftTemp = tmp
		return errors.New("simulated crash before rename")
	}
	err = st.Update(func(s *State) error { s.Set("slot_lsn", "0/200", "create-slots"); return nil })
	beforeRename = nil
	if err == nil {
		t.Fatal("Update succeeded although the rename never happened")
	}
	if _, statErr := os.Stat(leftTemp); statErr != nil {
		t.Fatalf("the simulated crash should leave its temp file: %v", statErr)
	}
	if v, _ := st.Snapshot().Get("slot_lsn"); v != "0/100" {
		t.Fatalf("in-memory state moved on after a failed save: %q", v)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A watcher ignores the temp file and leaves it alone.
	ro, err := Open(path, OpenParams{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open after an interrupted write: %v", err)
	}
	if v, _ := ro.Snapshot().Get("slot_lsn"); v != "0/100" {
		t.Fatalf("read-only open read %q, want the previous state 0/100", v)
	}
	if _, statErr := os.Stat(leftTemp); statErr != nil {
		t.Fatalf("read-only open touched the temp file: %v", statErr)
	}

	// The next writer reads the previous state and cleans up.
	st, err = Open(path, OpenParams{})
	if err != nil {
		t.Fatalf("open after an interrupted write: %v", err)
	}
	defer st.Close()
	if v, _ := st.Snapshot().Get("slot_lsn"); v != "0/100" {
		t.Fatalf("open read %q, want the previous state 0/100", v)
	}
	if _, statErr := os.Stat(leftTemp); !errors.Is(statErr, os.ErrNotExist) {
		t.Fatalf("stray temp file not removed by a writable open: %v", statErr)
	}
	mustUpdate(t, st, func(s *State) error { s.Set("slot_lsn", "0/300", "create-slots"); return nil })
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left after a successful save: %s", e.Name())
		}
	}
}

func TestRunningBecomesInterruptedOnWritableOpenOnly(t *testing.T) {
	path := tempStatePath(t)
	st, err := Open(path, OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, st, func(s *State) error {
		s.EditStep("clone-local").Status = Running
		s.EditStep("preflight").Status = Done
		return nil
	})
	st.Close() // as if the process had been killed while clone-local ran

	ro, err := Open(path, OpenParams{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ro.Snapshot().Step("clone-local").Status; got != Running {
		t.Fatalf("read-only open changed Running to %s", got)
	}

	rw, err := Open(path, OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	r := rw.Snapshot().Step("clone-local")
	if r.Status != Interrupted || r.LastError != InterruptedReason {
		t.Fatalf("writable open left %+v", r)
	}
	if got := rw.Snapshot().Step("preflight").Status; got != Done {
		t.Fatalf("a Done step became %s", got)
	}
	// Saved at once, so a watcher sees it too.
	s, err := ro.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Step("clone-local").Status; got != Interrupted {
		t.Fatalf("on disk after writable open: %s, want interrupted", got)
	}
	if got := ro.Snapshot().Step("clone-local").Status; got != Interrupted {
		t.Fatalf("Snapshot after Reload: %s", got)
	}
}

func TestOpenRefusesOtherSchemaVersion(t *testing.T) {
	path := tempStatePath(t)
	if err := os.WriteFile(path, []byte(`{"schema_version": 2, "steps": {"x": "a string where a record was"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		_, err := Open(path, OpenParams{ReadOnly: ro})
		if err == nil {
			t.Fatalf("read-only=%v: opened a schema_version 2 file", ro)
		}
		msg := err.Error()
		for _, want := range []string{path, "schema_version is 2", "version 1", "move the file aside"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		}
	}
	// The refused writable open must not keep the lock.
	if h, held := ReadHolder(path); held {
		t.Fatalf("lock still held by %v after a refused open", h)
	}
}

func TestOpenRefusesBrokenJSON(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":         `{"schema_version": 1, "steps": {`,
		"empty":             ``,
		"no schema_version": `{"steps": {}}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := tempStatePath(t)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path, OpenParams{})
			if err == nil {
				t.Fatal("opened a broken state file")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "move") {
				t.Errorf("error %q does not name the file and the fix", err)
			}
		})
	}
}

func TestReadOnlyNeverWrites(t *testing.T) {
	path := tempStatePath(t)
	ro, err := Open(path, OpenParams{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Update(func(*State) error { return nil }); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Update on read-only store = %v, want ErrReadOnly", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("read-only open created the state file")
	}
	if _, err := os.Stat(lockPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("read-only open created the lock file")
	}
	if s, err := ro.Reload(); err != nil || len(s.Steps) != 0 {
		t.Fatalf("Reload of a missing file = %v, %v; want an empty run", s, err)
	}
}

func TestUpdateAfterClose(t *testing.T) {
	st, err := Open(tempStatePath(t), OpenParams{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := st.Update(func(*State) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close = %v", err)
	}
}

func mustUpdate(t *testing.T, st *Store, fn func(*State) error) {
	t.Helper()
	if err := st.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// pidOf parses "<word> <pid>" from a child's report.
func pidOf(t *testing.T, line, word string) int {
	t.Helper()
	rest, ok := strings.CutPrefix(line, word+" ")
	if !ok {
		t.Fatalf("child said %q, want %q <pid>", line, word)
	}
	pid, err := strconv.Atoi(rest)
	if err != nil {
		t.Fatalf("child said %q: %v", line, err)
	}
	return pid
}
