package cutover

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// Report is what a cutover, a rollback or a way out did, written as JSON
// and Markdown. Its top-level figures are the whole attempt's (the
// largest lag, every sequence); Databases has each database's.
type Report struct {
	// Direction is "cutover" or "rollback"; Way is "" for an attempt, or
	// "finish" / "undo" for a way out of an interrupted one.
	Direction  string    `json:"direction"`
	Way        string    `json:"way,omitempty"`
	Method     string    `json:"method"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Outcome    string    `json:"outcome"`
	Prechecks  []Check   `json:"prechecks"`
	SubSteps   []SubStep `json:"sub_steps"`
	LagAtPause int64     `json:"lag_at_pause_bytes"`
	DrainLSN   string    `json:"drain_lsn,omitempty"`
	Sequences  int       `json:"sequences_synced"`
	SeqMissing []string  `json:"sequences_missing,omitempty"`
	SeqSyncMs  float64   `json:"sequence_sync_ms"`
	PausedMs   float64   `json:"paused_ms"`
	// PauseBudgetMs is what the pause was allowed (Params.PauseBudget).
	PauseBudgetMs float64       `json:"pause_budget_ms,omitempty"`
	Probe         pg.ProbeStats `json:"probe"`
	TotalMs       float64       `json:"total_ms"`
	// FinalTarget is where traffic goes at the end (the pgbouncer method:
	// PgBouncer's effective target; others: the side that takes writes);
	// "" when it could not be established.
	FinalTarget  string `json:"final_target"`
	FinalVersion string `json:"final_version,omitempty"`
	// FenceRoles are the roles the fence closes the moved databases to on
	// the side left behind; FenceSpared those it was given but never
	// touches (superusers, pgbluegreen's own role, administrators), each
	// with why.
	FenceRoles  []string `json:"fence_roles,omitempty"`
	FenceSpared []string `json:"fence_spared,omitempty"`
	// Fences are the fences in force at the end: what each side's fence
	// took, for the next run to give back (Params.Fences).
	Fences Fences `json:"fences,omitempty"`
	// ErrorCount is the forward feeds' apply and sync errors counted at the
	// precheck (for the caller's Health record).
	ErrorCount int64 `json:"error_count"`
	// Aborted means a failure came before the switch and everything was put
	// back; Error says what failed.
	Aborted bool   `json:"aborted"`
	Error   string `json:"error,omitempty"`
	// Warnings are problems that did not stop the run: after the switch,
	// or an undo's ini that could not be put back while its PgBouncer
	// already served the source.
	Warnings []string `json:"warnings,omitempty"`
	// Bouncers are each PgBouncer's own times (the pgbouncer method).
	Bouncers []BouncerTimes `json:"pgbouncers,omitempty"`
	// Databases are each moved database's part, in Params' order.
	Databases []DatabaseReport `json:"databases,omitempty"`

	mu sync.Mutex
}

// DatabaseReport is one database's part of a cutover: its drain to the
// attempt's one WAL position (the lag when writes stopped, how long its
// apply took to pass the target), its sequences and its reverse feed.
type DatabaseReport struct {
	Name          string   `json:"name"`
	Subscriptions []string `json:"subscriptions"`
	Reverse       string   `json:"reverse"`
	LagAtPause    int64    `json:"lag_at_pause_bytes"`
	DrainMs       float64  `json:"drain_ms"`
	Sequences     int      `json:"sequences_synced"`
	SeqMissing    []string `json:"sequences_missing,omitempty"`
	SeqSyncMs     float64  `json:"sequence_sync_ms"`
	// ReverseFeed says what became of the feed back: prepared, where it
	// starts, enabled, dropped.
	ReverseFeed string `json:"reverse_feed,omitempty"`
	// LargeObjectsCopied counts the large objects copied, before and
	// inside the pause; LargeObjectsAfter is the target's reading once
	// they matched, writes stopped (pg.LargeObjectsDigest.String): the
	// next direction's Database.LargeObjects.
	LargeObjectsCopied int    `json:"large_objects_copied"`
	LargeObjectsAfter  string `json:"large_objects_after,omitempty"`
}

// BouncerTimes are one PgBouncer's part of a cutover: how its ini is
// reached, the entries it moves, and how long its PAUSE (until no server
// connection was busy), its repoint (ini change, read back, RELOAD,
// WAIT_CLOSE) and its RESUME took; StallMs is the longest wait of a
// probe client writing through it.
type BouncerTimes struct {
	Name      string   `json:"name"`
	Method    string   `json:"ini_method"`
	Ini       string   `json:"ini"`
	Entries   []string `json:"entries,omitempty"`
	PauseMs   float64  `json:"pause_ms"`
	RepointMs float64  `json:"repoint_ms"`
	ResumeMs  float64  `json:"resume_ms"`
	StallMs   float64  `json:"probe_stall_ms"`
}

// warn adds a warning; sub-steps running together may call it.
func (r *Report) warn(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// bouncerTime records d as one PgBouncer's pause, repoint or resume time
// (the longest, when a way out repeats one, or its entries run at once).
func (r *Report) bouncerTime(name, what string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.Bouncers {
		b := &r.Bouncers[k]
		if b.Name != name {
			continue
		}
		switch what {
		case "pause":
			b.PauseMs = max(b.PauseMs, ms(d))
		case "repoint":
			b.RepointMs = max(b.RepointMs, ms(d))
		case "resume":
			b.ResumeMs = max(b.ResumeMs, ms(d))
		}
	}
}

// sumDatabases sets the whole attempt's figures from the databases': the
// largest lag at pause, every sequence, the slowest sequence sync (they
// run at once), the missing sequences named by database when there are
// several.
func (r *Report) sumDatabases() {
	if len(r.Databases) == 0 {
		return
	}
	var lag int64
	var seqs int
	var seqMs float64
	var missing []string
	for _, d := range r.Databases {
		lag, seqs, seqMs = max(lag, d.LagAtPause), seqs+d.Sequences, max(seqMs, d.SeqSyncMs)
		for _, m := range d.SeqMissing {
			if len(r.Databases) > 1 {
				m = d.Name + ": " + m
			}
			missing = append(missing, m)
		}
	}
	r.LagAtPause, r.Sequences, r.SeqSyncMs, r.SeqMissing = lag, seqs, seqMs, missing
}

// WriteFiles writes the report as base+".json" and base+".md", each
// atomically.
func (r *Report) WriteFiles(base string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	if err := state.WriteFileAtomic(base+".json", append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	if err := state.WriteFileAtomic(base+".md", []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Markdown renders the report for people.
func (r *Report) Markdown() string {
	var b strings.Builder
	title := r.Direction
	if r.Way != "" {
		title += " (" + r.Way + ")"
	}
	fmt.Fprintf(&b, "# %s (%s): %s\n\n", title, r.Method, r.Outcome)
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| started | %s |\n| total | %.1f ms |\n", r.StartedAt.UTC().Format(time.RFC3339), r.TotalMs)
	if r.PauseBudgetMs > 0 {
		fmt.Fprintf(&b, "| pause budget | %.0f ms (%.0f%% used) |\n", r.PauseBudgetMs, 100*r.PausedMs/r.PauseBudgetMs)
	}
	fmt.Fprintf(&b, "| writes paused | %.1f ms |\n| longest probe stall | %.1f ms (%d probes, %d errors) |\n", r.PausedMs, r.Probe.MaxStallMs, r.Probe.Samples, r.Probe.Errors)
	fmt.Fprintf(&b, "| lag at pause | %d bytes |\n| drain LSN | %s |\n", r.LagAtPause, r.DrainLSN)
	fmt.Fprintf(&b, "| sequences synced | %d in %.1f ms |\n", r.Sequences, r.SeqSyncMs)
	fmt.Fprintf(&b, "| final target | %s |\n", r.FinalTarget)
	if len(r.FenceRoles) > 0 {
		fmt.Fprintf(&b, "| fenced roles | %s |\n", strings.Join(r.FenceRoles, ", "))
	}
	if len(r.FenceSpared) > 0 {
		fmt.Fprintf(&b, "| never fenced | %s |\n", cell(strings.Join(r.FenceSpared, ", ")))
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "| error | %s |\n", cell(r.Error))
	}
	if len(r.SeqMissing) > 0 {
		fmt.Fprintf(&b, "| sequences missing on the target | %s |\n", strings.Join(r.SeqMissing, ", "))
	}
	if len(r.Databases) > 0 {
		b.WriteString("\n## Databases\n\n| database | lag at pause bytes | drain ms | sequences | sequence ms | large objects copied | reverse feed |\n|---|---:|---:|---:|---:|---:|---|\n")
		for _, d := range r.Databases {
			fmt.Fprintf(&b, "| %s | %d | %.1f | %d | %.1f | %d | %s |\n", d.Name, d.LagAtPause, d.DrainMs, d.Sequences, d.SeqSyncMs, d.LargeObjectsCopied, cell(d.Reverse+": "+d.ReverseFeed))
		}
	}
	if len(r.Fences) > 0 {
		b.WriteString("\n## Fences in force\n\n| side | database | what the fence took and gave |\n|---|---|---|\n")
		for _, s := range []string{"blue", "green"} {
			dbs := slices.Sorted(maps.Keys(r.Fences[s]))
			for _, db := range dbs {
				fmt.Fprintf(&b, "| %s | %s | %s |\n", s, db, cell(r.Fences[s][db].String()))
			}
		}
	}
	if len(r.Bouncers) > 0 {
		b.WriteString("\n## PgBouncers\n\n| PgBouncer | ini | entries | pause ms | repoint ms | resume ms | probe stall ms |\n|---|---|---|---:|---:|---:|---:|\n")
		for _, x := range r.Bouncers {
			fmt.Fprintf(&b, "| %s | %s: %s | %s | %.1f | %.1f | %.1f | %.1f |\n", x.Name, x.Method, x.Ini, strings.Join(x.Entries, ", "), x.PauseMs, x.RepointMs, x.ResumeMs, x.StallMs)
		}
	}
	b.WriteString("\n## Prechecks\n\n| check | ok | detail |\n|---|---|---|\n")
	for _, c := range r.Prechecks {
		ok := "yes"
		switch {
		case !c.OK:
			ok = "**NO**"
		case c.Warn:
			ok = "yes (warn)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Name, ok, cell(c.Detail))
	}
	b.WriteString("\n## Sub-steps\n\n| sub-step | target | ms | detail |\n|---|---|---:|---|\n")
	for _, s := range r.SubSteps {
		d := s.Detail
		if s.Error != "" {
			d = "**failed**: " + s.Error
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %s |\n", s.Name, s.Target, ms(s.Duration), cell(d))
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "\n> warning: %s\n", w)
	}
	return b.String()
}
