package cutover

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// The two directions, named as the runbook's steps and the reports name them.
const (
	NameCutover  = "cutover"
	NameRollback = "rollback"
)

// The cutover methods.
const (
	MethodPgBouncer = "pgbouncer"
	MethodNologin   = "nologin"
	MethodReadonly  = "readonly"
)

// DefaultReverseName names the publication, slot and subscription of the
// reverse replication (green -> blue) that the cutover creates.
const DefaultReverseName = config.DefaultReverseName

// Params are the inputs of Cutover and Rollback, and of their ways
// out (Finish, Undo). Blue and Green keep their names in both directions:
// Rollback moves from Green back to Blue.
type Params struct {
	Method string
	// Blue and Green are pools with a role that can manage replication,
	// roles and sessions (a superuser, or rds_superuser on RDS).
	Blue, Green *pgxpool.Pool
	// BlueEndpoint and GreenEndpoint are where PgBouncer's database entry
	// points for each side; the pgbouncer method checks SHOW DATABASES
	// against them.
	BlueEndpoint, GreenEndpoint pg.Endpoint
	Bouncers                    []pg.BouncerParams

	// Subscriptions are the forward subscriptions on green; each one's slot
	// on blue has the same name (the catalog's rule).
	Subscriptions []string
	// Reverse names the reverse publication, slot and subscription
	// (default DefaultReverseName).
	Reverse string
	// ReplicationRole and ReplicationPassword are what blue's reverse
	// subscription logs in to green as. The password goes only into the
	// CREATE SUBSCRIPTION statement, as a Secret bind parameter, sent with
	// statement logging off.
	ReplicationRole     string
	ReplicationPassword string
	// GreenForBlue is how blue reaches green (host, port, dbname), when it
	// differs from GreenEndpoint.
	GreenForBlue *pg.Endpoint

	// AppRoles are the configured application roles.
	AppRoles []string
	// FenceRoles are the roles that write: they can log in on the side that
	// takes the traffic and cannot on the other (the fence). nil: AppRoles.
	// The caller finds them with WriterRoles before the first attempt and
	// keeps them, so every way out changes the same roles.
	FenceRoles []string
	// TerminateDirect lets the cutover end the sessions on the source that
	// do not come through the configured PgBouncers (a cron job, an admin's
	// psql); without it such sessions make the precheck refuse.
	TerminateDirect bool

	MaxLagBytes int64
	// DrainTimeout bounds the drain; PauseTimeout each PgBouncer's PAUSE;
	// WayOutLagWait a way out's wait for the feed it starts to come
	// within MaxLagBytes.
	DrainTimeout, PauseTimeout, WayOutLagWait time.Duration
	// HoldCommits, when > 0, holds the source's commits to the target's
	// apply for at most this long before the pause (cutover_hold.go): the
	// lag at PAUSE is then what is in flight. Self-managed servers only
	// (ALTER SYSTEM); 0 leaves it out.
	HoldCommits    time.Duration
	SequenceMargin int64
	// StatementTimeout bounds each statement (timeouts.statement).
	StatementTimeout time.Duration
	// ProbeInterval is the stall probe's period (default 10ms); < 0: no probe.
	ProbeInterval time.Duration

	// Health judges the forward feed's apply errors (see Health).
	Health Health

	// Prior is what the servers looked like before the attempt began (read
	// by the attempt itself; given back for a way out after a crash).
	Prior *Prior

	// Hooks follow the run and take part in it; nil: NoHooks.
	Hooks Hooks
	// Guarded says Hooks.BeforePause starts a guard: the run then has a
	// sub-step of its own for it, right before writes stop.
	Guarded bool
}

// Hooks is how the caller follows a run and takes part in it: one value,
// which embeds NoHooks for what it leaves alone.
type Hooks interface {
	// Prior is told what the servers looked like before anything changes:
	// the caller records it, so a way out after a crash has it. An error
	// ends the run, nothing changed.
	Prior(Prior) error
	// BeforePause runs right before writes stop (the caller starts its
	// guard there); an error aborts, nothing paused yet.
	BeforePause(ctx context.Context) error
	// BeforeSubStep runs before each sub-step, on the caller's context
	// (a test build holds the driver at a named point there).
	BeforeSubStep(ctx context.Context, name string)
	// SubStepDone is told of every sub-step once it ends, off the
	// critical path (a journal write never lengthens the pause).
	SubStepDone(SubStep)
	// PrecheckDone is told of every precheck as it ends. Prechecks run
	// before anything is paused, so it is called inline.
	PrecheckDone(Check)
}

// NoHooks is Hooks that does nothing; embed it to follow only a part.
type NoHooks struct{}

// Prior does nothing.
func (NoHooks) Prior(Prior) error { return nil }

// BeforePause does nothing.
func (NoHooks) BeforePause(context.Context) error { return nil }

// BeforeSubStep does nothing.
func (NoHooks) BeforeSubStep(context.Context, string) {}

// SubStepDone does nothing.
func (NoHooks) SubStepDone(SubStep) {}

// PrecheckDone does nothing.
func (NoHooks) PrecheckDone(Check) {}

// Prior is what a cutover or rollback found before it changed anything:
// what its ways out put back.
type Prior struct {
	// LoginRetry is each PgBouncer's server_login_retry, by name.
	LoginRetry map[string]string `json:"login_retry,omitempty"`
	// TargetReadOnly says the target database was read-only (a readonly
	// cutover made it so): undoing sets it back.
	TargetReadOnly bool `json:"target_read_only,omitempty"`
}

// Health is how the precheck judges the forward feed's apply and sync
// errors: errors counted within Window (seen to grow) refuse; older ones
// only warn. Known and KnownAt are the count the caller saw last, and
// when it first saw it.
type Health struct {
	Window  time.Duration
	Known   int64
	KnownAt time.Time
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
	// Warn marks a passing check with something to say.
	Warn bool `json:"warn,omitempty"`
}

// The outcomes of a report.
const (
	OutcomeDone    = "done"    // writes go to the target
	OutcomeAborted = "aborted" // stopped before the switch, everything put back
	OutcomeRefused = "refused" // a precheck failed, nothing changed
	OutcomeFailed  = "failed"  // stopped, and putting back failed too: read the error
)

// Report is what a cutover, a rollback or a way out did, written as JSON
// and Markdown.
type Report struct {
	// Direction is "cutover" or "rollback"; Way is "" for an attempt, or
	// "finish" / "undo" for a way out of an interrupted one.
	Direction  string        `json:"direction"`
	Way        string        `json:"way,omitempty"`
	Method     string        `json:"method"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt time.Time     `json:"finished_at"`
	Outcome    string        `json:"outcome"`
	Prechecks  []Check       `json:"prechecks"`
	SubSteps   []SubStep     `json:"sub_steps"`
	LagAtPause int64         `json:"lag_at_pause_bytes"`
	DrainLSN   string        `json:"drain_lsn,omitempty"`
	Sequences  int           `json:"sequences_synced"`
	SeqMissing []string      `json:"sequences_missing,omitempty"`
	SeqSyncMs  float64       `json:"sequence_sync_ms"`
	PausedMs   float64       `json:"paused_ms"`
	Probe      pg.ProbeStats `json:"probe"`
	TotalMs    float64       `json:"total_ms"`
	// FinalTarget is where traffic goes at the end (the pgbouncer method:
	// PgBouncer's effective target; others: the side that takes writes);
	// "" when it could not be established.
	FinalTarget  string `json:"final_target"`
	FinalVersion string `json:"final_version,omitempty"`
	// FenceRoles are the roles that lost LOGIN on the side left behind.
	FenceRoles []string `json:"fence_roles,omitempty"`
	// ErrorCount is the forward feed's apply and sync errors counted at the
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

	mu sync.Mutex
}

// BouncerTimes are one PgBouncer's part of a cutover: how its ini is
// reached, and how long its PAUSE (until no server connection was busy),
// its repoint (ini change, read back, RELOAD, WAIT_CLOSE) and its RESUME
// took; StallMs is the longest wait of a probe client writing through it.
type BouncerTimes struct {
	Name      string  `json:"name"`
	Method    string  `json:"ini_method"`
	Ini       string  `json:"ini"`
	PauseMs   float64 `json:"pause_ms"`
	RepointMs float64 `json:"repoint_ms"`
	ResumeMs  float64 `json:"resume_ms"`
	StallMs   float64 `json:"probe_stall_ms"`
}

// bouncerTime records d as one PgBouncer's pause, repoint or resume time
// (the longest, when a way out repeats one).
// warn adds a warning; sub-steps running together may call it.
func (r *Report) warn(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

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

// PrecheckError is a failed precheck: nothing was touched.
type PrecheckError struct{ Failed []Check }

// Error lists the failed checks.
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

// Error says what failed and whether putting back worked.
func (e *AbortError) Error() string {
	if e.RestoreErr != nil {
		return fmt.Sprintf("aborted (%v) and putting back failed: %v; run the way out (undo) again, or check PgBouncer and the replication by hand", e.Err, e.RestoreErr)
	}
	return fmt.Sprintf("aborted, everything put back as it was: %v", e.Err)
}

// Unwrap returns the failure that caused the abort.
func (e *AbortError) Unwrap() error { return e.Err }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

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
	fmt.Fprintf(&b, "| writes paused | %.1f ms |\n| longest probe stall | %.1f ms (%d probes, %d errors) |\n", r.PausedMs, r.Probe.MaxStallMs, r.Probe.Samples, r.Probe.Errors)
	fmt.Fprintf(&b, "| lag at pause | %d bytes |\n| drain LSN | %s |\n", r.LagAtPause, r.DrainLSN)
	fmt.Fprintf(&b, "| sequences synced | %d in %.1f ms |\n", r.Sequences, r.SeqSyncMs)
	fmt.Fprintf(&b, "| final target | %s |\n", r.FinalTarget)
	if len(r.FenceRoles) > 0 {
		fmt.Fprintf(&b, "| fenced roles | %s |\n", strings.Join(r.FenceRoles, ", "))
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "| error | %s |\n", strings.ReplaceAll(r.Error, "|", `\|`))
	}
	if len(r.SeqMissing) > 0 {
		fmt.Fprintf(&b, "| sequences missing on the target | %s |\n", strings.Join(r.SeqMissing, ", "))
	}
	if len(r.Bouncers) > 0 {
		b.WriteString("\n## PgBouncers\n\n| PgBouncer | ini | pause ms | repoint ms | resume ms | probe stall ms |\n|---|---|---:|---:|---:|---:|\n")
		for _, x := range r.Bouncers {
			fmt.Fprintf(&b, "| %s | %s: %s | %.1f | %.1f | %.1f | %.1f |\n", x.Name, x.Method, x.Ini, x.PauseMs, x.RepointMs, x.ResumeMs, x.StallMs)
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

// defaults fills what is the engine's own; every bound and name the
// operator may set comes from the caller (steps/config holds their
// defaults), and validate refuses a run without them.
func (p *Params) defaults() {
	if p.Reverse == "" {
		p.Reverse = DefaultReverseName
	}
	if p.ProbeInterval == 0 {
		p.ProbeInterval = defaultProbeInterval
	}
	if p.FenceRoles == nil {
		p.FenceRoles = p.AppRoles
	}
	if p.Hooks == nil {
		p.Hooks = NoHooks{}
	}
}

// defaultProbeInterval is the stall probe's period: fine enough to see a
// pause of tens of milliseconds.
const defaultProbeInterval = 10 * time.Millisecond

// side is one direction's source or target.
type side struct {
	name     string // "blue" or "green"
	pool     *pgxpool.Pool
	endpoint pg.Endpoint
}

// direction is what moves where: writes stop on from, the feed from -> to
// is drained and stopped, the feed to -> from is started.
type direction struct {
	name     string // "cutover" or "rollback"
	rollback bool
	from, to side
}

func (p *Params) direction(rollback bool) direction {
	blue := side{"blue", p.Blue, p.BlueEndpoint}
	green := side{"green", p.Green, p.GreenEndpoint}
	if rollback {
		return direction{NameRollback, true, green, blue}
	}
	return direction{NameCutover, false, blue, green}
}

// feeds names the replication a direction drains (from -> to) and the one
// it starts (to -> from).
type feeds struct {
	drainSlots, drainSubs []string // slots on from, subscriptions on to
	startSlots, startSubs []string // slots on to, subscriptions on from
}

func (p *Params) feeds(rollback bool) feeds {
	fwd, rev := p.Subscriptions, []string{p.Reverse}
	if rollback {
		return feeds{drainSlots: rev, drainSubs: rev, startSlots: fwd, startSubs: fwd}
	}
	return feeds{drainSlots: fwd, drainSubs: fwd, startSlots: rev, startSubs: rev}
}
