package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// demo brings the local lab up (fetching builds first when missing is
// `make demo`'s job) and opens the program on it. It stops what it started
// when it ends, Ctrl+C included.
var demoCommand = command{name: "demo", synopsis: "demo [--dir DIR] [--strategy copy|clone] [--keep]", run: runDemo}

func runDemo(c *call, args []string) int {
	fs := c.flags()
	dir := fs.String("dir", "lab", "the lab's folder")
	strategy := fs.String("strategy", "copy", "copy or clone")
	keep := fs.Bool("keep", false, "leave the lab running when the program ends")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	stderr := c.stderr
	// Refused before the lab starts: nothing to stop afterwards.
	if refuseScreen(c, "the demo's screen", fmt.Sprintf("`pgbluegreen lab up --dir %s`, then `pgbluegreen status --config %s`", *dir, filepath.Join(*dir, "pgbluegreen.yaml"))) {
		return exitUsage
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
	on := *c
	on.g.config = info.Config
	if on.g.state == "" || on.g.state == filepath.Join(".", "pgbluegreen.state.json") {
		on.g.state = filepath.Join(abs, "pgbluegreen.state.json")
	}
	if ctx.Err() != nil {
		return exitFailed
	}
	return runScreen(&on)
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
