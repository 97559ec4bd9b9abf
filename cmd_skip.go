package main

import "fmt"

// skip marks a step skipped, its reason journaled.
var skipCommand = command{name: "skip", synopsis: "skip STEP --reason TEXT", run: runSkip}

func runSkip(c *call, args []string) int {
	fs := c.flags()
	reason := fs.String("reason", "", "why the step is skipped (journaled)")
	pos, code, ok := parseMixed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || *reason == "" {
		fmt.Fprintln(c.stderr, "pgbluegreen: skip needs one STEP and --reason TEXT")
		return exitUsage
	}
	s, code := c.open(needs{state: writeState, journal: true, pools: stepPools})
	if s == nil {
		return code
	}
	defer s.close()
	if err := s.runner().Skip(pos[0], *reason); err != nil {
		return exitFor(err, c.stderr)
	}
	fmt.Fprintf(c.stdout, "%s: skipped\n", pos[0])
	return exitOK
}
