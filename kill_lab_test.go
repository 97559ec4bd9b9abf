package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/steps/cutover"
	"github.com/pgbluegreen/pgbluegreen/steps/testhook"
)

// The cutover killed: the real program, run as its own process on a lab
// under a live load, is held at a named sub-step (testhook.HoldEnv), then
// killed with SIGKILL or sent SIGHUP. With its guard, PgBouncer is
// resumed on blue within the guard's bound; without one, the attempt is
// left half way and both ways out (--finish, --undo) work from each point.
// The workload's ledger then shows no acknowledged write lost or
// duplicated.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds pgbluegreen once for the tests that kill it, with the
// hooks they hold it by (testhook.Tag).
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pgbg-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "pgbluegreen")
		out, err := exec.Command("go", "build", "-tags", testhook.Tag, "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = &buildError{out: string(out), err: err}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

// killLab is a lab caught up under the copy strategy, driven by the binary.
type killLab struct {
	info  *lab.Info
	state string
	bin   string
}

func (k *killLab) args(a ...string) []string {
	return append(a, "--config", k.info.Config, "--state", k.state)
}

// cli runs the binary to its end and returns its exit code and output.
func (k *killLab) cli(t *testing.T, env []string, a ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(k.bin, k.args(a...)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}

func (k *killLab) must(t *testing.T, a ...string) string {
	t.Helper()
	code, out := k.cli(t, nil, a...)
	if code != 0 {
		if strings.Contains(out, "is in use by") {
			// Who holds the state file's lock after a kill says what is
			// still alive: the processes, for the record.
			ps, _ := exec.Command("ps", "-eo", "pid,ppid,stat,etime,args").Output()
			out += "\nprocesses:\n" + string(ps)
		}
		t.Fatalf("pgbluegreen %s: exit %d\n%s", strings.Join(a, " "), code, out)
	}
	return out
}

// held starts `run STEP --yes` held at sub-step point and returns it once
// it waits there.
func (k *killLab) held(t *testing.T, step, point string, guard bool) (*heldRun, *syncBuffer) {
	t.Helper()
	k.waitUnlocked(t)
	heldFile := filepath.Join(filepath.Dir(k.state), testhook.HoldFile)
	os.Remove(heldFile)
	cmd := exec.Command(k.bin, k.args("run", step, "--yes")...)
	cmd.Env = append(os.Environ(), testhook.HoldEnv+"="+point)
	if !guard {
		cmd.Env = append(cmd.Env, testhook.NoGuardEnv+"=1")
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// A group of its own, whose parent is in this session: not orphaned,
	// so a SIGTSTP stops it as it stops a program in a terminal (the
	// kernel drops stop signals to an orphaned group).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		if _, err := os.Stat(heldFile); err == nil {
			return &heldRun{cmd: cmd, exited: exited}, out
		}
		select {
		case err := <-exited:
			t.Fatalf("%s ended (%v) before %q:\n%s", step, err, point, out.String())
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			t.Fatalf("%s never reached %q:\n%s", step, point, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitUnlocked waits until no process holds the state's lock: the guard
// of the previous way out may still be standing down. Who held it, and
// for how long, goes to the test's log with the guard's log.
func (k *killLab) waitUnlocked(t *testing.T) {
	t.Helper()
	start := time.Now()
	holder := ""
	for {
		doc := k.status(t)
		if doc.Lock == "" {
			break
		}
		holder = doc.Lock
		if time.Since(start) > 30*time.Second {
			b, _ := os.ReadFile(filepath.Join(k.info.Dir, "pgbluegreen.guard.log"))
			t.Fatalf("the state is still locked after 30 s: %s\nguard log:\n%s", holder, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if holder != "" {
		b, _ := os.ReadFile(filepath.Join(k.info.Dir, "pgbluegreen.guard.log"))
		t.Logf("the state was locked (%s) for %s before this run; guard log:\n%s", holder, time.Since(start).Round(time.Millisecond), lastLines(string(b), 6))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// heldRun is a driver held at a sub-step.
type heldRun struct {
	cmd    *exec.Cmd
	exited chan error
}

func (h *heldRun) signal(s syscall.Signal) error {
	h.cmd.Process.Signal(s)
	select {
	case err := <-h.exited:
		return err
	case <-time.After(2 * time.Minute):
		h.cmd.Process.Kill()
		<-h.exited
		return errStuck
	}
}

var errStuck = errors.New("still running 2 minutes after the signal: killed")

// syncBuffer is a bytes.Buffer safe for the writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// status is `status --json` of the binary.
func (k *killLab) status(t *testing.T) statusDoc {
	t.Helper()
	var doc statusDoc
	if err := json.Unmarshal([]byte(k.must(t, "status", "--json")), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// paused reads whether any of the lab's PgBouncers (the local one, the one
// reached over SSH) holds the lab's database paused.
func (k *killLab) paused(t *testing.T) bool {
	t.Helper()
	for _, b := range k.info.Bouncers() {
		c, err := pg.ConnectConsole(context.Background(), b.Name, b.AdminConninfo, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.Database(context.Background(), lab.AppDB)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if d.Paused {
			return true
		}
	}
	return false
}

// resumedWithin waits until PgBouncer is not paused and returns how long
// that took.
func (k *killLab) resumedWithin(t *testing.T, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for k.paused(t) {
		if time.Since(start) > bound {
			t.Fatalf("PgBouncer still paused %s after the driver was killed", bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// drained waits until the feed into the other side has caught up with
// server: before a rollback the operator waits for the lag too.
func (k *killLab) drained(t *testing.T, server, slot string) {
	t.Helper()
	ci := k.info.Blue.Conninfo
	if server == "green" {
		ci = k.info.Green.Conninfo
	}
	pool, err := pg.NewPool(pg.PoolParams{Conninfo: ci, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	labtest.WaitSlotDrained(t, pool, slot, nil)
}

// holdCommits sets cutover.hold_commits: 3s in the lab's configuration.
func holdCommits(t *testing.T, config string) {
	t.Helper()
	editConfig(t, config, "\ncutover:\n", "\ncutover:\n  hold_commits: 3s\n")
}

// editConfig replaces the first old with new in the configuration file.
func editConfig(t *testing.T, config, old, new string) {
	t.Helper()
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), old, new, 1)
	if text == string(b) {
		t.Fatalf("no %q in %s", old, config)
	}
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// noCommitHeld checks that blue holds no commit for a standby: its
// synchronous_standby_names is empty again.
func (k *killLab) noCommitHeld(t *testing.T) {
	t.Helper()
	pool, err := pg.NewPool(pg.PoolParams{Conninfo: k.info.Blue.Conninfo, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var names string
	if err := pool.QueryRow(context.Background(), "SHOW synchronous_standby_names").Scan(&names); err != nil {
		t.Fatal(err)
	}
	if names != "" {
		t.Errorf("blue's synchronous_standby_names is %q after the guard: commits are still held", names)
	}
}

func (k *killLab) wantTraffic(t *testing.T, want string) {
	t.Helper()
	doc := k.status(t)
	if doc.Traffic.Target != want {
		t.Fatalf("status --json traffic %+v, want %s", doc.Traffic, want)
	}
	t.Logf("status --json traffic: %s (%s)", doc.Traffic.Target, doc.Traffic.How)
}

func TestKillDuringCutover(t *testing.T) {
	labtest.Require(t)
	k := &killLab{info: labtest.Start(t, labtest.StartParams{Strategy: "copy"}), bin: binary(t)}
	k.state = filepath.Join(k.info.Dir, "pgbluegreen.state.json")
	// With blue's commits held for green's apply before the pause (off by
	// default): a kill must leave no commit held, as no client paused.
	holdCommits(t, k.info.Config)
	k.must(t, "run", "--through", "analyze-green", "--yes")
	k.must(t, "run", "--through", "copy-unlogged", "--yes") // the last step before the cutover
	stopLoad := labtest.StartLoad(t, k.info.Dir, labtest.LoadParams{Rate: 200, Clients: 4})

	// The points: writes paused (drain to come); the drain under way (the
	// sequences beside it); PgBouncer moved (RELOAD) but not resumed;
	// resumed (the switch), the feeds not yet swapped; swapped, but not
	// verified, not fenced.
	points := []string{"drain target", "sync sequences", "resume", "stop blue -> green replication", "verify target is green"}
	pastSwitch := func(point string) bool {
		return point == "stop blue -> green replication" || point == "verify target is green"
	}
	for _, point := range points {
		t.Run("guard/"+point, func(t *testing.T) {
			h, out := k.held(t, "cutover", point, true)
			killed := time.Now()
			h.signal(syscall.SIGKILL)
			if pastSwitch(point) {
				// Past the switch: nothing paused; finishing forward fences blue.
				if k.paused(t) {
					t.Fatal("PgBouncer paused after a kill past the switch")
				}
				waitGuard(t, k)
				k.noCommitHeld(t)
				k.wantTraffic(t, "green")
				t.Logf("finish: %s", lastLine(k.must(t, "run", "cutover", "--finish", "--yes")))
				k.wantTraffic(t, "green")
				k.drained(t, "green", cutover.DefaultReverseName)
				k.must(t, "run", "rollback", "--yes")
				k.wantTraffic(t, "blue")
				return
			}
			took := k.resumedWithin(t, 30*time.Second)
			t.Logf("killed at %q: PgBouncer resumed by the guard %s after the kill (%s)", point, took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
			waitGuard(t, k)
			k.noCommitHeld(t)
			k.wantTraffic(t, "blue")
			if code, o := k.cli(t, nil, "run", "cutover", "--undo", "--yes"); code == 0 || !strings.Contains(o, "nothing stopped half way") {
				t.Errorf("--undo after the guard undid it: exit %d: %s", code, o)
			}
			_ = out
		})
	}
	for _, point := range points {
		for _, way := range []string{"undo", "finish"} {
			t.Run("no guard/"+point+"/"+way, func(t *testing.T) {
				h, _ := k.held(t, "cutover", point, false)
				h.signal(syscall.SIGKILL)
				code, o := k.cli(t, nil, "run", "cutover", "--yes")
				if !pastSwitch(point) && (code == 0 || !strings.Contains(o, "--finish") || !strings.Contains(o, "--undo")) {
					t.Errorf("a cutover over a half-way one: exit %d, want a refusal naming both ways out:\n%s", code, o)
				}
				start := time.Now()
				o = k.must(t, "run", "cutover", "--"+way, "--yes")
				t.Logf("%s from %q in %s: %s", way, point, time.Since(start).Round(time.Millisecond), lastLine(o))
				if k.paused(t) {
					t.Fatal("PgBouncer left paused by the way out")
				}
				if way == "undo" {
					k.wantTraffic(t, "blue")
					return
				}
				k.wantTraffic(t, "green")
				k.drained(t, "green", cutover.DefaultReverseName)
				if code, o := k.cli(t, nil, "run", "rollback", "--yes"); code != 0 {
					t.Fatalf("rollback after finishing from %q: exit %d\n%s", point, code, o)
				}
				k.wantTraffic(t, "blue")
			})
		}
	}
	t.Run("SIGHUP in the pause aborts cleanly", func(t *testing.T) {
		h, out := k.held(t, "cutover", "sync sequences", true)
		err := h.signal(syscall.SIGHUP)
		if err == nil || k.paused(t) {
			t.Fatalf("after SIGHUP: %v, paused %t\n%s", err, k.paused(t), out)
		}
		k.wantTraffic(t, "blue")
		if doc := k.status(t); doc.Attempts[len(doc.Attempts)-1].Outcome != "aborted" {
			t.Errorf("the attempt after SIGHUP: %+v", doc.Attempts[len(doc.Attempts)-1])
		}
	})
	t.Run("SIGSTOP in the pause: the budget", func(t *testing.T) {
		h, out := k.held(t, "cutover", "drain target", true)
		h.cmd.Process.Signal(syscall.SIGSTOP)
		took := k.resumedWithin(t, 30*time.Second)
		waitGuard(t, k)
		b, _ := os.ReadFile(filepath.Join(k.info.Dir, "pgbluegreen.guard.log"))
		log := string(b)
		if i := strings.LastIndex(log, "watching"); i >= 0 {
			log = log[i:]
		}
		t.Logf("frozen at \"drain target\": PgBouncer resumed %s after SIGSTOP (budget 2s, margin 250ms, guard_timeout 10s); the guard:\n%s", took.Round(time.Millisecond), log)
		if !strings.Contains(log, "past the pause budget 2s: stopping the driver") {
			t.Errorf("the guard did not act on the pause budget:\n%s", log)
		}
		h.signal(syscall.SIGCONT) // killed by the guard already
		k.wantTraffic(t, "blue")
		if k.paused(t) {
			t.Errorf("PgBouncer paused after the guard acted\n%s", out)
		}
	})
	t.Run("Ctrl+Z in the pause waits for the attempt's end", func(t *testing.T) {
		h, out := k.held(t, "cutover", "sync sequences", true)
		pid := h.cmd.Process.Pid
		h.cmd.Process.Signal(syscall.SIGTSTP)
		time.Sleep(300 * time.Millisecond)
		if st := procState(t, pid); st == "T" {
			t.Fatalf("the driver stopped on SIGTSTP with writes paused (state %s)", st)
		}
		// SIGHUP ends the attempt; once it is over, the deferred stop comes.
		h.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(30 * time.Second)
		for procState(t, pid) != "T" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if k.paused(t) {
			t.Errorf("PgBouncer paused while the driver stands stopped")
		}
		stopped := procState(t, pid) == "T"
		h.cmd.Process.Signal(syscall.SIGCONT)
		if err := h.signal(syscall.SIGCONT); err == nil {
			t.Errorf("the attempt ended well after SIGHUP:\n%s", out)
		}
		if !stopped || !strings.Contains(out.String(), "Ctrl+Z (SIGTSTP) came while writes were stopped: deferred") {
			t.Errorf("stopped after the attempt: %t; output:\n%s", stopped, out)
		}
		k.wantTraffic(t, "blue")
	})
	t.Run("SIGHUP past the switch finishes", func(t *testing.T) {
		h, out := k.held(t, "cutover", "restore server_login_retry", true)
		if err := h.signal(syscall.SIGHUP); err != nil {
			t.Fatalf("after SIGHUP past the switch: %v\n%s", err, out)
		}
		k.wantTraffic(t, "green")
	})
	res := stopLoad()
	t.Logf("load over the whole test: %+v", res)
	k.drained(t, "green", cutover.DefaultReverseName)
	k.must(t, "run", "rollback", "--yes")
	// A guard whose driver ended the attempt itself says so: "watching"
	// would claim a process that is gone.
	if doc := k.status(t); len(doc.Attempts) == 0 || doc.Attempts[len(doc.Attempts)-1].Guard != "stood down: the driver ended the attempt" {
		t.Errorf("the last attempt's guard after a rollback that ended by itself: %+v", doc.Attempts)
	}
	v, err := lab.Verify(context.Background(), k.info.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ledger: %+v", v)
	if v.Lost != 0 || v.Duplicated != 0 || v.LedgerEntries == 0 {
		t.Errorf("ledger after every kill: %+v", v)
	}
}

// procState is a process's state letter from /proc (T: stopped; "" gone).
func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// pid (comm) state ...: comm may hold spaces, the state follows its ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

// waitGuard waits until the guard recorded what it did.
func waitGuard(t *testing.T, k *killLab) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		doc := k.status(t)
		if n := len(doc.Attempts); n > 0 && doc.Attempts[n-1].Guard != "" && doc.Attempts[n-1].Guard != "watching" {
			t.Logf("guard: %s", doc.Attempts[n-1].Guard)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(k.info.Dir, "pgbluegreen.guard.log"))
	t.Fatalf("the guard recorded nothing; its log:\n%s", b)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
