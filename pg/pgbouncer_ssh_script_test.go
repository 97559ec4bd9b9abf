package pg

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRewriteScriptRefusesPartialText runs the SSH store's remote script
// here, with sh: text that arrives cut short (the client killed mid-send)
// or a file changed since it was read leaves the ini as it was; whole
// text replaces it, keeps the old file as .pgbg-backup and is printed back.
func TestRewriteScriptRefusesPartialText(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "pgbouncer.ini")
	old := "[databases]\napp = host=127.0.0.1 port=5432 dbname=app\n"
	if err := os.WriteFile(ini, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(old, "5432", "5433", 1)
	run := func(want, sent, stdin string) (string, int) {
		t.Helper()
		return runScript(t, rewriteScript, stdin, ini, want, sha256Hex(sent))
	}
	unchanged := func(what string) {
		t.Helper()
		if b, _ := os.ReadFile(ini); string(b) != old {
			t.Fatalf("%s: the ini changed:\n%s", what, b)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "*.pgbg-tmp.*")); len(m) > 0 {
			t.Fatalf("%s: temporary files left: %v", what, m)
		}
	}

	if _, code := run(sha256Hex(old), text, text[:len(text)/2]); code != 5 {
		t.Errorf("half the text: exit %d, want 5", code)
	}
	unchanged("half the text")
	if _, code := run(sha256Hex("something else"), text, text); code != errChanged {
		t.Errorf("a file changed since it was read: exit %d, want %d", code, errChanged)
	}
	unchanged("changed since read")

	out, code := run(sha256Hex(old), text, text)
	if code != 0 || out != text {
		t.Fatalf("whole text: exit %d, printed %q", code, out)
	}
	if b, _ := os.ReadFile(ini); string(b) != text {
		t.Errorf("the ini after the rewrite:\n%s", b)
	}
	if b, _ := os.ReadFile(ini + ".pgbg-backup"); string(b) != old {
		t.Errorf("the backup:\n%s", b)
	}
}

// TestStagedIniRenamedOnlyOverTheFileStaged runs the staging scripts here:
// the stage writes the new text beside the ini and leaves the ini as it
// was (and says whether perl is there); the commit, in sh and in perl,
// renames it into place and prints "renamed"; a file replaced or edited
// since the stage is left alone (exit 4), as is one staged from text that
// arrived cut short. The commit waits for the line "commit" on its stdin
// and does nothing without it.
func TestStagedIniRenamedOnlyOverTheFileStaged(t *testing.T) {
	for _, perl := range []bool{false, true} {
		if _, err := exec.LookPath("perl"); perl && err != nil {
			t.Log("no perl here: its commit is not tried")
			continue
		}
		t.Run(map[bool]string{false: "sh", true: "perl"}[perl], func(t *testing.T) { testStagedIni(t, perl) })
	}
}

func testStagedIni(t *testing.T, perl bool) {
	_, err := exec.LookPath("perl")
	hasPerl := err == nil
	// commit runs the commit as the SSH store would (after the stage).
	commit := func(t *testing.T, stdin, ini string) (string, int) {
		t.Helper()
		if !perl {
			return runScript(t, commitScript, stdin, ini)
		}
		out, code := runCmd(t, exec.Command("perl", "-e", perlCommitScript, ini), stdin)
		if !strings.HasPrefix(out, "ready\n") {
			t.Errorf("the perl commit did not say it was ready: %q", out)
		}
		return strings.TrimPrefix(out, "ready\n"), code
	}
	old := "[databases]\napp = host=127.0.0.1 port=5432 dbname=app\n"
	text := strings.Replace(old, "5432", "5433", 1)

	// staged makes an ini holding old and stages text beside it.
	staged := func(t *testing.T) string {
		t.Helper()
		ini := filepath.Join(t.TempDir(), "pgbouncer.ini")
		if err := os.WriteFile(ini, []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, code := runScript(t, stageScript, text, ini, sha256Hex(old), sha256Hex(text)); code != 0 || hasPerl != (out == "perl\n") {
			t.Fatalf("stage: exit %d, printed %q", code, out)
		}
		if b, _ := os.ReadFile(ini); string(b) != old {
			t.Fatalf("the stage changed the ini PgBouncer reads:\n%s", b)
		}
		if b, _ := os.ReadFile(ini + ".pgbg-new"); string(b) != text {
			t.Fatalf("the staged text:\n%s", b)
		}
		return ini
	}
	t.Run("renamed into place", func(t *testing.T) {
		ini := staged(t)
		out, code := commit(t, "commit\n", ini)
		if code != 0 || out != "renamed\n" {
			t.Fatalf("commit: exit %d, printed %q", code, out)
		}
		if b, _ := os.ReadFile(ini); string(b) != text {
			t.Errorf("the ini after the commit:\n%s", b)
		}
		if b, _ := os.ReadFile(ini + ".pgbg-backup"); string(b) != old {
			t.Errorf("the backup:\n%s", b)
		}
		if _, err := os.Stat(ini + ".pgbg-new"); !os.IsNotExist(err) {
			t.Errorf("the staged file is still there: %v", err)
		}
	})
	t.Run("an armed commit that gets no line does nothing", func(t *testing.T) {
		ini := staged(t)
		for _, stdin := range []string{"", "something else\n"} {
			if _, code := commit(t, stdin, ini); code != 3 {
				t.Errorf("commit with stdin %q: exit %d, want 3", stdin, code)
			}
		}
		if b, _ := os.ReadFile(ini); string(b) != old {
			t.Errorf("the ini changed:\n%s", b)
		}
	})
	t.Run("a file replaced since the stage is left alone", func(t *testing.T) {
		ini := staged(t)
		other := "[databases]\napp = host=10.0.0.9 port=5432 dbname=app\n"
		if err := os.WriteFile(ini+".editor", []byte(other), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(ini+".editor", ini); err != nil {
			t.Fatal(err)
		}
		if _, code := commit(t, "commit\n", ini); code != errChanged {
			t.Errorf("commit over a replaced file: exit %d, want %d", code, errChanged)
		}
		if b, _ := os.ReadFile(ini); string(b) != other {
			t.Errorf("the replaced file was overwritten:\n%s", b)
		}
	})
	t.Run("a file edited in place since the stage is left alone", func(t *testing.T) {
		ini := staged(t)
		later := time.Now().Add(2 * time.Second)
		if err := os.Chtimes(ini, later, later); err != nil {
			t.Fatal(err)
		}
		if _, code := commit(t, "commit\n", ini); code != errChanged {
			t.Errorf("commit over an edited file: exit %d, want %d", code, errChanged)
		}
		if b, _ := os.ReadFile(ini); string(b) != old {
			t.Errorf("the edited file was overwritten:\n%s", b)
		}
	})
	t.Run("text cut short is not staged", func(t *testing.T) {
		ini := filepath.Join(t.TempDir(), "pgbouncer.ini")
		if err := os.WriteFile(ini, []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, code := runScript(t, stageScript, text[:10], ini, sha256Hex(old), sha256Hex(text)); code != 5 {
			t.Errorf("stage of half the text: exit %d, want 5", code)
		}
		if m, _ := filepath.Glob(ini + ".pgbg-new*"); len(m) > 0 {
			t.Errorf("files left: %v", m)
		}
		if _, code := commit(t, "commit\n", ini); code != errChanged {
			t.Errorf("commit with nothing staged: exit %d, want %d", code, errChanged)
		}
	})
}

// runScript runs a remote script here with sh, as the SSH store runs it
// (sh -c SCRIPT pgbg ARGS...), with stdin; its stdout and exit code.
func runScript(t *testing.T, script, stdin string, args ...string) (string, int) {
	t.Helper()
	return runCmd(t, exec.Command("sh", append([]string{"-c", script, "pgbg"}, args...)...), stdin)
}

// runCmd runs cmd with stdin; its stdout and exit code.
func runCmd(t *testing.T, cmd *exec.Cmd, stdin string) (string, int) {
	t.Helper()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func sha256Hex(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
