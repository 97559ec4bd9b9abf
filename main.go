// Command pgbluegreen runs a PostgreSQL major-version upgrade blue/green:
// a green database on the new version fed from blue by logical replication,
// the lag watched live, and a cutover in about a second, with a way back.
//
// main.go is wiring only: the usage text, the global flags and the table of
// commands. Each command is a file of its own (cmd_*.go) that says what it
// needs opened (session.go opens it) and does its work.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
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
	p := &program{stdout: os.Stdout, stderr: os.Stderr, guard: startGuard, holder: startHolder}
	if testhook.NoGuard() { // only in a binary built with -tags pgbgtest
		p.guard = nil
	}
	os.Exit(p.run(os.Args[1:]))
}

// program is one run of pgbluegreen: where it writes, and what main wires
// that a test running the program in process leaves out.
type program struct {
	stdout, stderr io.Writer
	// guard makes the guard starter of a cutover attempt (startGuard). Nil
	// in a test that runs the program in process: its executable is the
	// test binary, not pgbluegreen (the guard's tests run the real binary).
	guard func(globals, *config.Config) steps.GuardFunc
	// holder makes the starter of a snapshot copy's holder (startHolder);
	// nil as guard is.
	holder func(globals) steps.SnapshotHolderFunc
}

// commands are the program's commands by name; "" is the full-screen
// program, run when no command is named.
var commands = map[string]command{
	"":              screenCommand,
	"plan":          planCommand,
	"status":        statusCommand,
	"run":           runCommand,
	"skip":          skipCommand,
	"value":         valueCommand,
	"lag":           lagCommand,
	"sessions":      sessionsCommand,
	"watch":         watchCommand,
	"guard":         guardCommand,
	"hold-snapshot": holdCommand,
	"lab":           labCommand,
	"demo":          demoCommand,
}

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

// run runs the command args names (the screen when none) and returns its
// exit code.
func (p *program) run(args []string) int {
	g, rest, err := splitGlobals(args)
	if err != nil {
		fmt.Fprintf(p.stderr, "pgbluegreen: %v\n", err)
		return exitUsage
	}
	name, cmdArgs := "", rest
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, cmdArgs = rest[0], rest[1:]
	}
	switch {
	case name == "help", name == "" && len(cmdArgs) > 0 && isHelp(cmdArgs[0]):
		fmt.Fprint(p.stdout, usage)
		return exitOK
	case name == "" && len(cmdArgs) > 0:
		fmt.Fprintf(p.stderr, "pgbluegreen: unknown flag %s\n%s", cmdArgs[0], usage)
		return exitUsage
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(p.stderr, "pgbluegreen: unknown command %q\n%s", name, usage)
		return exitUsage
	}
	return cmd.run(&call{program: p, g: g, cmd: cmd}, cmdArgs)
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" }
