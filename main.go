// Command pgbluegreen runs a PostgreSQL major-version upgrade blue/green:
// a green database on the new version fed from blue by logical replication,
// the lag watched live, and a cutover in about a second, with a way back.
//
// main.go is wiring only: flags, configuration, state, pools, and the
// command or the full-screen program.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/testhook"
)

const usage = `pgbluegreen: PostgreSQL major-version upgrades, blue/green, with logical replication.

Usage:
  pgbluegreen [--config FILE] [--state FILE]    the full-screen program
  pgbluegreen --watch ...                       the same screen, read-only, for a second person
  pgbluegreen plan [--format text|markdown]     the whole runbook with rendered SQL; runs nothing
  pgbluegreen status [--json]                   steps with status, values, where writes go (read from the servers), attempts
  pgbluegreen run STEP [--dry-run] [--yes]      one step, without the screen
  pgbluegreen run --through STEP [--yes]        every pending step in order up to STEP
  pgbluegreen run STEP --force REASON           run although earlier steps are not done (reason journaled)
  pgbluegreen run STEP --again REASON           run a done step once more on purpose, when it allows it (journaled)
  pgbluegreen run cutover|rollback --check [--measure-pause --yes]
                                                every live precheck, nothing changed; with a timed bare PAUSE/RESUME
  pgbluegreen run cutover|rollback --finish|--undo --yes
                                                the way out of a cutover or rollback that stopped half way
  pgbluegreen skip STEP --reason TEXT           mark a step skipped, with the reason journaled
  pgbluegreen value set KEY VALUE --reason TEXT record a value by hand: checked against its type, journaled
  pgbluegreen lag [--once] [--json]             the lag of every slot on blue and green, and the initial sync's progress
  pgbluegreen sessions [--json]                 who is connected to blue, green and each PgBouncer
  pgbluegreen watch --alerts                    headless: poll and send the configured alerts, for days
  pgbluegreen lab up|down|status|load|verify|deps --dir DIR   the local lab
  pgbluegreen demo [--dir lab] [--strategy copy|clone] [--keep]
                                                lab up + the screen on it; stops what it started on exit

Global flags (before or after the command):
  --config FILE   configuration (default ./pgbluegreen.yaml)
  --state FILE    state file (default: pgbluegreen.state.json next to the config)
  --profile NAME  AWS shared config profile (default: aws.profile, else the SDK's chain:
                  AWS_PROFILE, SSO, instance role); AWS_ENDPOINT_URL[_<SERVICE>] honoured

Exit codes: 0 success, 1 a step or check failed, 2 bad usage or configuration.
`

// Exit codes relied on by other tools.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	if !testhook.NoGuard() { // set only in a binary built with -tags pgbgtest
		guardStarter = startGuard
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// guardStarter makes the guard starter of a cutover attempt: startGuard,
// wired by main. Nil in a test that runs the program in process: its
// executable is the test binary, not pgbluegreen (the guard's tests run
// the real binary).
var guardStarter func(globals, *steps.Config) steps.GuardFunc

// globals are the flags accepted before or after the command.
type globals struct {
	config  string
	state   string
	profile string
	watch   bool
}

// splitGlobals takes the global flags out of args, wherever they stand.
func splitGlobals(args []string) (globals, []string, error) {
	g := globals{config: "pgbluegreen.yaml"}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		switch name {
		case "config", "state", "profile":
			if !hasVal {
				if i+1 >= len(args) {
					return g, nil, fmt.Errorf("flag --%s needs a value", name)
				}
				i++
				val = args[i]
			}
			switch name {
			case "config":
				g.config = val
			case "state":
				g.state = val
			default:
				g.profile = val
			}
		case "watch":
			g.watch = true
		default:
			rest = append(rest, a)
		}
	}
	if g.state == "" {
		g.state = filepath.Join(filepath.Dir(g.config), "pgbluegreen.state.json")
	}
	return g, rest, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	g, rest, err := splitGlobals(args)
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: %v\n", err)
		return exitUsage
	}
	cmd, cmdArgs := "", rest
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		cmd, cmdArgs = rest[0], rest[1:]
	}
	switch cmd {
	case "":
		if len(cmdArgs) > 0 && isHelp(cmdArgs[0]) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		if len(cmdArgs) > 0 {
			fmt.Fprintf(stderr, "pgbluegreen: unknown flag %s\n%s", cmdArgs[0], usage)
			return exitUsage
		}
		return runScreen(g, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "plan":
		return runPlan(g, cmdArgs, stdout, stderr)
	case "status":
		return runStatus(g, cmdArgs, stdout, stderr)
	case "run":
		return runRun(g, cmdArgs, stdout, stderr)
	case "skip":
		return runSkip(g, cmdArgs, stdout, stderr)
	case "value":
		return runValue(g, cmdArgs, stdout, stderr)
	case "lag":
		return runLag(g, cmdArgs, stdout, stderr)
	case "sessions":
		return runSessions(g, cmdArgs, stdout, stderr)
	case "watch":
		return runWatch(g, cmdArgs, stdout, stderr)
	case "guard":
		return runGuard(g, cmdArgs, stderr)
	case "lab":
		return runLab(cmdArgs, stdout, stderr)
	case "demo":
		return runDemo(g, cmdArgs, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "pgbluegreen: unknown command %q\n%s", cmd, usage)
		return exitUsage
	}
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" }

// loadConfig reads the configuration and reports every problem on stderr.
func loadConfig(g globals, stderr io.Writer) (*steps.Config, bool) {
	c, err := steps.LoadConfig(g.config)
	if err != nil {
		fmt.Fprintln(stderr, state.Redact(err.Error()))
		return nil, false
	}
	return c, true
}

// session is what a command that talks to the databases holds open.
type session struct {
	cfg     *steps.Config
	store   *state.Store
	journal *state.Journal
	blue    *pgxpool.Pool
	green   *pgxpool.Pool
	aws     *aws.Client // nil unless the configuration talks to AWS
	// globals are the flags it was opened with (a guard process is started
	// with the same ones); nil for a read-only session.
	globals *globals
}

// openSession opens the state (writable unless readOnly), the journal and the pools.
func openSession(g globals, readOnly bool, stderr io.Writer) (*session, int) {
	cfg, ok := loadConfig(g, stderr)
	if !ok {
		return nil, exitUsage
	}
	store, err := state.Open(g.state, state.OpenParams{ReadOnly: readOnly})
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
		return nil, exitFailed
	}
	if st := store.Snapshot(); st.Strategy != "" && st.Strategy != cfg.Strategy {
		store.Close()
		fmt.Fprintf(stderr, "pgbluegreen: the state file %s belongs to a %s run but the config says strategy %s; use another --state for a new run\n", g.state, st.Strategy, cfg.Strategy)
		return nil, exitUsage
	}
	s := &session{cfg: cfg, store: store}
	if !readOnly {
		s.globals = &g
		if s.journal, err = state.OpenJournal(journalPath(g.state)); err != nil {
			store.Close()
			fmt.Fprintf(stderr, "pgbluegreen: %v\n", err)
			return nil, exitFailed
		}
		_ = store.Update(func(st *state.State) error {
			st.Strategy = cfg.Strategy
			return nil
		})
	}
	for _, db := range []struct {
		name     string
		conninfo string
		pool     **pgxpool.Pool
	}{{"blue", cfg.Blue.Conninfo, &s.blue}, {"green", cfg.Green.Conninfo, &s.green}} {
		p, err := pg.NewPool(pg.PoolParams{Conninfo: db.conninfo, ConnectTimeout: cfg.Timeouts.Connect.Duration, ReadOnly: readOnly, OnQuery: steps.QueryJournal(s.journal, db.name)})
		if err != nil {
			s.close()
			fmt.Fprintf(stderr, "pgbluegreen: %s: %s\n", db.name, state.Redact(err.Error()))
			return nil, exitUsage
		}
		*db.pool = p
	}
	if cfg.NeedsAWS() {
		if s.aws, err = newAWSClient(cfg, g.profile, s.journal); err != nil && !readOnly {
			s.close()
			fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
			return nil, exitUsage
		}
		// A read-only session (--watch, --dry-run) journals nothing (no
		// journal) and gets a client only when credentials are there: a dry
		// run then reads AWS as it reads the databases; without them it
		// plans offline, with placeholders.
		if readOnly && s.aws != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if s.aws.CredentialsAvailable(ctx) != nil {
				s.aws = nil
			}
			cancel()
		}
		if s.aws != nil {
			cfg.UseAWS(s.aws) // a secret_arn password is read through it
		}
	}
	return s, exitOK
}

// newAWSClient builds the AWS client from the SDK's default chain (region
// and profile from the config or --profile; AWS_ENDPOINT_URL and the
// per-service overrides apply), journaling every call under the step its
// context runs for. It makes no API call.
func newAWSClient(cfg *steps.Config, profile string, j *state.Journal) (*aws.Client, error) {
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

func (s *session) close() {
	if s.blue != nil {
		s.blue.Close()
	}
	if s.green != nil {
		s.green.Close()
	}
	if s.journal != nil {
		s.journal.Close()
	}
	s.store.Close()
}

func (s *session) runner() *steps.Runner {
	r := steps.NewRunner(s.cfg, s.store, s.journal)
	r.Blue, r.Green, r.AWS = s.blue, s.green, s.aws
	if s.globals != nil && guardStarter != nil {
		r.Guard = guardStarter(*s.globals, s.cfg)
	}
	return r
}

// readOnlyPools are small pools of blue and green for commands that only
// read (status, lag): their sessions refuse to write.
func readOnlyPools(cfg *steps.Config) (blue, green *pgxpool.Pool, closeAll func(), err error) {
	mk := func(name, conninfo string) (*pgxpool.Pool, error) {
		p, err := pg.NewPool(pg.PoolParams{Conninfo: conninfo, ConnectTimeout: cfg.Timeouts.Connect.Duration, MaxConns: 2, ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return p, nil
	}
	if blue, err = mk("blue", cfg.Blue.Conninfo); err != nil {
		return nil, nil, nil, err
	}
	if green, err = mk("green", cfg.Green.Conninfo); err != nil {
		blue.Close()
		return nil, nil, nil, err
	}
	return blue, green, func() { blue.Close(); green.Close() }, nil
}

// openReadOnlyPools is readOnlyPools for a command: a failure is said on
// stderr in one line, secrets redacted, and ok is false.
func openReadOnlyPools(cfg *steps.Config, stderr io.Writer) (blue, green *pgxpool.Pool, closeAll func(), ok bool) {
	blue, green, closeAll, err := readOnlyPools(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
		return nil, nil, nil, false
	}
	return blue, green, closeAll, true
}

func journalPath(statePath string) string {
	return strings.TrimSuffix(statePath, filepath.Ext(statePath)) + ".journal.jsonl"
}

// signalContext is cancelled on Ctrl+C, SIGTERM or SIGHUP (an SSH session
// dropped outside tmux), so a running step stops cleanly and its state says
// so: a cutover aborts and puts everything back, or, past its switch,
// finishes. A broken stdout (a pipe closed) fails writes instead of
// killing the process.
func signalContext() (context.Context, context.CancelFunc) {
	signal.Ignore(syscall.SIGPIPE)
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
}

// exitFor maps an error to the exit code and prints it as one line.
func exitFor(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ce *steps.ConfigError
	fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
	if errors.As(err, &ce) {
		return exitUsage
	}
	return exitFailed
}
