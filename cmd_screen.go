package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// runScreen opens the program on the configuration. Until the full-screen
// program lands (issue #5) it prints the plan and the status.
func runScreen(g globals, stdout, stderr io.Writer) int {
	if code := runStatus(g, nil, stdout, stderr); code != exitOK {
		return code
	}
	fmt.Fprintln(stdout)
	return runPlan(g, nil, stdout, stderr)
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
	pool, err := pg.NewPool(pg.PoolParams{Conninfo: cfg.Blue.Conninfo, ConnectTimeout: cfg.Timeouts.Connect.Duration, MaxConns: 1})
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: blue: %s\n", state.Redact(err.Error()))
		return exitUsage
	}
	defer pool.Close()
	ctx, cancel := signalContext()
	defer cancel()
	for {
		s, err := pg.ReadLag(ctx, pool, cfg.Timeouts.Connect.Duration+cfg.Timeouts.Statement.Duration)
		if err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			fmt.Fprintf(stderr, "pgbluegreen: blue unreachable: %s\n", state.Redact(err.Error()))
			return exitFailed
		}
		if *asJSON {
			_ = json.NewEncoder(stdout).Encode(s)
		} else {
			writeLag(stdout, s)
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

func writeLag(w io.Writer, s pg.LagSample) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tSLOT\tACTIVE\tBEHIND\tRETAINED\tWAL_STATUS\n", s.At.Local().Format("15:04:05"))
	if len(s.Slots) == 0 {
		fmt.Fprintln(tw, "\t(no logical slots on blue)")
	}
	for _, sl := range s.Slots {
		fmt.Fprintf(tw, "\t%s\t%t\t%d\t%d\t%s\n", sl.Slot, sl.Active, sl.BehindBytes, sl.RetainedBytes, sl.WALStatus)
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
