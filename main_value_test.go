package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValueSet: `value set` refuses a malformed value (issue 12's
// `zz/notanlsn` typed as a seed) and an edit without a reason, each with
// one line and nothing recorded; a well-formed value is recorded by the
// operator and journaled with its reason and the value it replaced.
func TestValueSet(t *testing.T) {
	cfg := exampleFor(t, "clone")
	st := filepath.Join(t.TempDir(), "state.json")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"value", "set", "green_start_lsn", "zz/notanlsn", "--reason", "typed by hand"}, `value green_start_lsn: "zz/notanlsn" is not an LSN`},
		{[]string{"value", "set", "green_start_lsn", "0/3000060"}, "--reason TEXT"},
		{[]string{"value", "set", "nosuch_key", "x", "--reason", "r"}, "value nosuch_key: no step needs or records it"},
		{[]string{"value", "set", "restore_time", "yesterday", "--reason", "r"}, `"yesterday" is not a timestamp`},
	} {
		code, _, errs := cli(t, append(c.args, "--config", cfg, "--state", st)...)
		if code != exitUsage || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line saying %q", c.args, code, errs, c.want)
		}
		t.Logf("%v -> %s", c.args[2:4], strings.TrimSpace(errs))
	}
	if _, out, _ := cli(t, "status", "--json", "--config", cfg, "--state", st); strings.Contains(out, "green_start_lsn") {
		t.Fatalf("a refused value was recorded:\n%s", out)
	}
	for _, v := range []string{"0/3000060", "0/3000061"} {
		if code, out, errs := cli(t, "value", "set", "green_start_lsn", v, "--reason", "read from green's log by hand", "--config", cfg, "--state", st); code != exitOK {
			t.Fatalf("value set %s: exit %d %s %s", v, code, out, errs)
		}
	}
	_, out, _ := cli(t, "status", "--json", "--config", cfg, "--state", st)
	if !strings.Contains(out, `"value": "0/3000061"`) || !strings.Contains(out, `"recorded_by": "operator"`) {
		t.Fatalf("value not recorded by the operator:\n%s", out)
	}
	journal, err := os.ReadFile(journalPath(st))
	if err != nil || !strings.Contains(string(journal), "value set green_start_lsn = 0/3000061 (was 0/3000060): read from green's log by hand") {
		t.Fatalf("edit not journaled with its reason: %v\n%s", err, journal)
	}
}
