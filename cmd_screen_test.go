package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScreenNeedsTerminal: with stdout a file, a pipe or a buffer, the
// screen (driving or --watch) and demo say so in one line with what to
// use instead and exit 2, having opened nothing: no state file, no
// journal, no lab.
func TestScreenNeedsTerminal(t *testing.T) {
	cfg := exampleFor(t, "copy")
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	outs := []struct {
		name string
		w    io.Writer
	}{{"a file", file}, {"a pipe", pw}, {"a buffer", &bytes.Buffer{}}}
	for _, out := range outs {
		for _, c := range []struct {
			args []string
			want string
		}{
			{nil, "use `pgbluegreen status`, `pgbluegreen lag --once` or `pgbluegreen run STEP` instead"},
			{[]string{"--watch"}, "use `pgbluegreen status` or `pgbluegreen lag --once` instead"},
			{[]string{"demo", "--dir", "LAB"}, "use `pgbluegreen lab up --dir LAB`, then `pgbluegreen status --config LAB/pgbluegreen.yaml` instead"},
		} {
			dir := t.TempDir()
			lab := filepath.Join(dir, "lab")
			args := []string{"--config", cfg, "--state", filepath.Join(dir, "state.json")}
			for _, a := range c.args {
				args = append(args, strings.ReplaceAll(a, "LAB", lab))
			}
			want := strings.ReplaceAll(c.want, "LAB", lab)
			var errb bytes.Buffer
			code := (&program{stdout: out.w, stderr: &errb}).run(args)
			msg := strings.TrimSpace(errb.String())
			if code != exitUsage || !strings.Contains(msg, "stdout is not a terminal") || !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
				t.Errorf("%v, stdout %s: exit %d, stderr %q; want exit 2 and one line saying %q", c.args, out.name, code, msg, want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("%v, stdout %s: left %v behind", c.args, out.name, left)
			}
			if out.name == "a file" {
				t.Logf("%v > file: %s", c.args, msg)
			}
		}
	}
	if fi, err := file.Stat(); err != nil {
		t.Error(err)
	} else if fi.Size() != 0 {
		t.Errorf("stdout's file holds %d bytes; want nothing written", fi.Size())
	}
	// A terminal is one: the screen is not refused there.
	master, slave, err := openPTY(80, 24)
	if err != nil {
		t.Skipf("no pseudo terminal here: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	if !isTerminal(slave) {
		t.Errorf("a pseudo terminal is not taken for a terminal")
	}
}
