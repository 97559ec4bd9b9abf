package main

import (
	"fmt"

	"github.com/pgbluegreen/pgbluegreen/steps"
)

// run runs one step, or every pending step up to one, without the screen,
// its output on stdout a line at a time.
var runCommand = command{name: "run", run: runRun,
	synopsis: "run STEP [--dry-run] [--yes] [--force REASON] [--again REASON] | run --through STEP [--yes] | run cutover|rollback --check [--measure-pause --yes] | run cutover|rollback --finish|--undo --yes"}

func runRun(c *call, args []string) int {
	fs := c.flags()
	dry := fs.Bool("dry-run", false, "print what the step would do; run nothing")
	yes := fs.Bool("yes", false, "confirm destructive steps")
	through := fs.String("through", "", "run every pending step in order up to and including this one")
	force := fs.String("force", "", "run even though earlier steps are not done or values are missing; the reason is journaled")
	again := fs.String("again", "", "run a done step once more on purpose, when it allows it; the reason is journaled")
	finish := fs.Bool("finish", false, "cutover or rollback stopped half way: finish it forward")
	undo := fs.Bool("undo", false, "cutover or rollback stopped half way: undo it back")
	check := fs.Bool("check", false, "cutover or rollback: run every live precheck, change nothing")
	measure := fs.Bool("measure-pause", false, "with --check: one bare PAUSE/RESUME of each PgBouncer, timed")
	pos, code, ok := parseMixed(fs, args)
	if !ok {
		return code
	}
	stderr, stdout := c.stderr, c.stdout
	if (*through == "") == (len(pos) != 1) {
		fmt.Fprintln(stderr, "pgbluegreen: run needs one STEP, or --through STEP (`pgbluegreen plan` lists the steps)")
		return exitUsage
	}
	if *through != "" && *dry {
		fmt.Fprintln(stderr, "pgbluegreen: --dry-run goes with one STEP; `pgbluegreen plan` shows them all")
		return exitUsage
	}
	way := ""
	switch {
	case *finish && *undo:
		fmt.Fprintln(stderr, "pgbluegreen: --finish and --undo are the two ways out: choose one")
		return exitUsage
	case *finish:
		way = "finish"
	case *undo:
		way = "undo"
	}
	if (way != "" || *check) && (*through != "" || len(pos) != 1 || (pos[0] != "cutover" && pos[0] != "rollback")) {
		fmt.Fprintln(stderr, "pgbluegreen: --check, --finish and --undo go with `run cutover` or `run rollback`")
		return exitUsage
	}
	if *measure && !*check {
		fmt.Fprintln(stderr, "pgbluegreen: --measure-pause goes with --check")
		return exitUsage
	}
	// A dry run reads: the state without its lock, no journal, read-only
	// sessions.
	n := needs{state: writeState, journal: true, pools: stepPools}
	if *dry {
		n.state, n.journal = readState, false
	}
	s, code := c.open(n)
	if s == nil {
		return code
	}
	defer s.close()
	r := s.runner()
	lines := make(chan steps.Line)
	done := make(chan struct{})
	go func() {
		for l := range lines {
			fmt.Fprintf(stdout, "%s %-22s %s\n", l.Time.Local().Format("15:04:05"), l.Step, l.Text)
		}
		close(done)
	}()
	r.Out = lines
	ctx, cancel := signalContext()
	defer cancel()
	p := steps.RunParams{DryRun: *dry, Confirmed: *yes, Override: *force, Again: *again, Way: way, Check: *check, MeasurePause: *measure}
	var err error
	var out steps.Outcome
	if *through != "" {
		err = r.Through(ctx, *through, p)
	} else {
		out, err = r.Run(ctx, pos[0], p)
	}
	close(lines)
	<-done // the printer owns stdout until then
	if *through == "" && err == nil && out != steps.OutcomeDryRun {
		fmt.Fprintf(stdout, "%s: %s\n", pos[0], out)
		if out == steps.OutcomeAlreadyDone {
			fmt.Fprintf(stdout, "(to run it again on purpose, when the step allows it: pgbluegreen run %s --again REASON)\n", pos[0])
		}
	}
	return exitFor(err, stderr)
}
