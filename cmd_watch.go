package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
)

// readDrift compares blue's and green's schemas for `status`, through
// read-only sessions of its own, bounded; nil when a server cannot be
// read (status still answers).
func readDrift(cfg *steps.Config) *steps.Drift {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Connect.Duration+cfg.Timeouts.Statement.Duration)
	defer cancel()
	blue, green, closePools, err := readOnlyPools(cfg)
	if err != nil {
		return &steps.Drift{At: time.Now().UTC(), Why: state.Redact(err.Error()), Differences: []string{}}
	}
	defer closePools()
	d, err := steps.ReadDrift(ctx, cfg, blue, green)
	if err != nil {
		d.Why = "not compared: " + state.Redact(err.Error())
	}
	return &d
}

// writeDriftText is status's line about schema drift.
func writeDriftText(w io.Writer, d *steps.Drift) {
	switch {
	case d == nil:
	case d.Drifted():
		fmt.Fprintf(w, "⚠ SCHEMA DRIFT: %d object(s) differ; the cutover refuses until they match:\n", len(d.Differences))
		for _, l := range d.Differences {
			fmt.Fprintf(w, "  %s\n", l)
		}
	case d.Compared:
		fmt.Fprintf(w, "schemas: blue and green match (%d objects in %v)\n", d.Objects, d.Schemas)
	case d.Why != "":
		fmt.Fprintf(w, "schemas: %s\n", d.Why)
	}
}
