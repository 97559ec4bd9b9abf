package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The cutover methods.
const (
	MethodPgBouncer = "pgbouncer"
	MethodNologin   = "nologin"
	MethodReadonly  = "readonly"
)

// DefaultReverseName names the publication, slot and subscription of the
// reverse replication (green -> blue) that the cutover creates.
const DefaultReverseName = "pgbg_reverse"

// BouncerParams is one PgBouncer in front of the database.
type BouncerParams struct {
	Name          string
	AdminConninfo string
	Ini           string
	// Database is the database entry PgBouncer serves (and the cutover repoints).
	Database string
	// ClientConninfo connects through PgBouncer as an application would: the
	// version check and the probes go through it.
	ClientConninfo string
}

// CutoverParams are the inputs of Cutover and Rollback. Blue and Green keep
// their names in both directions: Rollback moves from Green back to Blue.
type CutoverParams struct {
	Method string
	// Blue and Green are pools with a role that can manage replication,
	// roles and sessions (a superuser, or rds_superuser on RDS).
	Blue, Green *pgxpool.Pool
	// BlueEndpoint and GreenEndpoint are where PgBouncer's database entry
	// points for each side; the pgbouncer method checks SHOW DATABASES
	// against them.
	BlueEndpoint, GreenEndpoint Endpoint
	Bouncers                    []BouncerParams

	// Subscriptions are the forward subscriptions on green; each one's slot
	// on blue has the same name (the catalog's rule).
	Subscriptions []string
	// Reverse names the reverse publication, slot and subscription
	// (default DefaultReverseName).
	Reverse string
	// ReplicationRole and ReplicationPassword are what blue's reverse
	// subscription logs in to green as. The password goes only into the
	// CREATE SUBSCRIPTION statement, sent with statement logging off and
	// outside the query tracer.
	ReplicationRole     string
	ReplicationPassword string
	// GreenForBlue is how blue reaches green (host, port, dbname), when it
	// differs from GreenEndpoint; BlueForGreen likewise for rollback.
	GreenForBlue, BlueForGreen *Endpoint

	// AppRoles are the application roles (nologin blocks them; every method
	// gives them LOGIN on the side that takes the traffic).
	AppRoles []string

	MaxLagBytes    int64
	DrainTimeout   time.Duration
	SequenceMargin int64
	// StatementTimeout bounds each statement (default 5s).
	StatementTimeout time.Duration
	// ProbeInterval is the stall probe's period (default 10ms); < 0: no probe.
	ProbeInterval time.Duration

	// OnSubStep is told of every sub-step once it ends, off the critical
	// path (a journal write never lengthens the pause).
	OnSubStep func(SubStep)
	// OnPrecheck is told of every precheck as it ends. Prechecks run before
	// anything is paused, so it is called inline.
	OnPrecheck func(Check)
}

// SubStep is one timed part of a cutover or rollback.
type SubStep struct {
	Name      string        `json:"name"`
	Target    string        `json:"target"`
	StartedAt time.Time     `json:"started_at"`
	Duration  time.Duration `json:"duration_ns"`
	Detail    string        `json:"detail,omitempty"`
	Error     string        `json:"error,omitempty"`
}

// Check is one precheck's outcome.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report is what a cutover or rollback did, written as JSON and Markdown.
type Report struct {
	Direction  string     `json:"direction"` // "cutover" or "rollback"
	Method     string     `json:"method"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt time.Time  `json:"finished_at"`
	Prechecks  []Check    `json:"prechecks"`
	SubSteps   []SubStep  `json:"sub_steps"`
	LagAtPause int64      `json:"lag_at_pause_bytes"`
	DrainLSN   string     `json:"drain_lsn,omitempty"`
	Sequences  int        `json:"sequences_synced"`
	SeqMissing []string   `json:"sequences_missing,omitempty"`
	SeqSyncMs  float64    `json:"sequence_sync_ms"`
	PausedMs   float64    `json:"paused_ms"`
	Probe      ProbeStats `json:"probe"`
	TotalMs    float64    `json:"total_ms"`
	// FinalTarget is where traffic goes at the end (the pgbouncer method:
	// PgBouncer's effective target; others: the side that takes writes).
	FinalTarget  string `json:"final_target"`
	FinalVersion string `json:"final_version,omitempty"`
	// Aborted means a failure came before the switch and everything was put
	// back; Error says what failed.
	Aborted bool   `json:"aborted"`
	Error   string `json:"error,omitempty"`
	// Warnings are problems after the switch that did not undo it.
	Warnings []string `json:"warnings,omitempty"`

	mu sync.Mutex
}

// PrecheckError is a failed precheck: nothing was touched.
type PrecheckError struct{ Failed []Check }

func (e *PrecheckError) Error() string {
	var parts []string
	for _, c := range e.Failed {
		parts = append(parts, c.Name+": "+c.Detail)
	}
	return "precheck failed, nothing was changed: " + strings.Join(parts, "; ")
}

// AbortError is a cutover stopped before the switch and put back.
type AbortError struct {
	Err error
	// RestoreErr is set when putting things back failed too: read it first.
	RestoreErr error
}

func (e *AbortError) Error() string {
	if e.RestoreErr != nil {
		return fmt.Sprintf("aborted (%v) and restoring failed: %v; check PgBouncer and the replication by hand", e.Err, e.RestoreErr)
	}
	return fmt.Sprintf("aborted, everything put back as it was: %v", e.Err)
}

func (e *AbortError) Unwrap() error { return e.Err }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// WriteFiles writes the report as base+".json" and base+".md".
func (r *Report) WriteFiles(base string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	if err := os.WriteFile(base+".md", []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}

// Markdown renders the report for people.
func (r *Report) Markdown() string {
	var b strings.Builder
	outcome := "done"
	if r.Aborted {
		outcome = "aborted, nothing changed"
	} else if r.Error != "" {
		outcome = "failed"
	}
	fmt.Fprintf(&b, "# %s (%s): %s\n\n", r.Direction, r.Method, outcome)
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| started | %s |\n| total | %.1f ms |\n", r.StartedAt.UTC().Format(time.RFC3339), r.TotalMs)
	fmt.Fprintf(&b, "| writes paused | %.1f ms |\n| longest probe stall | %.1f ms (%d probes, %d errors) |\n", r.PausedMs, r.Probe.MaxStallMs, r.Probe.Samples, r.Probe.Errors)
	fmt.Fprintf(&b, "| lag at pause | %d bytes |\n| drain LSN | %s |\n", r.LagAtPause, r.DrainLSN)
	fmt.Fprintf(&b, "| sequences synced | %d in %.1f ms |\n", r.Sequences, r.SeqSyncMs)
	fmt.Fprintf(&b, "| final target | %s |\n", r.FinalTarget)
	if r.Error != "" {
		fmt.Fprintf(&b, "| error | %s |\n", strings.ReplaceAll(r.Error, "|", `\|`))
	}
	if len(r.SeqMissing) > 0 {
		fmt.Fprintf(&b, "| sequences missing on the target | %s |\n", strings.Join(r.SeqMissing, ", "))
	}
	b.WriteString("\n## Prechecks\n\n| check | ok | detail |\n|---|---|---|\n")
	for _, c := range r.Prechecks {
		ok := "yes"
		if !c.OK {
			ok = "**NO**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Name, ok, strings.ReplaceAll(c.Detail, "|", `\|`))
	}
	b.WriteString("\n## Sub-steps\n\n| sub-step | target | ms | detail |\n|---|---|---:|---|\n")
	for _, s := range r.SubSteps {
		d := s.Detail
		if s.Error != "" {
			d = "**failed**: " + s.Error
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %s |\n", s.Name, s.Target, ms(s.Duration), strings.ReplaceAll(d, "|", `\|`))
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "\n> warning: %s\n", w)
	}
	return b.String()
}

// journal feeds OnSubStep from its own goroutine, so a slow journal never
// lengthens the pause.
type journal struct {
	ch   chan SubStep
	done chan struct{}
}

func newJournal(f func(SubStep)) *journal {
	j := &journal{ch: make(chan SubStep, 256), done: make(chan struct{})}
	go func() {
		defer close(j.done)
		for s := range j.ch {
			if f != nil {
				f(s)
			}
		}
	}()
	return j
}

func (j *journal) close() { close(j.ch); <-j.done }

// run is one cutover or rollback in progress.
type run struct {
	p   *CutoverParams
	rep *Report
	j   *journal
}

// step runs f as one timed sub-step and records it.
func (r *run) step(ctx context.Context, name, target string, f func(ctx context.Context) (string, error)) error {
	start := time.Now()
	detail, err := f(ctx)
	s := SubStep{Name: name, Target: target, StartedAt: start, Duration: time.Since(start), Detail: detail}
	if err != nil {
		s.Error = err.Error()
	}
	r.rep.mu.Lock()
	r.rep.SubSteps = append(r.rep.SubSteps, s)
	r.rep.mu.Unlock()
	r.j.ch <- s
	return err
}

// timeout bounds one statement.
func (r *run) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.p.StatementTimeout)
}

func (p *CutoverParams) defaults() {
	if p.Reverse == "" {
		p.Reverse = DefaultReverseName
	}
	if p.StatementTimeout <= 0 {
		p.StatementTimeout = 5 * time.Second
	}
	if p.DrainTimeout <= 0 {
		p.DrainTimeout = 10 * time.Second
	}
	if p.ProbeInterval == 0 {
		p.ProbeInterval = 10 * time.Millisecond
	}
	if p.ReplicationRole == "" {
		p.ReplicationRole = "pgbg_repl"
	}
}

// side is one direction's source and target.
type side struct {
	name     string // "blue" or "green"
	pool     *pgxpool.Pool
	endpoint Endpoint
}

// direction is what moves where: writes stop on from, the feed from -> to
// is drained and stopped, the feed to -> from is started.
type direction struct {
	name     string // "cutover" or "rollback"
	from, to side
}

func (p *CutoverParams) direction(rollback bool) direction {
	blue := side{"blue", p.Blue, p.BlueEndpoint}
	green := side{"green", p.Green, p.GreenEndpoint}
	if rollback {
		return direction{"rollback", green, blue}
	}
	return direction{"cutover", blue, green}
}
