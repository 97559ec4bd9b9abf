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

// TestRunStopsAtConfigLoad: several type errors in the configuration
// (issue 12) stop `run --through` before anything connects, every one of
// them reported at once with its key, line, type and an example.
func TestRunStopsAtConfigLoad(t *testing.T) {
	data, err := os.ReadFile(exampleFor(t, "copy"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "timeouts:\n", "timeouts:\n  lag_wait: soon\n", 1)
	bad = strings.Replace(bad, "cutover:\n", "cutover:\n  max_lag_bytes: lots\n", 1)
	bad += "schemas: public\n"
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cli(t, "run", "--through", "create-subscriptions", "--config", cfg, "--state", filepath.Join(t.TempDir(), "s.json"))
	t.Logf("the operator sees:\n%s", errs)
	if code != exitUsage || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, w := range []string{
		`cutover.max_lag_bytes: "lots" is not an integer (e.g. 1048576)`,
		`timeouts.lag_wait: "soon" is not a duration (e.g. 30s)`,
		`schemas: "public" is not a list (e.g. [public, inventory, "Sales Dept"])`,
	} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr lacks %q", w)
		}
	}
}

// TestPlanOfflineEverySchema: with schemas omitted, the offline plan says
// every schema of blue rather than guessing a list.
func TestPlanOfflineEverySchema(t *testing.T) {
	code, out, errs := cli(t, "plan", "--config", exampleFor(t, "copy"))
	if code != exitOK || !strings.Contains(out, "<every schema of blue>") {
		t.Fatalf("exit %d %s; plan does not say <every schema of blue>:\n%s", code, errs, out)
	}
}
