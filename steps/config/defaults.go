package config

import (
	"fmt"
	"strings"
	"time"
)

// Every default of the file, written once. docs/configuration.md lists
// them, and a test holds the two together (TestReferenceMatchesDefaults).
const (
	DefaultStrategy        = "copy"
	DefaultPublication     = "pgbg_all"
	DefaultReplicationRole = "pgbg_repl"
	DefaultCutoverMethod   = "pgbouncer"
	// DefaultMaxLagBytes is the cutover's lag gate.
	DefaultMaxLagBytes = 1 << 20

	DefaultDrainTimeout  = 10 * time.Second
	DefaultPauseTimeout  = 10 * time.Second
	DefaultGuardTimeout  = 10 * time.Second
	DefaultWayOutLagWait = DefaultDrainTimeout + time.Minute
	// DefaultWindow is how long the cutover waits for the lag to come
	// under its gate before anything changes.
	DefaultWindow = 3 * time.Minute
	// DefaultPauseBudget bounds how long clients stay paused.
	DefaultPauseBudget = 2 * time.Second
	// MinPauseTimeout is the least PgBouncer's PAUSE and the guard are
	// given: below it a busy machine's scheduling alone would abort.
	MinPauseTimeout = time.Second
	// DefaultHealthWindow: an apply error counted within it refuses the cutover.
	DefaultHealthWindow = 10 * time.Minute
	// DefaultHoldCommits applies to self-managed servers; on AWS, where
	// ALTER SYSTEM is not allowed, commits are not held.
	DefaultHoldCommits = 2 * time.Second

	DefaultLongTransaction = 10 * time.Second

	DefaultConnectTimeout   = 5 * time.Second
	DefaultStatementTimeout = 30 * time.Second
	DefaultLagWait          = 30 * time.Minute
	DefaultLagInterval      = time.Second
	DefaultAWSPollInterval  = 15 * time.Second

	// DefaultUnloggedTables is no choice: blue's unlogged tables are
	// copied or left behind only as the operator says (unlogged_tables),
	// and preflight fails while there are some and it is unset.
	DefaultUnloggedTables = ""

	DefaultAlertsFor          = 5 * time.Minute
	DefaultAlertsTimeout      = 10 * time.Second
	DefaultAlertsSafeWALBytes = "1GB"
	DefaultAlertsRetries      = 5
)

// Defaults fills what the file left out.
func (c *Config) Defaults() {
	if c.Strategy == "" {
		c.Strategy = DefaultStrategy
	}
	if len(c.Publications) == 0 {
		c.Publications = []Publication{{Name: DefaultPublication}}
	}
	if c.Replication.Role == "" {
		c.Replication.Role = DefaultReplicationRole
	}
	if c.Cutover.Method == "" {
		c.Cutover.Method = DefaultCutoverMethod
	}
	if c.Cutover.MaxLagBytes == 0 {
		c.Cutover.MaxLagBytes = DefaultMaxLagBytes
	}
	c.Notices = append(c.Notices, c.fromDrainTimeout()...)
	setDefault(&c.Cutover.DrainTimeout, DefaultDrainTimeout)
	setDefault(&c.Cutover.PauseTimeout, DefaultPauseTimeout)
	setDefault(&c.Cutover.GuardTimeout, DefaultGuardTimeout)
	setDefault(&c.Cutover.WayOutLagWait, DefaultWayOutLagWait)
	setDefault(&c.Cutover.Window, DefaultWindow)
	setDefault(&c.Cutover.PauseBudget, DefaultPauseBudget)
	setDefault(&c.Cutover.HealthWindow, DefaultHealthWindow)
	setDefault(&c.Sessions.LongTransaction, DefaultLongTransaction)
	setDefault(&c.Timeouts.Connect, DefaultConnectTimeout)
	setDefault(&c.Timeouts.Statement, DefaultStatementTimeout)
	setDefault(&c.Timeouts.LagWait, DefaultLagWait)
	setDefault(&c.Lag.Interval, DefaultLagInterval)
	setDefault(&c.AWS.PollInterval, DefaultAWSPollInterval)
	setDefault(&c.Alerts.For, DefaultAlertsFor)
	setDefault(&c.Alerts.Timeout, DefaultAlertsTimeout)
	if c.Alerts.SafeWALBytes == "" {
		c.Alerts.SafeWALBytes = DefaultAlertsSafeWALBytes
	}
	if c.Alerts.Retries == 0 {
		c.Alerts.Retries = DefaultAlertsRetries
	}
}

func setDefault(d *Duration, v time.Duration) {
	if d.Duration == 0 {
		d.Duration = v
	}
}

// HoldCommits is how long blue's commits may be held for green's apply
// before the pause: cutover.hold_commits, else DefaultHoldCommits on
// self-managed servers and none on AWS (no ALTER SYSTEM there). Measured
// on the lab (cutover benchmark, two PgBouncers), holding brought the lag
// at PAUSE from 230-500 kB to 0 and the pause from 105-121 ms to 58-62 ms
// at 200 and 1,000 writes/s.
func (c *Config) HoldCommits() time.Duration {
	if c.Cutover.HoldCommits != nil {
		return c.Cutover.HoldCommits.Duration
	}
	if c.IsAWS() {
		return 0
	}
	return DefaultHoldCommits
}

// fromDrainTimeout reads cutover.drain_timeout as it was read before it
// had one meaning: it also bounded PgBouncer's PAUSE and the guard (both at
// least MinPauseTimeout), a way out's catch-up (a minute more) and the
// sessions' LONG TX mark. A file that sets it and not the keys those now
// have keeps what it had, and the operator is told in one line.
func (c *Config) fromDrainTimeout() []string {
	drain := c.Cutover.DrainTimeout.Duration
	if drain <= 0 || drain == DefaultDrainTimeout {
		return nil
	}
	var set []string
	derive := func(key string, d *Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
			set = append(set, fmt.Sprintf("%s %s", key, v))
		}
	}
	derive("cutover.pause_timeout", &c.Cutover.PauseTimeout, max(drain, MinPauseTimeout))
	derive("cutover.guard_timeout", &c.Cutover.GuardTimeout, max(drain, MinPauseTimeout))
	derive("cutover.way_out_lag_wait", &c.Cutover.WayOutLagWait, drain+time.Minute)
	derive("sessions.long_transaction", &c.Sessions.LongTransaction, drain)
	if len(set) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("config: cutover.drain_timeout %s now bounds the drain alone; as before, it gave %s: set those keys to choose them yourself",
		drain, strings.Join(set, ", "))}
}
