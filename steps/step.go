// Package steps is the runbook: the step catalog, the four strategies, the
// runner that executes one step at a time, and the configuration they read.
package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/state"
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

// Step is one entry of the runbook.
type Step struct {
	ID     string
	Phase  Phase
	Target Target
	Title  string
	Why    string
	Source string
	// Strategies lists the strategies the step belongs to; nil means all.
	Strategies []string
	// Needs are values that must be recorded before the step runs;
	// Records are the values it records.
	Needs   []string
	Records []string
	// Destructive steps ask for confirmation (typing the database's name in
	// the UI, --yes on the command line).
	Destructive bool
	// Optional steps are never required by later steps (rollback, readers).
	Optional bool
	// Issue is the issue that brings the implementation, while Run is nil.
	Issue int

	Plan  func(e *Env) []Action
	Check func(ctx context.Context, e *Env) (CheckResult, error)
	Run   func(ctx context.Context, e *Env) error
}

// Implemented reports whether the step can run.
func (s *Step) Implemented() bool { return s.Run != nil }

// In reports whether the step belongs to the strategy.
func (s *Step) In(strategy string) bool {
	if s.Strategies == nil {
		return true
	}
	for _, x := range s.Strategies {
		if x == strategy {
			return true
		}
	}
	return false
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
	Config *Config
	Values map[string]string
	// Blue and Green are the pools built in main.go; nil when offline.
	Blue, Green *pgxpool.Pool
	// AWS is the AWS client built in main.go for the AWS strategies (and for
	// any strategy whose traffic switch or password lives in AWS); nil otherwise.
	AWS *aws.Client
	// StateDir is the folder of the run's state file: reports go there.
	StateDir string

	step   string
	emit   func(Line)
	record func(key, value string) error
}

// Value returns a recorded value.
func (e *Env) Value(key string) (string, bool) {
	v, ok := e.Values[key]
	return v, ok && v != ""
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

// Record saves a value in the state file at once, so a crash after it keeps it.
func (e *Env) Record(key, value string) error {
	if e.Values == nil {
		e.Values = map[string]string{}
	}
	e.Values[key] = value
	if e.record == nil {
		return nil
	}
	return e.record(key, value)
}

// notImplemented is the plan note of a step whose implementation comes later.
func (s *Step) notImplemented() string {
	return fmt.Sprintf("not implemented yet: arrives with issue #%d; `run` refuses it", s.Issue)
}

// RenderPlan returns the step's actions with current values; a step that is
// not implemented yet says so first.
func (s *Step) RenderPlan(e *Env) []Action {
	var out []Action
	if !s.Implemented() {
		out = append(out, Action{Target: s.Target, Kind: "note", Text: s.notImplemented()})
	}
	if s.Plan != nil {
		for _, a := range s.Plan(e) {
			a.Text = state.Redact(strings.TrimSpace(a.Text))
			out = append(out, a)
		}
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
