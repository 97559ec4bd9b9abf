package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// status prints the steps with their status, the values, the attempts,
// and where writes go and whether the schemas match, read from the
// servers now.
var statusCommand = command{name: "status", synopsis: "status [--json]", run: runStatus}

// statusDoc is the JSON shape of `status --json`.
type statusDoc struct {
	Strategy string `json:"strategy"`
	Config   string `json:"config"`
	State    string `json:"state"`
	Lock     string `json:"lock,omitempty"`
	// Traffic is where writes go, read from the servers now.
	Traffic monitor.Traffic `json:"traffic"`
	// Drift compares blue's and green's schemas now (helper D's).
	Drift *monitor.Drift `json:"drift,omitempty"`
	// Databases are blue's databases: which move, which stay and why,
	// and each one's feeds with their lag, read now.
	Databases []monitor.DatabaseStatus `json:"databases"`
	Steps     []statusStep             `json:"steps"`
	Values    []state.Value            `json:"values"`
	Attempts  []state.Attempt          `json:"attempts"`
}

type statusStep struct {
	state.StepRecord
	Phase       string `json:"phase"`
	Title       string `json:"title"`
	Target      string `json:"target"`
	Destructive bool   `json:"destructive"`
}

func runStatus(c *call, args []string) int {
	fs := c.flags()
	asJSON := fs.Bool("json", false, "one JSON document on stdout")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	s, code := c.open(needs{state: readState})
	if s == nil {
		return code
	}
	defer s.close()
	cfg, st := s.cfg, s.store.Snapshot()
	doc := statusDoc{Strategy: cfg.Strategy, Config: cfg.Path, State: c.g.state, Attempts: st.Attempts}
	doc.Traffic, doc.Drift, doc.Databases = readServers(cfg)
	if doc.Attempts == nil {
		doc.Attempts = []state.Attempt{}
	}
	if h, held := state.ReadHolder(c.g.state); held {
		doc.Lock = h.String()
	}
	for _, s := range steps.Strategy(cfg.Strategy) {
		doc.Steps = append(doc.Steps, statusStep{StepRecord: withID(st.Step(s.ID), s.ID), Phase: string(s.Phase), Title: s.Title,
			Target: string(s.Target), Destructive: s.Destructive})
	}
	for _, v := range st.Values {
		doc.Values = append(doc.Values, v)
	}
	sort.Slice(doc.Values, func(i, j int) bool { return doc.Values[i].Key < doc.Values[j].Key })
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			return exitFailed
		}
		return exitOK
	}
	writeStatusText(c.stdout, doc)
	return exitOK
}

func withID(r state.StepRecord, id string) state.StepRecord {
	r.ID = id
	if r.Status == "" {
		r.Status = state.Pending
	}
	return r
}

// readServers reads where writes go and compares blue's and green's
// schemas, through read-only sessions of its own, each read bounded:
// `status` answers even with a server down (target unknown, drift not
// compared).
func readServers(cfg *config.Config) (monitor.Traffic, *monitor.Drift, []monitor.DatabaseStatus) {
	blue, green, err := newPools(cfg, pg.PoolParams{MaxConns: 2, ReadOnly: true}, nil)
	if err != nil {
		why := state.Redact(err.Error())
		return monitor.Traffic{Target: "unknown", How: why, ReadAt: time.Now().UTC()},
			&monitor.Drift{At: time.Now().UTC(), Why: why, Differences: []string{}}, []monitor.DatabaseStatus{}
	}
	defer blue.Close()
	defer green.Close()
	return readTraffic(cfg, blue, green), readDrift(cfg, blue, green), readDatabases(cfg, blue, green)
}

// readDatabases reads blue's databases with their fates and feeds; empty
// when blue does not answer (the traffic line says why).
func readDatabases(cfg *config.Config, blue, green *pgxpool.Pool) []monitor.DatabaseStatus {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Connect.Duration+cfg.Timeouts.Statement.Duration)
	defer cancel()
	lag, err := monitor.ReadBothLags(ctx, blue, green, cfg.Timeouts.Connect.Duration+5*time.Second)
	if err != nil {
		return []monitor.DatabaseStatus{}
	}
	dbs, err := monitor.ReadDatabaseStatus(ctx, cfg, blue, lag)
	if err != nil {
		return []monitor.DatabaseStatus{}
	}
	return dbs
}

func readTraffic(cfg *config.Config, blue, green *pgxpool.Pool) monitor.Traffic {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Connect.Duration+5*time.Second)
	defer cancel()
	return monitor.ReadTraffic(ctx, cfg, blue, green)
}

func readDrift(cfg *config.Config, blue, green *pgxpool.Pool) *monitor.Drift {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Connect.Duration+cfg.Timeouts.Statement.Duration)
	defer cancel()
	d, err := readDriftAll(ctx, cfg, blue, green)
	if err != nil {
		d.Why = "not compared: " + state.Redact(err.Error())
	}
	return &d
}

func writeStatusText(w io.Writer, doc statusDoc) {
	fmt.Fprintf(w, "strategy %s   config %s   state %s\n", doc.Strategy, doc.Config, doc.State)
	fmt.Fprintf(w, "traffic: %s (%s)\n", strings.ToUpper(doc.Traffic.Target), doc.Traffic.How)
	for _, warn := range doc.Traffic.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	writeDriftText(w, doc.Drift)
	if doc.Lock != "" {
		fmt.Fprintf(w, "driven by %s\n", doc.Lock)
	}
	if len(doc.Databases) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nDATABASE\tFATE\tSIZE\tSESSIONS\tFEEDS")
		for _, d := range doc.Databases {
			fate := d.Fate
			if d.Reason != "" {
				fate += ": " + d.Reason
			}
			var feeds []string
			for _, f := range d.Feeds {
				feeds = append(feeds, fmt.Sprintf("%s %s %s behind", f.Slot, f.Direction, pg.Bytes(f.BehindBytes)))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", d.Name, oneLine(fate, 60), pg.Bytes(d.SizeBytes), d.Sessions, strings.Join(feeds, "; "))
		}
		tw.Flush()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTEP\tSTATUS\tATTEMPTS\tFINISHED\tRESULT")
	for _, s := range doc.Steps {
		finished := ""
		if s.FinishedAt != nil {
			finished = s.FinishedAt.Local().Format(time.DateTime)
		}
		result := s.Result
		if s.LastError != "" {
			result = "error: " + s.LastError
		}
		if s.Database != "" {
			result = "in database " + s.Database + "; " + result
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", s.ID, s.Status, s.Attempts, finished, oneLine(result, 80))
	}
	tw.Flush()
	if len(doc.Attempts) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nATTEMPT\tSTEP\tWAY\tSTARTED\tOUTCOME\tREPORT\tGUARD")
		for _, a := range doc.Attempts {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.N, a.Step, a.Way, a.StartedAt.Local().Format(time.DateTime), a.Outcome, a.Report, oneLine(a.Guard, 60))
		}
		tw.Flush()
	}
	if len(doc.Values) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nVALUE\tRECORDED\tBY")
		for _, v := range doc.Values {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Key, oneLine(v.Value, 60), v.RecordedBy)
		}
		tw.Flush()
	}
}

// writeDriftText is status's line about schema drift.
func writeDriftText(w io.Writer, d *monitor.Drift) {
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
	switch {
	case d == nil:
	case d.RecorderError != "":
		fmt.Fprintf(w, "DDL recorded on blue: not read: %s\n", d.RecorderError)
	case d.Recording && len(d.Recorded) == 0:
		fmt.Fprintf(w, "DDL recorded on blue: none yet (record-ddl)\n")
	case d.Recording:
		fmt.Fprintf(w, "DDL recorded on blue, newest first (record-ddl):\n")
		for _, l := range d.RecordedLines(time.Local) {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

// readDriftAll compares the schemas of every database that moves.
func readDriftAll(ctx context.Context, cfg *config.Config, blue, green *pgxpool.Pool) (monitor.Drift, error) {
	dbs, closeDBs, err := monitor.OpenDatabases(ctx, cfg, blue, green)
	if err != nil {
		return monitor.Drift{At: time.Now().UTC(), Differences: []string{}}, err
	}
	defer closeDBs()
	return monitor.ReadDriftAll(ctx, cfg, dbs)
}
