package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// cli runs the program in-process and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := (&program{stdout: &out, stderr: &errb}).run(args) // no guard: the test binary is not pgbluegreen
	return code, out.String(), errb.String()
}

// exampleFor writes the shipped example config with another strategy.
func exampleFor(t *testing.T, strategy string) string {
	t.Helper()
	data, err := os.ReadFile("pgbluegreen.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "strategy: copy", "strategy: "+strategy, 1)
	s = strings.Replace(s, `blue_cluster: ""`, `blue_cluster: "blue"`, 1)
	s = strings.Replace(s, `green_cluster: ""`, `green_cluster: "green"`, 1)
	s = strings.Replace(s, `blue_instance: ""`, `blue_instance: "blue-1"`, 1)
	s = strings.Replace(s, `green_instance: ""`, `green_instance: "green-1"`, 1)
	s = strings.Replace(s, `engine_version: ""`, `engine_version: "17.5"`, 1)
	path := filepath.Join(t.TempDir(), "pgbluegreen.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPlanOfflineEveryStrategy(t *testing.T) {
	for _, strategy := range config.StrategyNames {
		cfg := exampleFor(t, strategy)
		for _, format := range []string{"text", "markdown"} {
			code, out, errs := cli(t, "plan", "--format", format, "--config", cfg)
			if code != exitOK {
				t.Fatalf("%s %s: exit %d: %s", strategy, format, code, errs)
			}
			for _, s := range steps.Strategy(strategy) {
				if !strings.Contains(out, s.ID) {
					t.Errorf("%s %s plan lacks step %s", strategy, format, s.ID)
				}
			}
		}
	}
}

func TestStatusJSONListsEveryStep(t *testing.T) {
	cfg := exampleFor(t, "copy")
	code, out, errs := cli(t, "--config", cfg, "status", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var doc statusDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("status --json is not one JSON document: %v\n%s", err, out)
	}
	want := steps.Strategy("copy")
	if len(doc.Steps) != len(want) {
		t.Fatalf("status lists %d steps, strategy has %d", len(doc.Steps), len(want))
	}
	for i, s := range want {
		if doc.Steps[i].ID != s.ID || doc.Steps[i].Status != "pending" {
			t.Errorf("step %d: %+v, want %s pending", i, doc.Steps[i].StepRecord, s.ID)
		}
	}
}

func TestGlobalFlagsAfterCommand(t *testing.T) {
	cfg := exampleFor(t, "clone")
	state := filepath.Join(t.TempDir(), "run.json")
	code, out, errs := cli(t, "status", "--config", cfg, "--state="+state)
	if code != exitOK || !strings.Contains(out, "strategy clone") || !strings.Contains(out, state) {
		t.Fatalf("exit %d out %q err %q", code, out, errs)
	}
}

func TestBadConfigExit2OneLineEach(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("strategy: snapshot\ncutover:\n  method: pgbouncr\nbleu: {}\n"), 0o600)
	code, _, errs := cli(t, "plan", "--config", path)
	if code != exitUsage {
		t.Fatalf("exit %d, want 2", code)
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if len(lines) < 3 || !strings.Contains(errs, `config: line 4: unknown key "bleu"`) {
		t.Fatalf("want every problem, the unknown key included, one per line: %q", errs)
	}
	if code != exitUsage || !strings.Contains(errs, `config: cutover.method "pgbouncr" is not one of pgbouncer, nologin, readonly`) ||
		!strings.Contains(errs, `config: strategy "snapshot"`) || strings.Contains(errs, "goroutine") {
		t.Fatalf("exit %d, errors %q", code, errs)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"plan", "--format", "pdf", "--config", exampleFor(t, "copy")}, {"run"}, {"skip", "preflight"}, {"--config"}} {
		if code, _, errs := cli(t, args...); code != exitUsage || errs == "" {
			t.Errorf("%v: exit %d (want 2), stderr %q", args, code, errs)
		}
	}
	if code, out, _ := cli(t, "--help"); code != exitOK || !strings.Contains(out, "pgbluegreen run --through STEP") {
		t.Errorf("--help: exit %d", code)
	}
}

func TestRunRefusesOutOfOrder(t *testing.T) {
	awstest.New(t).Env(t) // an AWS strategy's session builds an AWS client; nothing is called
	cfg := exampleFor(t, "aurora-clone")
	state := filepath.Join(t.TempDir(), "state.json")
	code, _, errs := cli(t, "run", "clone-cluster", "--config", cfg, "--state", state)
	if code != exitFailed || !strings.Contains(errs, "refused: earlier step preflight is pending") {
		t.Fatalf("exit %d, %q", code, errs)
	}
	code, _, errs = cli(t, "run", "cutover", "--yes", "--config", cfg, "--state", state)
	if code != exitFailed || !strings.Contains(errs, "refused") {
		t.Fatalf("exit %d, %q", code, errs)
	}
	// Nothing ran: every step is still pending.
	_, out, _ := cli(t, "status", "--json", "--config", cfg, "--state", state)
	if strings.Contains(out, `"status": "done"`) || strings.Contains(out, `"status": "running"`) {
		t.Fatalf("a refused step changed state:\n%s", out)
	}
}

// TestAWSSessionNeedsRegion: an AWS strategy without a region anywhere is a
// configuration error, said in one line with the fix, before anything runs.
func TestAWSSessionNeedsRegion(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	cfg := exampleFor(t, "rds-snapshot")
	code, _, errs := cli(t, "run", "snapshot-blue", "--config", cfg, "--state", filepath.Join(t.TempDir(), "s.json"))
	if code != exitUsage || !strings.Contains(errs, "no region set") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Fatalf("exit %d, %q", code, errs)
	}
	code, _, errs = cli(t, "run", "snapshot-blue", "--profile", "nosuchprofile", "--config", cfg, "--state", filepath.Join(t.TempDir(), "s.json"))
	if code != exitUsage || !strings.Contains(errs, "nosuchprofile") {
		t.Fatalf("unknown profile: exit %d, %q", code, errs)
	}
}

func TestSkipIsRecorded(t *testing.T) {
	cfg := exampleFor(t, "copy")
	state := filepath.Join(t.TempDir(), "state.json")
	if code, _, errs := cli(t, "skip", "preflight", "--reason", "checked by hand", "--config", cfg, "--state", state); code != exitOK {
		t.Fatalf("skip: %d %s", code, errs)
	}
	_, out, _ := cli(t, "status", "--json", "--config", cfg, "--state", state)
	if !strings.Contains(out, `"status": "skipped"`) {
		t.Fatalf("skip not in status:\n%s", out)
	}
	journal, err := os.ReadFile(journalPath(state))
	if err != nil || !strings.Contains(string(journal), "checked by hand") {
		t.Fatalf("skip reason not journaled: %v %s", err, journal)
	}
}

func TestFlagsBeforeOrAfterTheStep(t *testing.T) {
	cfg := exampleFor(t, "copy")
	for i, args := range [][]string{{"skip", "--reason", "by hand", "preflight"}, {"skip", "preflight", "--reason", "by hand"}} {
		state := filepath.Join(t.TempDir(), "state.json")
		args = append(args, "--config", cfg, "--state", state)
		if code, _, errs := cli(t, args...); code != exitOK {
			t.Fatalf("form %d %v: exit %d: %s", i, args, code, errs)
		}
	}
}
