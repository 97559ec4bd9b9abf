package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// The guard of a cutover attempt: a process of its own (a new session, so
// a dropped SSH session or the terminal's SIGHUP does not reach it) that
// outlives the driver. While the attempt runs it watches the driver; if
// the driver dies (kill -9 included) or stops answering for longer than
// cutover.guard_timeout, it takes the state's lock and undoes the attempt from
// where the servers are: nobody stays paused. It exits as soon as the
// attempt is over.

// guardPoll is how often the guard looks at the driver and the state.
const guardPoll = 20 * time.Millisecond

// budgetMargin is what the guard allows past the pause budget before it
// stops the driver: the driver's own RESUME, on time, is not raced.
const budgetMargin = 250 * time.Millisecond

// heartbeatPath is the file the driver touches while an attempt runs.
func heartbeatPath(statePath string) string { return statePath + ".heartbeat" }

// startGuard is the runner's GuardFunc (main wires it, program.guard): it
// starts `pgbluegreen guard` for attempt n with the same configuration and
// state, waits until the guard says it watches, and beats a heartbeat
// until stopped.
func startGuard(g globals, cfg *config.Config) steps.GuardFunc {
	return func(ctx context.Context, n int) (func(), error) {
		bound := cfg.Cutover.GuardTimeout.Duration
		beat := heartbeatPath(g.state)
		if err := touch(beat); err != nil {
			return nil, fmt.Errorf("heartbeat file: %w", err)
		}
		logPath := filepath.Join(filepath.Dir(g.state), "pgbluegreen.guard.log")
		cmd, ready, err := spawnHelper(g, logPath, "guard", "--attempt", strconv.Itoa(n),
			"--driver", strconv.Itoa(os.Getpid()), "--bound", bound.String(), "--budget", cfg.Cutover.PauseBudget.String())
		if err != nil {
			return nil, err
		}
		defer ready.Close()
		buf := make([]byte, 8)
		_ = ready.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := ready.Read(buf); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("the guard did not start (see %s): %w", logPath, err)
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(guardPoll * 5)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					_ = touch(beat)
				}
			}
		}()
		go func() { _ = cmd.Wait() }()
		return func() {
			close(stop)
			<-done
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}, nil
	}
}

// spawnHelper starts this program's helper command (the guard, a
// snapshot's holder) with the same configuration, state and profile, in a
// session of its own (a dropped terminal's SIGHUP does not reach it), its
// output appended to logPath. Its fd 3 is the write end of the pipe it
// returns the read end of: the helper says there when it is ready.
func spawnHelper(g globals, logPath, command string, args ...string) (*exec.Cmd, *os.File, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("%s log: %w", command, err)
	}
	defer logf.Close()
	ready, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer w.Close()
	all := append([]string{command, "--config", g.config, "--state", g.state}, args...)
	if g.profile != "" {
		all = append(all, "--profile", g.profile)
	}
	cmd := exec.Command(exe, all...)
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = logf, logf, []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		ready.Close()
		return nil, nil, err
	}
	return cmd, ready, nil
}

func touch(path string) error {
	now := time.Now()
	if err := os.Chtimes(path, now, now); err == nil {
		return nil
	}
	return os.WriteFile(path, nil, 0o600)
}

// guard is `pgbluegreen guard`: started by a driver, never by hand.
var guardCommand = command{name: "guard", synopsis: "guard --attempt N --driver PID --bound DURATION (started by a cutover, not by hand)", run: runGuard}

func runGuard(c *call, args []string) int {
	fs := c.flags()
	g, stderr := c.g, c.stderr
	attempt := fs.Int("attempt", 0, "the attempt to guard")
	driver := fs.Int("driver", 0, "the driver's pid")
	bound := fs.Duration("bound", 10*time.Second, "how long the driver may stop answering")
	budget := fs.Duration("budget", 0, "how long PgBouncer's clients may stay paused (0: no bound but --bound)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s guard of attempt %d (driver %d): %s\n", time.Now().UTC().Format(time.RFC3339Nano), *attempt, *driver, fmt.Sprintf(format, a...))
	}
	if *attempt <= 0 || *driver <= 0 {
		fmt.Fprintln(stderr, "pgbluegreen guard: --attempt and --driver are needed; a cutover starts its guard itself")
		return exitUsage
	}
	// Tell the driver it watches (fd 3 is the driver's pipe).
	if ready := os.NewFile(3, "ready"); ready != nil {
		_, _ = ready.Write([]byte("ready\n"))
		ready.Close()
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	started := time.Now()
	logf("watching (bound %s, pause budget %s)", *bound, *budget)
	for {
		select {
		case <-term:
			logf("told to stop: the attempt is over")
			return exitOK
		case <-time.After(guardPoll):
		}
		if over, outcome := attemptOver(g.state, *attempt); over {
			logf("the attempt ended %s: nothing to do", outcome)
			return exitOK
		}
		alive := syscall.Kill(*driver, 0) == nil
		stale := false
		if st, err := os.Stat(heartbeatPath(g.state)); err == nil {
			stale = time.Since(st.ModTime()) > *bound
		}
		// A marker older than this guard is an earlier attempt's, left by
		// an undo that did not resume: not this pause.
		pausedAt, paused := steps.ReadPaused(g.state)
		over := paused && !pausedAt.Before(started) && *budget > 0 && time.Since(pausedAt) > *budget+budgetMargin
		switch {
		case !alive:
			logf("the driver is gone while the attempt runs")
		case stale || over:
			if over {
				logf("PgBouncer's clients paused for %s, past the pause budget %s: stopping the driver", time.Since(pausedAt).Round(time.Millisecond), *budget)
			} else {
				logf("the driver has not answered for more than %s: stopping it", *bound)
			}
			_ = syscall.Kill(*driver, syscall.SIGKILL)
			for syscall.Kill(*driver, 0) == nil {
				time.Sleep(guardPoll)
			}
		default:
			continue
		}
		return guardAct(c, *attempt, logf)
	}
}

// attemptOver reads the state (without its lock) and reports whether
// attempt n is over.
func attemptOver(statePath string, n int) (bool, string) {
	st, err := state.Open(statePath, state.OpenParams{ReadOnly: true})
	if err != nil {
		return false, ""
	}
	defer st.Close()
	for _, a := range st.Snapshot().Attempts {
		if a.N == n {
			return a.Outcome != state.AttemptRunning, a.Outcome
		}
	}
	return false, ""
}

// guardAct takes the state's lock (the driver's is gone with it) and
// undoes the attempt.
func guardAct(c *call, n int, logf func(string, ...any)) int {
	// Tried quietly, every guardPoll: the lock may still be the dying
	// driver's for a moment.
	quiet := *c
	quiet.program = &program{stdout: c.stdout, stderr: io.Discard, guard: c.guard}
	var s *session
	deadline := time.Now().Add(5 * time.Second)
	for {
		var code int
		s, code = quiet.open(needs{state: writeState, journal: true, pools: stepPools})
		if s != nil {
			break
		}
		if time.Now().After(deadline) {
			logf("could not open the state (exit %d): another process holds its lock", code)
			return exitFailed
		}
		time.Sleep(guardPoll)
	}
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	what, err := steps.GuardAttempt(ctx, s.runner(), n)
	if err != nil {
		logf("%s; FAILED: %v", what, state.Redact(err.Error()))
		var re *steps.RefusedError
		if errors.As(err, &re) {
			return exitFailed
		}
		return exitFailed
	}
	logf("%s in %s", what, time.Since(start).Round(time.Millisecond))
	return exitOK
}
