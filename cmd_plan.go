package main

import (
	"fmt"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
)

// plan prints the whole runbook with its rendered SQL and runs nothing;
// the values recorded so far fill in what they can.
var planCommand = command{name: "plan", synopsis: "plan [--format text|markdown]", run: runPlan}

func runPlan(c *call, args []string) int {
	fs := c.flags()
	format := fs.String("format", "text", "text or markdown (a runbook document with the values table)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	s, code := c.open(needs{state: stateIfAny})
	if s == nil {
		return code
	}
	defer s.close()
	var st *state.State
	if s.store != nil {
		st = s.store.Snapshot()
	}
	if err := steps.WritePlan(c.stdout, steps.PlanParams{Config: s.cfg, State: st, Format: *format}); err != nil {
		fmt.Fprintf(c.stderr, "pgbluegreen: %v\n", err)
		return exitUsage
	}
	return exitOK
}
