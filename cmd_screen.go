package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/ui"
)

// runScreen opens the full-screen program on the configuration: it drives
// the run (holding the state file's lock), or with --watch follows the files
// of the instance that drives, read-only, polling the lag itself.
func runScreen(g globals, stdout, stderr io.Writer) int {
	s, code := openSession(g, g.watch, stderr)
	if s == nil {
		return code
	}
	defer s.close()
	cfg := s.cfg
	// The gauge polls through pools of its own: the runner's journal every
	// statement, and one lag query a second does not belong in the journal.
	// Two connections each, so a slow read (where the traffic is, the
	// schemas' fingerprints) never holds the lag poll back.
	blue, err := pg.NewPool(pg.PoolParams{Conninfo: cfg.Blue.Conninfo, ConnectTimeout: cfg.Timeouts.Connect.Duration, MaxConns: 2})
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: blue: %s\n", state.Redact(err.Error()))
		return exitUsage
	}
	defer blue.Close()
	green, err := pg.NewPool(pg.PoolParams{Conninfo: cfg.Green.Conninfo, ConnectTimeout: cfg.Timeouts.Connect.Duration, MaxConns: 2})
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: green: %s\n", state.Redact(err.Error()))
		return exitUsage
	}
	defer green.Close()
	mon := monitor.NewMonitor(blue, green, cfg)

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
	_, err = prog.Run()
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

// databaseName is the database of a connection string: the name typed to
// confirm a destructive step.
func databaseName(conninfo string) string {
	c, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return ""
	}
	return c.Database
}

func runLag(g globals, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("lag", "lag [--once] [--json]", stderr)
	once := fs.Bool("once", false, "one sample, then exit")
	asJSON := fs.Bool("json", false, "JSON: one document per sample")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, ok := loadConfig(g, stderr)
	if !ok {
		return exitUsage
	}
	blue, green, closePools, ok := openReadOnlyPools(cfg, stderr)
	if !ok {
		return exitUsage
	}
	defer closePools()
	// Green too, for the initial sync's progress: without it the lag alone
	// says "0 behind" while tables are still copying.
	mon := monitor.NewMonitor(blue, green, cfg)
	ctx, cancel := signalContext()
	defer cancel()
	for {
		s, err := monitor.ReadBothLags(ctx, blue, green, cfg.Timeouts.Connect.Duration+cfg.Timeouts.Statement.Duration)
		if err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			fmt.Fprintf(stderr, "pgbluegreen: blue unreachable: %s\n", state.Redact(err.Error()))
			return exitFailed
		}
		doc := lagDoc{LagSample: s}
		if p, err := mon.SyncProgress(ctx); err == nil {
			doc.Sync = &p
		}
		if *asJSON {
			_ = json.NewEncoder(stdout).Encode(doc)
		} else {
			writeLag(stdout, s)
			if doc.Sync != nil && doc.Sync.Phase != "not started" {
				fmt.Fprintf(stdout, "\t%s\n", doc.Sync.Line())
			}
		}
		if *once {
			return exitOK
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(cfg.Lag.Interval.Duration):
		}
	}
}

// lagDoc is one `lag --json` document: the slots, and the initial sync's
// progress when green answers (phase, tables and bytes against the total,
// rate, ETA, lag in bytes and time, table-sync slots per subscription).
type lagDoc struct {
	pg.LagSample
	Sync *monitor.SyncProgress `json:"sync,omitempty"`
}

func writeLag(w io.Writer, s pg.LagSample) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tSLOT\tDIRECTION\tACTIVE\tBEHIND\tLAG_S\tRETAINED\tWAL_STATUS\tSAFE_WAL\n", s.At.Local().Format("15:04:05"))
	if len(s.Slots) == 0 {
		fmt.Fprintln(tw, "\t(no logical slots on blue or green)")
	}
	for _, sl := range s.Slots {
		lag, safe := "-", "unlimited"
		if sl.LagSeconds != nil {
			lag = fmt.Sprintf("%.2f", *sl.LagSeconds)
		}
		if sl.SafeWALBytes >= 0 {
			safe = fmt.Sprint(sl.SafeWALBytes)
		}
		fmt.Fprintf(tw, "\t%s\t%s\t%t\t%d\t%s\t%d\t%s\t%s\n", sl.Slot, sl.Direction, sl.Active, sl.BehindBytes, lag, sl.RetainedBytes, sl.WALStatus, safe)
	}
	tw.Flush()
}

// runDemo brings the local lab up (fetching builds first when missing is
// `make demo`'s job) and opens the program on it. It stops what it started
// when it ends, Ctrl+C included.
func runDemo(g globals, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", "demo [--dir DIR] [--strategy copy|clone] [--keep]", stderr)
	dir := fs.String("dir", "lab", "the lab's folder")
	strategy := fs.String("strategy", "copy", "copy or clone")
	keep := fs.Bool("keep", false, "leave the lab running when the program ends")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: %v\n", err)
		return exitUsage
	}
	ctx, cancel := signalContext()
	defer cancel()
	wasUp := labRunning(ctx, abs)
	info, err := lab.Up(ctx, lab.UpParams{Dir: abs, Strategy: *strategy, Log: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: lab up: %s\n", state.Redact(err.Error()))
		if !wasUp {
			_ = lab.Down(context.Background(), abs, false, io.Discard)
		}
		return exitFailed
	}
	if !wasUp && !*keep {
		defer func() {
			fmt.Fprintf(stderr, "stopping the lab (it was started by this demo; --keep leaves it running)\n")
			_ = lab.Down(context.Background(), abs, false, stderr)
		}()
	}
	g.config = info.Config
	if g.state == "" || g.state == filepath.Join(".", "pgbluegreen.state.json") {
		g.state = filepath.Join(abs, "pgbluegreen.state.json")
	}
	if ctx.Err() != nil {
		return exitFailed
	}
	return runScreen(g, stdout, stderr)
}

// labRunning reports whether every component of the lab in dir already runs.
func labRunning(ctx context.Context, dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "lab.json")); err != nil {
		return false
	}
	st, err := lab.Status(ctx, dir)
	if err != nil || len(st) == 0 {
		return false
	}
	for _, c := range st {
		if !c.Running {
			return false
		}
	}
	return true
}
