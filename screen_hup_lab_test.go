package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/charmbracelet/x/ansi"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/steps/testhook"
)

// The screen sent SIGHUP (an SSH session dropped outside tmux) while the
// cutover it started holds writes paused (at its drain): the real program in a pseudo
// terminal, on a lab under load. It must cancel the cutover (which aborts
// by its own logic: PgBouncer resumed on blue), restore the terminal and
// exit; no write is lost.

// openPTY opens a pseudo terminal pair of cols x rows.
func openPTY(cols, rows uint16) (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	ioctl := func(req uintptr, arg unsafe.Pointer) error {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), req, uintptr(arg)); e != 0 {
			return e
		}
		return nil
	}
	var n uint32
	var unlock int32
	ws := [4]uint16{rows, cols, 0, 0}
	for _, c := range []struct {
		req uintptr
		arg unsafe.Pointer
	}{{syscall.TIOCGPTN, unsafe.Pointer(&n)}, {syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)}, {syscall.TIOCSWINSZ, unsafe.Pointer(&ws)}} {
		if err := ioctl(c.req, c.arg); err != nil {
			master.Close()
			return nil, nil, err
		}
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// ptyScreen is the program's screen running in a pseudo terminal.
type ptyScreen struct {
	cmd    *exec.Cmd
	master *os.File
	out    *syncBuffer
	// exited is closed when the program has ended; err is then its end.
	exited chan struct{}
	err    error
}

// startScreen starts the screen on k's lab in a cols x rows terminal.
func startScreen(t *testing.T, k *killLab, env []string, cols, rows uint16) *ptyScreen {
	t.Helper()
	master, slave, err := openPTY(cols, rows)
	if err != nil {
		t.Fatalf("pseudo terminal: %v", err)
	}
	cmd := exec.Command(k.bin, k.args()...)
	cmd.Env = append(os.Environ(), append(env, "TERM=xterm-256color")...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	s := &ptyScreen{cmd: cmd, master: master, out: &syncBuffer{}, exited: make(chan struct{})}
	go func() { _, _ = io.Copy(s.out, master) }()
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.exited
		master.Close()
	})
	return s
}

// waitFor waits until the screen's text (escapes stripped) shows want.
func (s *ptyScreen) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(ansi.Strip(s.out.String()), want) {
		select {
		case <-s.exited:
			t.Fatalf("the screen ended (%v) before showing %q:\n%s", s.err, want, ansi.Strip(s.out.String()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the screen never showed %q:\n%s", want, ansi.Strip(s.out.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *ptyScreen) keys(t *testing.T, k string) {
	t.Helper()
	if _, err := s.master.Write([]byte(k)); err != nil {
		t.Fatal(err)
	}
}

func TestScreenHangupDuringCutover(t *testing.T) {
	labtest.Require(t)
	k := &killLab{info: labtest.Start(t, labtest.StartParams{Strategy: "copy"}), bin: binary(t)}
	k.state = filepath.Join(k.info.Dir, "pgbluegreen.state.json")
	k.must(t, "run", "--through", "verify-data", "--yes")
	k.must(t, "run", "copy-unlogged", "--yes") // the last step before the cutover
	stopLoad := labtest.StartLoad(t, k.info.Dir, labtest.LoadParams{Rate: 200, Clients: 4})

	heldFile := filepath.Join(filepath.Dir(k.state), testhook.HoldFile)
	os.Remove(heldFile)
	// No guard: what happens is the screen's doing alone.
	scr := startScreen(t, k, []string{testhook.HoldEnv + "=drain target", testhook.NoGuardEnv + "=1"}, 100, 30)
	scr.waitFor(t, "› ○ pending cutover")
	scr.keys(t, "\r")
	scr.waitFor(t, "type the database's name (app)")
	scr.keys(t, "app\r")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(heldFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cutover never reached its hold point:\n%s", ansi.Strip(scr.out.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !k.paused(t) {
		t.Fatal("held in the pause, but PgBouncer is not paused")
	}
	hupAt := time.Now()
	scr.cmd.Process.Signal(syscall.SIGHUP)
	select {
	case <-scr.exited:
		t.Logf("the screen exited %s after SIGHUP: %v", time.Since(hupAt).Round(time.Millisecond), scr.err)
		if scr.err != nil {
			t.Errorf("exit after SIGHUP: %v", scr.err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("still running 2 minutes after SIGHUP:\n%s", ansi.Strip(scr.out.String()))
	}
	raw := scr.out.String()
	// The terminal is given back: the alternate screen left, the cursor shown.
	if !strings.Contains(raw, "\x1b[?1049l") || !strings.Contains(raw, "\x1b[?25h") {
		t.Errorf("the terminal was not restored (no alternate-screen exit or cursor show in the output)")
	}
	if k.paused(t) {
		t.Fatal("PgBouncer left paused after SIGHUP")
	}
	k.wantTraffic(t, "blue")
	// The cutover ended by its own logic before the screen exited: held in
	// the pause, it aborted and put everything back.
	doc := k.status(t)
	last := doc.Attempts[len(doc.Attempts)-1]
	t.Logf("the attempt after SIGHUP: %s %s", last.Outcome, last.Error)
	if last.Outcome != "aborted" || last.FinishedAt == nil {
		t.Errorf("the attempt after SIGHUP: %+v", last)
	}
	for _, s := range doc.Steps {
		if s.ID == "cutover" && s.Status == "running" {
			t.Errorf("cutover still recorded running after the screen exited")
		}
	}
	res := stopLoad()
	k.drained(t, "blue", "pgbg_all")
	v, err := lab.Verify(t.Context(), k.info.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load %+v; ledger %+v", res, v)
	if v.Lost != 0 || v.Duplicated != 0 {
		t.Errorf("ledger after the hangup: %+v", v)
	}
}
