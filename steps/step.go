// Package steps is the runbook: the step catalog, the four strategies and the
// runner that executes one step at a time (the configuration is steps/config).
package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// Target is where a step acts.
type Target string

// The targets of RUNBOOK.md.
const (
	Blue      Target = "blue"
	Green     Target = "green"
	BlueGreen Target = "blue, green"
	PgBouncer Target = "pgbouncer"
	AWSTarget Target = "aws"
	Operator  Target = "operator"
	// AWSOrOperator is a step done through AWS for the AWS strategies and by
	// the operator (a restart) for self-managed servers.
	AWSOrOperator Target = "aws / operator"
)

// Phase groups steps on screen and in the plan, in this order.
type Phase string

// The phases of RUNBOOK.md.
const (
	PhasePrepare      Phase = "Prepare"
	PhaseAnchor       Phase = "Anchor replication on blue"
	PhaseProvision    Phase = "Provision green"
	PhasePrepareGreen Phase = "Prepare green"
	PhaseReplicate    Phase = "Replicate"
	PhaseCutover      Phase = "Cutover"
	PhaseCleanup      Phase = "Cleanup"
)

// Action is one thing a step does, as shown before it is done: a SQL
// statement, an AWS call, a command, or something the operator does.
type Action struct {
	Target Target
	Kind   string // "sql", "api", "command", "operator", "note"
	Text   string
}

// CheckResult is what a step's check found in live state.
type CheckResult struct {
	// Done means the step's work is already there: running it again changes nothing.
	Done bool
	// Detail says what was found, for the log and the detail pane.
	Detail string
}

// Step is one entry of the runbook: its metadata, its plan, its check and
// its run, in one value. A strategy is a list of steps (Strategy).
type Step struct {
	ID     string
	Phase  Phase
	Target Target
	Title  string
	Why    string
	Source string
	// Needs are values that must be recorded before the step runs;
	// Records are the values it records.
	Needs   []string
	Records []string
	// Destructive steps ask for confirmation (typing the database's name in
	// the UI, --yes on the command line).
	Destructive bool
	// Optional steps are never required by later steps (rollback, readers).
	Optional bool
	// Recheck steps are asked their check even when recorded done: the
	// servers say whether their work is in force (a cutover rolled back by
	// hand is not done any more).
	Recheck bool
	// PerDatabase steps act in each database that moves, one after the
	// other: their Plan, Check and Run see an Env for that database. The
	// step is done when it is done in every one.
	PerDatabase bool
	// Reopens are the steps made pending again when this one is done (a
	// rollback reopens the cutover; a cutover, the rollback).
	Reopens []string
	// Rehearse runs the step's live prechecks without running it
	// (`run cutover --check`); nil: the step has no rehearsal.
	Rehearse func(ctx context.Context, e *Env, measurePause bool) error
	// Again says whether the done step may run once more on purpose now
	// (`run STEP --again REASON`): "" allows it, else why not. nil: never.
	Again func(ctx context.Context, e *Env) string

	// Plan lists what the step would do, from the same builders its Run
	// executes. With e's connections (a dry run) it reads the servers, never
	// writing, and shows the statements it would execute now with their
	// values; offline (e.Offline()) it shows the recorded values and
	// placeholders for the rest, and does no I/O.
	Plan  func(ctx context.Context, e *Env) ([]Action, error)
	Check func(ctx context.Context, e *Env) (CheckResult, error)
	Run   func(ctx context.Context, e *Env) error
}

// Line is one line of step output, streamed to the log pane and journaled.
type Line struct {
	Time  time.Time
	Step  string
	Level string // "info", "warn", "error", "sql", "api"
	Text  string
}

// Env is what a step's Plan, Check and Run see. Plan uses only Config and
// Values, so that `plan` works with no server running.
type Env struct {
	Config *config.Config
	Values map[string]string
	// Blue and Green are the pools built in main.go; nil when offline.
	// For a step that runs in each database (PerDatabase), they are that
	// database's, and DB names it; "" for a step of the whole cluster.
	Blue, Green *pgxpool.Pool
	DB          string
	// AWS is the AWS client built in main.go for the AWS strategies (and for
	// any strategy whose traffic switch or password lives in AWS); nil otherwise.
	AWS *aws.Client
	// StateDir is the folder of the run's state file: reports go there.
	StateDir string

	step  string
	way   string
	store *state.Store
	guard GuardFunc
	// unstop ends the deferral of SIGTSTP an attempt began (holdStops).
	unstop func()
	// holder starts the holder of a snapshot copy's snapshot; nil: the
	// copy holds it itself, and a copy stopped half way starts over.
	holder SnapshotHolderFunc
	// unguard stops the guard the step started, if any, for attempt
	// guarded.
	unguard func()
	guarded int
	emit    func(Line)
	record  func(key, value string) error
	// databases lists the databases the run moves (Runner.Databases).
	databases func(context.Context) ([]Database, error)
}

// Offline returns a copy of e without connections: plans made from it read
// nothing.
func (e *Env) Offline() *Env {
	c := *e
	c.Blue, c.Green, c.AWS = nil, nil, nil
	return &c
}

// IsOffline reports whether e has no connection to blue, green or AWS.
func (e *Env) IsOffline() bool { return e.Blue == nil && e.Green == nil && e.AWS == nil }

// Value returns a recorded value: in another database than the primary,
// its own (key@database), else, for a value of the whole cluster, the one
// value.
func (e *Env) Value(key string) (string, bool) {
	if k := e.dbKey(key); k != key {
		if v, ok := e.Values[k]; ok && v != "" {
			return v, true
		}
		if perDatabaseKey(key) {
			return "", false
		}
	}
	v, ok := e.Values[key]
	return v, ok && v != ""
}

// V0 returns a recorded value, or "" when none is.
func (e *Env) V0(key string) string {
	v, _ := e.Value(key)
	return v
}

// V returns a recorded value for a plan, or a clear placeholder.
func (e *Env) V(key string) string {
	if v, ok := e.Value(key); ok {
		return v
	}
	return "<" + key + ">"
}

// Logf streams one line of output.
func (e *Env) Logf(format string, args ...any) { e.log("info", format, args...) }

// Warnf streams one warning line.
func (e *Env) Warnf(format string, args ...any) { e.log("warn", format, args...) }

func (e *Env) log(level, format string, args ...any) {
	if e.emit == nil {
		return
	}
	e.emit(Line{Time: time.Now(), Step: e.step, Level: level, Text: state.Redact(fmt.Sprintf(format, args...))})
}

// Record saves a value in the state file at once, so a crash after it
// keeps it; in another database than the primary, as that database's.
func (e *Env) Record(key, value string) error {
	key = e.dbKey(key)
	if e.Values == nil {
		e.Values = map[string]string{}
	}
	e.Values[key] = value
	if e.record == nil {
		return nil
	}
	return e.record(key, value)
}

// RenderPlan returns the step's actions, secrets redacted: live when e has
// connections (a dry run), else offline. A live read that fails is an
// error: a dry run must not show a guess as what would run.
func (s *Step) RenderPlan(ctx context.Context, e *Env) ([]Action, error) {
	if s.Plan == nil {
		return nil, nil
	}
	acts, err := s.planAll(ctx, e)
	out := make([]Action, 0, len(acts))
	for _, a := range acts {
		a.Text = state.Redact(strings.TrimSpace(a.Text))
		out = append(out, a)
	}
	return out, err
}

// OfflinePlan is RenderPlan without connections: what the screen's detail
// pane and `plan` show, with no I/O.
func (s *Step) OfflinePlan(e *Env) []Action {
	acts, err := s.RenderPlan(context.Background(), e.Offline())
	if err != nil {
		acts = append(acts, Action{Target: s.Target, Kind: "note", Text: "plan: " + state.Redact(err.Error())})
	}
	return acts
}

// commands renders programs an operation runs as plan actions.
func commands(cs ...pg.Command) []Action {
	out := make([]Action, len(cs))
	for i, c := range cs {
		out[i] = Action{Target: Target(c.On), Kind: "command", Text: c.Display()}
	}
	return out
}

// stmts renders statements of pg as plan actions.
func stmts(ss ...pg.Stmt) []Action {
	out := make([]Action, len(ss))
	for i, s := range ss {
		out[i] = Action{Target: Target(s.On), Kind: "sql", Text: s.Display()}
	}
	return out
}

type stepKey struct{}

// WithStep labels a context with the step it runs for, so every statement
// journaled under it names the step.
func WithStep(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, stepKey{}, id)
}

// StepFromContext returns the step a context runs for, or "".
func StepFromContext(ctx context.Context) string {
	id, _ := ctx.Value(stepKey{}).(string)
	return id
}
