package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// lag prints the lag of every slot on blue and green, and the initial
// sync's progress, once or every lag.interval.
var lagCommand = command{name: "lag", synopsis: "lag [--once] [--json]", run: runLag}

func runLag(c *call, args []string) int {
	fs := c.flags()
	once := fs.Bool("once", false, "one sample, then exit")
	asJSON := fs.Bool("json", false, "JSON: one document per sample")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	s, code := c.open(needs{pools: readPools})
	if s == nil {
		return code
	}
	defer s.close()
	cfg, blue, green, stdout := s.cfg, s.blue, s.green, c.stdout
	// Green too, for the initial sync's progress: without it the lag alone
	// says "0 behind" while tables are still copying.
	mon := monitor.NewMonitor(blue, green, cfg)
	defer mon.Close()
	ctx, cancel := signalContext()
	defer cancel()
	for {
		sample, err := monitor.ReadBothLags(ctx, blue, green, cfg.Timeouts.Connect.Duration+cfg.Timeouts.Statement.Duration)
		if err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			fmt.Fprintf(c.stderr, "pgbluegreen: blue unreachable: %s\n", state.Redact(err.Error()))
			return exitFailed
		}
		doc := lagDoc{LagSample: sample, Databases: byDatabase(sample)}
		if p, err := mon.SyncProgress(ctx); err == nil {
			doc.Sync = &p
		}
		if *asJSON {
			_ = json.NewEncoder(stdout).Encode(doc)
		} else {
			writeLag(stdout, sample)
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
	// Databases are each database's feeds: its slots and the largest lag
	// among them, per direction.
	Databases []lagDatabase         `json:"databases"`
	Sync      *monitor.SyncProgress `json:"sync,omitempty"`
}

// lagDatabase is one database's part of a lag sample.
type lagDatabase struct {
	Name        string           `json:"name"`
	Slots       []string         `json:"slots"`
	BehindBytes map[string]int64 `json:"behind_bytes"`
}

// byDatabase groups a sample's slots by their database, in order of first
// appearance (the slots are sorted by name).
func byDatabase(s pg.LagSample) []lagDatabase {
	out := []lagDatabase{}
	at := map[string]int{}
	for _, sl := range s.Slots {
		k, ok := at[sl.Database]
		if !ok {
			k = len(out)
			at[sl.Database] = k
			out = append(out, lagDatabase{Name: sl.Database, BehindBytes: map[string]int64{}})
		}
		out[k].Slots = append(out[k].Slots, sl.Slot)
		out[k].BehindBytes[sl.Direction] = max(out[k].BehindBytes[sl.Direction], sl.BehindBytes)
	}
	return out
}

func writeLag(w io.Writer, s pg.LagSample) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tSLOT\tDATABASE\tDIRECTION\tACTIVE\tBEHIND\tLAG_S\tRETAINED\tWAL_STATUS\tSAFE_WAL\n", s.At.Local().Format("15:04:05"))
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
		fmt.Fprintf(tw, "\t%s\t%s\t%s\t%t\t%d\t%s\t%d\t%s\t%s\n", sl.Slot, sl.Database, sl.Direction, sl.Active, sl.BehindBytes, lag, sl.RetainedBytes, sl.WALStatus, safe)
	}
	tw.Flush()
}
