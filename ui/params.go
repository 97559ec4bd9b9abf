package ui

import (
	"context"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// What the screen is built from. The monitor's types (steps.LagSample,
// steps.Traffic, steps.Drift…) are named here and in the panes that show
// them, nowhere else.

// Runner is what the screen uses of *steps.Runner; tests give a fake.
type Runner interface {
	Run(ctx context.Context, id string, p steps.RunParams) (steps.Outcome, error)
	Preconditions(id string, p steps.RunParams) string
	Env(step string) *steps.Env
	Skip(id, reason string) error
	// WaysOut says whether a cutover or rollback stopped half way, and its
	// two ways out.
	WaysOut(ctx context.Context, step string) (steps.WaysOut, bool, error)
	// RecordIfDone records a step done when its check finds its work done.
	RecordIfDone(ctx context.Context, id string) (steps.Outcome, string, error)
	// TerminateSession ends one client session, journaled.
	TerminateSession(ctx context.Context, server string, pid int32, started time.Time, who string) (bool, error)
	// SetValue records an operator's value: typed, journaled with the reason.
	SetValue(key, value, reason string) error
}

// Store is what the screen uses of *state.Store.
type Store interface {
	Snapshot() *state.State
	Update(fn func(*state.State) error) error
	Reload() (*state.State, error)
}

// LagFunc reads blue's slots once; SubscriptionsFunc green's subscriptions;
// VersionFunc one server's version. steps.Monitor's methods fit them.
type (
	LagFunc           func(ctx context.Context) (monitor.LagSample, error)
	SubscriptionsFunc func(ctx context.Context) ([]monitor.Subscription, error)
	VersionFunc       func(ctx context.Context) (string, error)
)

// Params are what the screen is built from.
type Params struct {
	Config *config.Config
	// Steps are the strategy's steps, in order.
	Steps  []*steps.Step
	Runner Runner
	Store  Store
	// Lines is the runner's Out: step output, streamed into the log.
	Lines <-chan steps.Line
	// Lag, Subscriptions and the versions are polled; any may be nil.
	Lag                       LagFunc
	Subscriptions             SubscriptionsFunc
	BlueVersion, GreenVersion VersionFunc
	// Traffic says where writes go; read every slowEvery.
	Traffic TrafficFunc
	// Connections says who is connected; read every connsEvery while the
	// connections pane is shown.
	Connections ConnectionsFunc
	// Drift compares blue's and green's schemas; read every slowEvery.
	Drift DriftFunc
	// SyncProgress reads the initial sync's progress; read every syncEvery
	// while a subscription has tables still to sync.
	SyncProgress SyncProgressFunc
	// Alerts, when set, is fed every read (nil: no alerts from this screen);
	// AlertsNote says where they go, or who sends them, in the log at start.
	Alerts     AlertSink
	AlertsNote string
	// PollTimeout bounds every poll (default 5 s).
	PollTimeout time.Duration
	// JournalPath is followed into the log; StatePath names the lock to
	// report in watch mode.
	JournalPath, StatePath string
	// Database is blue's database name, typed to confirm a destructive step.
	Database string
	// Watch shows the same screen read-only: it follows the files of the
	// instance that drives and offers no key that executes anything.
	Watch bool
	// Holder describes this instance as the lock's holder (drive mode).
	Holder string
	// Now and Location make the clock fixed in tests; defaults time.Now, time.Local.
	Now      func() time.Time
	Location *time.Location
}

// TrafficFunc reads where writes go; steps.Monitor.Traffic fits it.
type TrafficFunc func(ctx context.Context) (monitor.Traffic, error)

// ConnectionsFunc reads who is connected; steps.Monitor.Connections fits it.
type ConnectionsFunc func(ctx context.Context) (monitor.Connections, error)

// DriftFunc compares blue's and green's schemas; steps.Monitor.Drift fits it.
type DriftFunc func(ctx context.Context) (monitor.Drift, error)

// SyncProgressFunc reads the initial sync's progress once;
// steps.Monitor.SyncProgress fits it.
type SyncProgressFunc func(ctx context.Context) (monitor.SyncProgress, error)

// AlertSink takes what the screen reads; *steps.Alerter fits it. The
// screen's reads feed the alerts, so the driving screen and the headless
// `watch --alerts` alert alike; each observation is handed over in a
// command, and the Alerter never blocks (it queues the sends for its own
// goroutine).
type AlertSink interface {
	ObserveLag(s monitor.LagSample, feed string)
	ObserveSubscriptions(subs []monitor.Subscription)
	ObserveDrift(d monitor.Drift)
	ObserveReach(server string, err error)
	ObserveState(st *state.State)
}
