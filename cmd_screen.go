package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui"
)

// The full-screen program, run when no command is named.
var screenCommand = command{name: "", run: func(c *call, _ []string) int { return runScreen(c) }}

// runScreen opens the full-screen program on the configuration: it drives
// the run (holding the state file's lock), or with --watch follows the files
// of the instance that drives, read-only, polling the lag itself.
func runScreen(c *call) int {
	g, stderr := c.g, c.stderr
	instead := "`pgbluegreen status`, `pgbluegreen lag --once` or `pgbluegreen run STEP`"
	if g.watch {
		instead = "`pgbluegreen status` or `pgbluegreen lag --once`"
	}
	if refuseScreen(c, "the screen", instead) {
		return exitUsage
	}
	// The driving screen holds the state's lock and journals; --watch
	// reads the files of the instance that drives. The gauge polls through
	// pools of its own (needs.gauge): two connections each, so a slow read
	// (where the traffic is, the schemas' fingerprints) never holds the lag
	// poll back.
	n := needs{state: writeState, journal: true, pools: stepPools, gauge: true}
	if g.watch {
		n.state, n.journal = readState, false
	}
	s, code := c.open(n)
	if s == nil {
		return code
	}
	defer s.close()
	cfg := s.cfg
	mon := monitor.NewMonitor(s.gaugeBlue, s.gaugeGreen, cfg)
	defer mon.Close()

	r := s.runner()
	lines := make(chan steps.Line, 256)
	r.Out = lines
	p := ui.Params{
		Config: cfg, Steps: r.Steps, Runner: r, Store: s.store, Lines: lines,
		Lag: mon.Lag, Subscriptions: mon.Subscriptions, BlueVersion: mon.BlueVersion, GreenVersion: mon.GreenVersion,
		Traffic: mon.Traffic, Connections: mon.Connections, Drift: mon.Drift, SyncProgress: mon.SyncProgress,
		PollTimeout: cfg.Timeouts.Connect.Duration + 3*time.Second,
		JournalPath: journalPath(g.state), StatePath: g.state,
		Database: databaseName(cfg.Blue.Conninfo), Watch: g.watch,
	}
	if !g.watch {
		p.Holder = ui.HolderSelf()
		// The driving screen sends the alerts, unless `watch --alerts`
		// does already (one sender per run: each alert once).
		if cfg.Alerts.Enabled() {
			if lock, holder := takeAlertsLock(g.state, "the screen"); lock != nil {
				defer lock.release()
				a := monitor.NewAlerter(monitor.AlerterParams{Config: cfg, Journal: s.journal})
				defer a.Close()
				p.Alerts = a
				p.AlertsNote = "alerts go to " + alertsDest(cfg.Alerts) + " (journaled)"
			} else {
				p.AlertsNote = "alerts are sent by " + holder
			}
		}
	}
	m := ui.New(p)
	prog := tea.NewProgram(m, tea.WithAltScreen(), tea.WithFilter(ui.Filter))
	// SIGHUP (an SSH session dropped outside tmux) would kill the process
	// mid-step: it becomes a message instead, and the screen cancels the
	// step, lets it end by its own logic and quits, restoring the terminal.
	var hungUp atomic.Bool
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			hungUp.Store(true)
			prog.Send(ui.HangupMsg{})
		}
	}()
	_, err := prog.Run()
	// Left with a step still running: a second Ctrl+C, or the terminal gone
	// (its input failed before the hangup was read). Cancel the step and let
	// it save its state, reading its output meanwhile so it never blocks.
	// After a hangup or a failed terminal the step ends by its own logic,
	// however long its way back takes (a cutover aborting); an impatient
	// operator's second Ctrl+C waits a statement's timeout at most.
	if done := m.Stop(); done != nil {
		fmt.Fprintf(stderr, "pgbluegreen: cancelling %s…\n", m.Running())
		go func() {
			for range lines {
			}
		}()
		var bound <-chan time.Time
		if !hungUp.Load() && err == nil {
			bound = time.After(cfg.Timeouts.Statement.Duration)
		}
		select {
		case <-done:
		case <-bound:
			fmt.Fprintf(stderr, "pgbluegreen: %s did not stop in time; the next start marks it interrupted\n", m.Running())
		}
	}
	if err != nil && !errors.Is(err, tea.ErrInterrupted) {
		fmt.Fprintf(stderr, "pgbluegreen: screen: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// refuseScreen says, when stdout is not a terminal (a file, a pipe), in one
// line that what needs one and what to use instead, and returns true: the
// caller exits 2 having opened and changed nothing. On a file the screen
// would leave only escape codes behind.
func refuseScreen(c *call, what, instead string) bool {
	if isTerminal(c.stdout) {
		return false
	}
	fmt.Fprintf(c.stderr, "pgbluegreen: stdout is not a terminal, and %s needs one: use %s instead\n", what, instead)
	return true
}

// databaseName is the database of a connection string: the name typed to
// confirm a destructive step.
func databaseName(conninfo string) string {
	c, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return ""
	}
	return c.Database
}
