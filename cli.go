package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// newFlags makes a flag set whose errors and help go to stderr in one piece.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pgbluegreen %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses and maps -h and bad flags to exit codes.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// parseMixed parses flags that may stand before or after the positional
// arguments (`run STEP --yes` and `run --yes STEP`), returning the latter.
func parseMixed(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for len(args) > 0 {
		if code, ok := parseFlags(fs, args); !ok {
			return nil, code, false
		}
		args = fs.Args()
		if len(args) > 0 {
			pos, args = append(pos, args[0]), args[1:]
		}
	}
	return pos, 0, true
}

func runPlan(g globals, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("plan", "plan [--format text|markdown]", stderr)
	format := fs.String("format", "text", "text or markdown (a runbook document with the values table)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, ok := loadConfig(g, stderr)
	if !ok {
		return exitUsage
	}
	var st *state.State
	if store, err := state.Open(g.state, state.OpenParams{ReadOnly: true}); err == nil {
		st = store.Snapshot()
		store.Close()
	}
	if err := steps.WritePlan(stdout, steps.PlanParams{Config: cfg, State: st, Format: *format}); err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: %v\n", err)
		return exitUsage
	}
	return exitOK
}

// statusDoc is the JSON shape of `status --json`.
type statusDoc struct {
	Strategy string `json:"strategy"`
	Config   string `json:"config"`
	State    string `json:"state"`
	Lock     string `json:"lock,omitempty"`
	// Traffic is where writes go, read from the servers now.
	Traffic monitor.Traffic `json:"traffic"`
	// Drift compares blue's and green's schemas now (helper D's, cmd_watch.go).
	Drift    *monitor.Drift  `json:"drift,omitempty"`
	Steps    []statusStep    `json:"steps"`
	Values   []state.Value   `json:"values"`
	Attempts []state.Attempt `json:"attempts"`
}

type statusStep struct {
	state.StepRecord
	Phase       string `json:"phase"`
	Title       string `json:"title"`
	Target      string `json:"target"`
	Destructive bool   `json:"destructive"`
}

func runStatus(g globals, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "status [--json]", stderr)
	asJSON := fs.Bool("json", false, "one JSON document on stdout")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, ok := loadConfig(g, stderr)
	if !ok {
		return exitUsage
	}
	store, err := state.Open(g.state, state.OpenParams{ReadOnly: true})
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
		return exitFailed
	}
	st := store.Snapshot()
	store.Close()
	doc := statusDoc{Strategy: cfg.Strategy, Config: cfg.Path, State: g.state, Attempts: st.Attempts, Traffic: readTraffic(cfg), Drift: readDrift(cfg)}
	if doc.Attempts == nil {
		doc.Attempts = []state.Attempt{}
	}
	if h, held := state.ReadHolder(g.state); held {
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
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			return exitFailed
		}
		return exitOK
	}
	writeStatusText(stdout, doc)
	return exitOK
}

func withID(r state.StepRecord, id string) state.StepRecord {
	r.ID = id
	if r.Status == "" {
		r.Status = state.Pending
	}
	return r
}

// readTraffic reads where writes go through read-only sessions of their
// own, bounded: `status` answers even with a server down (target unknown).
func readTraffic(cfg *config.Config) monitor.Traffic {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Connect.Duration+5*time.Second)
	defer cancel()
	blue, green, closePools, err := readOnlyPools(cfg)
	if err != nil {
		return monitor.Traffic{Target: "unknown", How: state.Redact(err.Error()), ReadAt: time.Now().UTC()}
	}
	defer closePools()
	return monitor.ReadTraffic(ctx, cfg, blue, green)
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

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

func runRun(g globals, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", "run STEP [--dry-run] [--yes] [--force REASON] [--again REASON] | run --through STEP [--yes] | run cutover|rollback --check [--measure-pause --yes] | run cutover|rollback --finish|--undo --yes", stderr)
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
	s, code := openSession(g, *dry, stderr)
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

func runSkip(g globals, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("skip", "skip STEP --reason TEXT", stderr)
	reason := fs.String("reason", "", "why the step is skipped (journaled)")
	pos, code, ok := parseMixed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || *reason == "" {
		fmt.Fprintln(stderr, "pgbluegreen: skip needs one STEP and --reason TEXT")
		return exitUsage
	}
	s, code := openSession(g, false, stderr)
	if s == nil {
		return code
	}
	defer s.close()
	if err := s.runner().Skip(pos[0], *reason); err != nil {
		return exitFor(err, stderr)
	}
	fmt.Fprintf(stdout, "%s: skipped\n", pos[0])
	return exitOK
}

// runValue is `value set KEY VALUE --reason TEXT`: an operator's value,
// checked against its key's type and journaled with the reason.
func runValue(g globals, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("value", "value set KEY VALUE --reason TEXT", stderr)
	reason := fs.String("reason", "", "why the value is set by hand (journaled)")
	pos, code, ok := parseMixed(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 3 || pos[0] != "set" || *reason == "" {
		fmt.Fprintln(stderr, "pgbluegreen: value needs: set KEY VALUE --reason TEXT (`pgbluegreen status` lists the values)")
		return exitUsage
	}
	key, value := pos[1], pos[2]
	if err := steps.ValidateValue(key, value); err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
		return exitUsage
	}
	cfg, ok := loadConfig(g, stderr)
	if !ok {
		return exitUsage
	}
	store, j, ok := openStateJournal(g, false, stderr)
	if !ok {
		return exitFailed
	}
	defer store.Close()
	defer j.Close()
	if err := steps.NewRunner(cfg, store, j).SetValue(key, value, *reason); err != nil {
		return exitFor(err, stderr)
	}
	fmt.Fprintf(stdout, "%s = %s (journaled: %s)\n", key, value, *reason)
	return exitOK
}

// openStateJournal opens the state file (read-only: without its lock) and
// the journal beside it; a problem is printed and ok is false.
func openStateJournal(g globals, readOnly bool, stderr io.Writer) (store *state.Store, j *state.Journal, ok bool) {
	store, err := state.Open(g.state, state.OpenParams{ReadOnly: readOnly})
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
		return nil, nil, false
	}
	if j, err = state.OpenJournal(journalPath(g.state)); err != nil {
		store.Close()
		fmt.Fprintf(stderr, "pgbluegreen: %v\n", err)
		return nil, nil, false
	}
	return store, j, true
}
