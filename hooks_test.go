package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/steps/testhook"
)

// TestProductHasNoTestHooks: the program as shipped (built without
// testhook.Tag) links no package testing and holds nothing for tests: the
// names of the hooks' environment variables are not even in the binary,
// so PGBG_TEST_HOLD_AT and PGBG_TEST_NO_GUARD cannot be read. Built with
// the tag (as the kill tests build it), they are.
func TestProductHasNoTestHooks(t *testing.T) {
	for _, tags := range []string{"", testhook.Tag} {
		out, err := exec.Command("go", "list", "-tags", tags, "-deps", ".").CombinedOutput()
		if err != nil {
			t.Fatalf("go list -tags %q -deps .: %v\n%s", tags, err, out)
		}
		for _, p := range strings.Fields(string(out)) {
			if p == "testing" {
				t.Errorf("go list -tags %q -deps . lists testing: the binary links it", tags)
			}
		}
	}
	product := filepath.Join(t.TempDir(), "pgbluegreen")
	if out, err := exec.Command("go", "build", "-o", product, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, c := range []struct {
		bin  string
		tag  string
		want bool
	}{{product, "none", false}, {binary(t), testhook.Tag, true}} {
		data, err := os.ReadFile(c.bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, env := range []string{testhook.HoldEnv, testhook.NoGuardEnv} {
			if got := bytes.Contains(data, []byte(env)); got != c.want {
				t.Errorf("built with tag %s, the binary names %s: %t, want %t", c.tag, env, got, c.want)
			}
		}
	}
}
