package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// The commands' one preamble: a command says what it needs (needs), and
// open loads the configuration and opens that, saying a failure on stderr
// in one line with its exit code; the session's close closes it all.

// access is how a command uses the state file.
type access int

const (
	// noState: the command reads no state file.
	noState access = iota
	// stateIfAny: read without its lock when there is a readable one;
	// otherwise the command goes on without (plan).
	stateIfAny
	// readState: read without its lock, a second process may drive; a
	// file that cannot be read is a failure (exit 1).
	readState
	// writeState: written, its lock held until the command ends.
	writeState
)

// poolUse is which pools of blue and green a command uses.
type poolUse int

const (
	// noPools: the command talks to neither server.
	noPools poolUse = iota
	// readPools: two read-only connections each, journaling nothing, for
	// a command that only reads (lag, sessions, watch --alerts).
	readPools
	// stepPools: the runner's, every statement journaled, read-only when
	// the state is only read; with the AWS client when the configuration
	// talks to AWS. The state file must belong to the configured strategy
	// (and, written, records it): it goes with readState or writeState.
	stepPools
)

// needs is what a command has opened before its work, in this order.
type needs struct {
	// check looks at the configuration before anything is opened; its
	// error is said in one line, exit 2.
	check   func(*config.Config) error
	state   access
	journal bool // the journal beside the state file
	pools   poolUse
	// gauge: two more connections each, journaling nothing, for the
	// screen's gauge (one lag query a second does not belong in the
	// journal) and its slow reads.
	gauge bool
}

// session is what open opened for a command; what it did not need is nil.
type session struct {
	cfg         *config.Config
	store       *state.Store
	journal     *state.Journal
	blue, green *pgxpool.Pool
	aws         *aws.Client
	// gaugeBlue and gaugeGreen are the gauge's pools (needs.gauge).
	gaugeBlue, gaugeGreen *pgxpool.Pool
	// guard starts the guard of a cutover attempt its runner runs: set
	// for the runner's pools on a written state, when the program has one.
	guard steps.GuardFunc
	// holder starts the holder of a snapshot copy's snapshot: set as guard is.
	holder steps.SnapshotHolderFunc
	// runners are those made for the session, closed with it.
	runners []*steps.Runner
}

// open loads the configuration and opens what n names. On a failure it
// says so on stderr in one line, closes what it opened and returns nil and
// the exit code.
func (c *call) open(n needs) (*session, int) {
	cfg, ok := loadConfig(c.g, c.stderr)
	if !ok {
		return nil, exitUsage
	}
	if n.check != nil {
		if err := n.check(cfg); err != nil {
			fmt.Fprintf(c.stderr, "pgbluegreen: %v\n", err)
			return nil, exitUsage
		}
	}
	s := &session{cfg: cfg}
	if code := s.openNeeds(c, n); code != exitOK {
		s.close()
		return nil, code
	}
	return s, exitOK
}

// loadConfig reads the configuration and reports every problem on stderr.
func loadConfig(g globals, stderr io.Writer) (*config.Config, bool) {
	c, err := config.Load(g.config)
	if err != nil {
		fmt.Fprintln(stderr, state.Redact(err.Error()))
		return nil, false
	}
	for _, n := range c.Notices {
		fmt.Fprintln(stderr, n)
	}
	return c, true
}

// openNeeds opens what n names for the configuration s holds, in the
// order needs lists; on a failure it says so and returns the exit code,
// leaving what it opened to s.close.
func (s *session) openNeeds(c *call, n needs) int {
	g, cfg, stderr := c.g, s.cfg, c.stderr
	readOnly := n.state != writeState
	if n.state != noState {
		store, err := state.Open(g.state, state.OpenParams{ReadOnly: readOnly})
		switch {
		case err == nil:
			s.store = store
		case n.state != stateIfAny:
			fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
			return exitFailed
		}
	}
	if n.pools == stepPools {
		if st := s.store.Snapshot(); st.Strategy != "" && st.Strategy != cfg.Strategy {
			fmt.Fprintf(stderr, "pgbluegreen: the state file %s belongs to a %s run but the config says strategy %s; use another --state for a new run\n", g.state, st.Strategy, cfg.Strategy)
			return exitUsage
		}
	}
	if n.journal {
		j, err := state.OpenJournal(journalPath(g.state))
		if err != nil {
			fmt.Fprintf(stderr, "pgbluegreen: %v\n", err)
			return exitFailed
		}
		s.journal = j
	}
	var err error
	switch n.pools {
	case readPools:
		s.blue, s.green, err = newPools(cfg, pg.PoolParams{MaxConns: 2, ReadOnly: true}, nil)
	case stepPools:
		if !readOnly {
			_ = s.store.Update(func(st *state.State) error {
				st.Strategy = cfg.Strategy
				return nil
			})
		}
		s.blue, s.green, err = newPools(cfg, pg.PoolParams{ReadOnly: readOnly}, func(side string) queryHook {
			return steps.QueryJournal(s.journal, side) // a dry run's nil journal records nothing
		})
	}
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
		return exitUsage
	}
	if n.pools == stepPools && cfg.NeedsAWS() {
		if code := s.openAWS(g, readOnly, stderr); code != exitOK {
			return code
		}
	}
	if n.gauge {
		if s.gaugeBlue, s.gaugeGreen, err = newPools(cfg, pg.PoolParams{MaxConns: 2}, nil); err != nil {
			fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
			return exitUsage
		}
	}
	if n.pools == stepPools && !readOnly && c.guard != nil {
		s.guard = c.guard(g, cfg)
	}
	if n.pools == stepPools && c.holder != nil {
		// A plan or a dry run says who makes a snapshot copy's slot; only
		// a run starts a holder.
		s.holder = c.holder(g)
	}
	return exitOK
}

// queryHook is told of every statement of a pool (pg.PoolParams.OnQuery).
type queryHook = func(ctx context.Context, sql string, d time.Duration, err error)

// newPools builds blue's and green's pools from p with their conninfo and
// the connect timeout; onQuery, when not nil, gives each side's hook.
func newPools(cfg *config.Config, p pg.PoolParams, onQuery func(side string) queryHook) (blue, green *pgxpool.Pool, err error) {
	mk := func(side, conninfo string) (*pgxpool.Pool, error) {
		q := p
		q.Conninfo, q.ConnectTimeout = conninfo, cfg.Timeouts.Connect.Duration
		if onQuery != nil {
			q.OnQuery = onQuery(side)
		}
		pool, err := pg.NewPool(q)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", side, err)
		}
		return pool, nil
	}
	if blue, err = mk("blue", cfg.Blue.Conninfo); err != nil {
		return nil, nil, err
	}
	if green, err = mk("green", cfg.Green.Conninfo); err != nil {
		blue.Close()
		return nil, nil, err
	}
	return blue, green, nil
}

// openAWS builds the AWS client. A read-only session (--watch, --dry-run)
// journals nothing (no journal) and gets a client only when credentials
// are there: a dry run then reads AWS as it reads the databases; without
// them it plans offline, with placeholders.
func (s *session) openAWS(g globals, readOnly bool, stderr io.Writer) int {
	var err error
	if s.aws, err = newAWSClient(s.cfg, g.profile, s.journal); err != nil && !readOnly {
		fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
		return exitUsage
	}
	if readOnly && s.aws != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if s.aws.CredentialsAvailable(ctx) != nil {
			s.aws = nil
		}
		cancel()
	}
	if s.aws != nil {
		s.cfg.UseAWS(s.aws) // a secret_arn password is read through it
	}
	return exitOK
}

// newAWSClient builds the AWS client from the SDK's default chain (region
// and profile from the config or --profile; AWS_ENDPOINT_URL and the
// per-service overrides apply), journaling every call under the step its
// context runs for. It makes no API call.
func newAWSClient(cfg *config.Config, profile string, j *state.Journal) (*aws.Client, error) {
	if profile == "" {
		profile = cfg.AWS.Profile
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return aws.New(ctx, aws.Options{
		Region: cfg.AWS.Region, Profile: profile, PollInterval: cfg.AWS.PollInterval.Duration,
		Journal: func(ctx context.Context, r aws.CallReport) {
			if j == nil {
				return
			}
			// The call's line is the plan's: a secret value shows as (secret).
			e := state.Entry{Step: steps.StepFromContext(ctx), Target: "aws", Kind: "api", Text: state.Redact(r.Call.String()), Duration: r.Duration, Outcome: "ok"}
			if r.Err != nil {
				e.Outcome, e.Error = "error", state.Redact(r.Err.Error())
			}
			_ = j.Append(e)
		},
	})
}

// close closes what open opened, the last opened first.
func (s *session) close() {
	for _, r := range s.runners {
		r.Close()
	}
	for _, p := range []*pgxpool.Pool{s.gaugeGreen, s.gaugeBlue, s.green, s.blue} {
		if p != nil {
			p.Close()
		}
	}
	if s.journal != nil {
		s.journal.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// runner is the runner of the session's steps, on its pools.
func (s *session) runner() *steps.Runner {
	r := steps.NewRunner(s.cfg, s.store, s.journal)
	r.Blue, r.Green, r.AWS, r.Guard, r.Holder = s.blue, s.green, s.aws, s.guard, s.holder
	s.runners = append(s.runners, r) // closed with the session: its pools on other databases
	return r
}

// journalPath is the journal's file beside the state file.
func journalPath(statePath string) string {
	return strings.TrimSuffix(statePath, filepath.Ext(statePath)) + ".journal.jsonl"
}
