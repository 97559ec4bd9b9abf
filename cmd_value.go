package main

import (
	"fmt"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
)

// value is `value set KEY VALUE --reason TEXT`: an operator's value,
// checked against its key's type and journaled with the reason.
var valueCommand = command{name: "value", synopsis: "value set KEY VALUE --reason TEXT", run: runValue}

func runValue(c *call, args []string) int {
	fs := c.flags()
	reason := fs.String("reason", "", "why the value is set by hand (journaled)")
	pos, code, ok := parseMixed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 3 || pos[0] != "set" || *reason == "" {
		fmt.Fprintln(c.stderr, "pgbluegreen: value needs: set KEY VALUE --reason TEXT (`pgbluegreen status` lists the values)")
		return exitUsage
	}
	key, value := pos[1], pos[2]
	if err := steps.ValidateValue(key, value); err != nil {
		fmt.Fprintf(c.stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
		return exitUsage
	}
	s, code := c.open(needs{state: writeState, journal: true})
	if s == nil {
		return code
	}
	defer s.close()
	if err := s.runner().SetValue(key, value, *reason); err != nil {
		return exitFor(err, c.stderr)
	}
	fmt.Fprintf(c.stdout, "%s = %s (journaled: %s)\n", key, value, *reason)
	return exitOK
}
