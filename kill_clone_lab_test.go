package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// TestKillDuringClone kills the driver (SIGKILL) while clone-local's
// pg_upgrade runs (it takes seconds on the lab): the child dies with it at
// once, so nothing goes on writing into the clone's folders, and the rerun
// picks up from the phase the files say and finishes.
func TestKillDuringClone(t *testing.T) {
	labtest.Require(t)
	k := &killLab{info: labtest.Start(t, labtest.StartParams{Strategy: "clone"}), bin: binary(t)}
	k.state = filepath.Join(k.info.Dir, "pgbluegreen.state.json")
	k.must(t, "run", "--through", "create-slots", "--yes")

	cmd := exec.Command(k.bin, k.args("run", "clone-local", "--yes")...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var child int
	var name string
	deadline := time.Now().Add(2 * time.Minute)
	for child == 0 {
		select {
		case err := <-exited:
			t.Fatalf("clone-local ended (%v) before a child was seen:\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no pg_upgrade child in 2 minutes:\n%s", out.String())
		}
		child, name = childNamed(cmd.Process.Pid, "pg_upgrade")
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	killed := time.Now()
	for alive(child) {
		// Far less than pg_upgrade's own run: a child left running would
		// go on for seconds.
		if time.Since(killed) > 2*time.Second {
			t.Fatalf("%s (pid %d) still runs 2 s after its driver was killed", name, child)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("driver killed during %s: the child ended %s after", name, time.Since(killed).Round(time.Millisecond))

	t.Logf("rerun: %s", strings.TrimSpace(k.must(t, "run", "clone-local", "--yes")))
	k.must(t, "run", "--through", "wait-catch-up", "--yes")
}

// childNamed returns the first child of pid whose command is one of names.
func childNamed(pid int, names ...string) (int, string) {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		comm, rest := s[open+1:close], strings.Fields(s[close+1:])
		if len(rest) < 2 || rest[1] != strconv.Itoa(pid) {
			continue
		}
		for _, n := range names {
			if comm == n {
				c, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
				return c, n
			}
		}
	}
	return 0, ""
}

// alive reports whether pid runs (a zombie counts as ended).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i > 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 0 && f[0] == "Z" {
			return false
		}
	}
	return true
}
