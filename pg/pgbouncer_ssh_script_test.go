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
	hash := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	run := func(want, sent, stdin string) (string, int) {
		t.Helper()
		cmd := exec.Command("sh", "-c", rewriteScript, "pgbg", ini, want, hash(sent))
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
	unchanged := func(what string) {
		t.Helper()
		if b, _ := os.ReadFile(ini); string(b) != old {
			t.Fatalf("%s: the ini changed:\n%s", what, b)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "*.pgbg-tmp.*")); len(m) > 0 {
			t.Fatalf("%s: temporary files left: %v", what, m)
		}
	}

	if _, code := run(hash(old), text, text[:len(text)/2]); code != 5 {
		t.Errorf("half the text: exit %d, want 5", code)
	}
	unchanged("half the text")
	if _, code := run(hash("something else"), text, text); code != errChanged {
		t.Errorf("a file changed since it was read: exit %d, want %d", code, errChanged)
	}
	unchanged("changed since read")

	out, code := run(hash(old), text, text)
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
