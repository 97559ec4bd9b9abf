package cutover

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
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
// Rollback moves from Green back to Blue. One cutover moves every
// database of Databases inside one pause.
type Params struct {
	Method string
	// Databases are the databases that move, each with its pools and its
	// feeds. The first is the primary (blue.conninfo's): the statements
	// that concern the whole server (ALTER SYSTEM, roles, the drain
	// target, the fence) run on its sessions.
	Databases []Database
	// BlueEndpoint and GreenEndpoint are where PgBouncer's entries point
	// for each side (host, port; DBName is the primary database's name
	// there, another database keeps its own name).
	BlueEndpoint, GreenEndpoint pg.Endpoint
	// Bouncers are the PgBouncers in front of blue. Each one's entries of
	// every moving database are found in its SHOW DATABASES (every entry
	// whose server database moves and whose host and port are blue's or
	// green's), its configured Database among them.
	Bouncers []pg.BouncerParams

	// ReplicationRole and ReplicationPassword are what blue's reverse
	// subscriptions log in to green as. The password goes only into the
	// CREATE SUBSCRIPTION statements, as a Secret bind parameter, sent with
	// statement logging off.
	ReplicationRole     string
	ReplicationPassword string
	// GreenForBlue is how blue reaches green (host, port; dbname is the
	// primary's), when it differs from GreenEndpoint.
	GreenForBlue *pg.Endpoint

	// AppRoles are the configured application roles.
	AppRoles []string
	// FenceRoles are the roles that write: they can connect to the moved
	// databases on the side that takes the traffic and cannot on the other
	// (the fence closes CONNECT there). nil: AppRoles. The caller finds
	// them with WriterRoles before the first attempt and keeps them, so
	// every way out changes the same roles.
	FenceRoles []string
	// Administrators are roles the fence never touches, as it never
	// touches a superuser or the role pgbluegreen connects as: they keep
	// CONNECT on the side left behind.
	Administrators []string
	// Fences are what earlier runs' fences took, as the caller kept them
	// (Report.Fences, or Prior.Fences through Hooks.Prior): opening a side
	// gives that back exactly. A side with no record gets the CONNECT
	// grants the other side has.
	Fences Fences
	// TerminateDirect lets the cutover end the sessions on the source that
	// do not come through the configured PgBouncers (a cron job, an admin's
	// psql); without it such sessions make the precheck refuse.
	TerminateDirect bool

	MaxLagBytes int64
	// DrainTimeout bounds the drain; PauseTimeout each PgBouncer's PAUSE;
	// WayOutLagWait a way out's wait for the feed it starts to come
	// within MaxLagBytes.
	DrainTimeout, PauseTimeout, WayOutLagWait time.Duration
	// Window bounds the prechecks' wait for the lag to come under
	// MaxLagBytes (0: one reading); the run goes at the first reading
	// under it.
	Window time.Duration
	// PauseBudget is how long PgBouncer's clients may stay paused: the
	// caller's guard holds the run to it (Hooks.Paused); the report says
	// it beside what was used.
	PauseBudget time.Duration
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

	// Health judges the forward feeds' apply errors (see Health).
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

// Database is one database that moves: its name (the same on blue and
// green), a pool on it on each side, and its feeds.
type Database struct {
	Name string
	// Blue and Green are pools on this database with a role that can
	// manage replication, roles and sessions (a superuser, or
	// rds_superuser on RDS).
	Blue, Green *pgxpool.Pool
	// Subscriptions are the forward subscriptions on green in this
	// database; each one's slot on blue has the same name.
	Subscriptions []string
	// Reverse names the reverse feed of this database: its publication
	// and slot on green, its subscription on blue. Slots are the
	// server's, so each database has its own (config.ReverseName);
	// default DefaultReverseName for the first database.
	Reverse string
	// LargeObjects is the direction's source's large objects as last read
	// while the target's matched them (pg.LargeObjectsDigest.String):
	// copy-large-objects's record for a cutover, the last cutover's
	// LargeObjectsAfter for a rollback. With it, a rewrite in place since
	// is seen by the count of writes; "" reads the two sides only.
	LargeObjects string
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
	// Waiting is told, about once a second, what the prechecks wait for
	// before anything changes: the lag against its gate.
	Waiting(string)
	// Paused is told right before PgBouncer's clients are paused, and
	// Resumed once every entry is resumed (by the switch or an undo): the
	// caller's guard holds the pause to PauseBudget in between.
	Paused(at time.Time)
	Resumed()
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

// Waiting does nothing.
func (NoHooks) Waiting(string) {}

// Paused does nothing.
func (NoHooks) Paused(time.Time) {}

// Resumed does nothing.
func (NoHooks) Resumed() {}

// Prior is what a cutover or rollback found before it changed anything:
// what its ways out put back. The run tells the caller again (Hooks.Prior)
// whenever Fences changes, before the change.
type Prior struct {
	// LoginRetry is each PgBouncer's server_login_retry, by name.
	LoginRetry map[string]string `json:"login_retry,omitempty"`
	// TargetReadOnly says the target's moved databases were read-only (a
	// readonly cutover made them so): undoing sets them back.
	TargetReadOnly bool `json:"target_read_only,omitempty"`
	// TargetNoLogin are the fence roles that could not log in on the
	// target (block-green-logins left them so): undoing takes LOGIN from
	// them again, as it was.
	TargetNoLogin []string `json:"target_nologin,omitempty"`
	// Entries are each PgBouncer's entries the attempt moves, by
	// PgBouncer name, as SHOW DATABASES listed them: a way out after a
	// crash moves the same ones back.
	Entries map[string][]pg.IniEntry `json:"entries,omitempty"`
	// Fences are the fences in force (Params.Fences, then what this run's
	// fences took and its opens gave back).
	Fences Fences `json:"fences,omitempty"`
}

// Fences are the fences in force: per side ("blue", "green") and database,
// what the fence took there and gave in its place. Opening the side gives
// exactly that back.
type Fences map[string]map[string]pg.FenceRecord

// Clone copies f.
func (f Fences) Clone() Fences {
	out := Fences{}
	for s, m := range f {
		out[s] = maps.Clone(m)
	}
	return out
}

// Record is what the fence of database db on side took, if known.
func (f Fences) Record(side, db string) (pg.FenceRecord, bool) {
	rec, ok := f[side][db]
	return rec, ok
}

func (f Fences) set(side, db string, rec pg.FenceRecord) {
	if f[side] == nil {
		f[side] = map[string]pg.FenceRecord{}
	}
	f[side][db] = rec
}

func (f Fences) drop(side, db string) {
	delete(f[side], db)
	if len(f[side]) == 0 {
		delete(f, side)
	}
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

// defaults fills what is the engine's own; every bound and name the
// operator may set comes from the caller (steps/config holds their
// defaults), and validate refuses a run without them.
func (p *Params) defaults() {
	p.Databases = slices.Clone(p.Databases)
	for k := range p.Databases {
		if p.Databases[k].Reverse == "" {
			p.Databases[k].Reverse = DefaultReverseName
			if k > 0 {
				p.Databases[k].Reverse = config.QualifiedName(DefaultReverseName, p.Databases[k].Name)
			}
		}
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
	endpoint pg.Endpoint
	// primary is the first database's name, which endpoint names.
	primary string
}

// at is where database db is on this side: the endpoint's host and port,
// and the endpoint's database for the primary, db itself for another.
func (s side) at(db string) pg.Endpoint {
	if db == s.primary || s.primary == "" {
		return s.endpoint
	}
	return pg.Endpoint{Host: s.endpoint.Host, Port: s.endpoint.Port, DBName: db}
}

// direction is what moves where: writes stop on from, the feeds from -> to
// are drained and stopped, the feeds to -> from are started.
type direction struct {
	name     string // "cutover" or "rollback"
	rollback bool
	from, to side
}

func (p *Params) direction(rollback bool) direction {
	primary := ""
	if len(p.Databases) > 0 {
		primary = p.Databases[0].Name
	}
	blue := side{"blue", p.BlueEndpoint, primary}
	green := side{"green", p.GreenEndpoint, primary}
	if rollback {
		return direction{NameRollback, true, green, blue}
	}
	return direction{NameCutover, false, blue, green}
}

// feeds names the replication of one database a direction drains (from
// -> to) and the one it starts (to -> from).
type feeds struct {
	drainSlots, drainSubs []string // slots on from, subscriptions on to
	startSlots, startSubs []string // slots on to, subscriptions on from
}

func (db Database) feeds(rollback bool) feeds {
	fwd, rev := db.Subscriptions, []string{db.Reverse}
	if rollback {
		return feeds{drainSlots: rev, drainSubs: rev, startSlots: fwd, startSubs: fwd}
	}
	return feeds{drainSlots: fwd, drainSubs: fwd, startSlots: rev, startSubs: rev}
}
