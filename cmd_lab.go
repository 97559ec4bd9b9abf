package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
)

// Exit codes of `pgbluegreen lab`, the same as the program's.
const (
	labExitOK     = 0
	labExitFailed = 1
	labExitUsage  = 2
)

const labUsage = `Usage: pgbluegreen lab COMMAND [flags]

The local lab: blue (oldest PostgreSQL major found) and green (newest) on
loopback, two PgBouncers in transaction pooling in front of blue (the second
one's ini is reached over SSH, through the lab's own sshd).

Commands:
  deps   [--cache DIR]                              fetch the pinned PostgreSQL build (checksum verified)
  up     --dir DIR [--strategy copy|clone] [--json] start (or restart) the lab, write DIR/pgbluegreen.yaml
  down   --dir DIR [--purge]                        stop everything the lab started; --purge removes its files
  status --dir DIR [--json]                         what runs, where, which versions
  load   --dir DIR --rate N --duration D [--clients C] [--databases app,billing]
                                                    write through both PgBouncers, a ledger per database
                                                    (DIR/ledger, DIR/ledger-billing); default --databases ` + lab.DefaultLoadDatabases + `
  verify --dir DIR                                  per database loaded: every ledger write present
                                                    exactly once; blue = green

Every login asks for a password over TCP (SCRAM, PgBouncer included); the
passwords are in DIR/pgpass only, and every connection string the lab writes
names it (passfile=DIR/pgpass). Blue has two databases, app and billing.

DIR and its parents must be enterable by the OS user the servers run as
(postgres, when run as root); a folder under /tmp is.
`

// lab is the local lab: its commands have their own usage and flags.
var labCommand = command{name: "lab", synopsis: "lab COMMAND [flags]", run: func(c *call, args []string) int { return runLab(args, c.stdout, c.stderr) }}

// runLab runs `pgbluegreen lab ...` and returns the exit code.
func runLab(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isLabHelp(args[0]) {
		fmt.Fprint(stdout, labUsage)
		if len(args) == 0 {
			return labExitUsage
		}
		return labExitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "deps":
		return labDeps(ctx, rest, stdout, stderr)
	case "up":
		return labUp(ctx, rest, stdout, stderr)
	case "down":
		return labDown(ctx, rest, stdout, stderr)
	case "status":
		return labStatus(ctx, rest, stdout, stderr)
	case "load":
		return labLoad(ctx, rest, stdout, stderr)
	case "verify":
		return labVerify(ctx, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "pgbluegreen lab: unknown command %q\n%s", cmd, labUsage)
		return labExitUsage
	}
}

func isLabHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" || a == "help" }

// labFlags makes a flag set that reports to stderr and a parse helper that
// maps --help to exit 0 and bad flags to exit 2.
func labFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pgbluegreen lab "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseLab(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return labExitOK, false
		}
		return labExitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return labExitUsage, false
	}
	return 0, true
}

func labFail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "pgbluegreen lab %s: %v\n", cmd, err)
	return labExitFailed
}

func labDeps(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := labFlags("deps", stderr)
	cache := fs.String("cache", lab.DefaultCacheDir(), "build cache (env PGBG_CACHE)")
	if code, ok := parseLab(fs, args); !ok {
		return code
	}
	if err := lab.FetchBuilds(ctx, *cache, stdout); err != nil {
		return labFail(stderr, "deps", err)
	}
	builds, _ := lab.FindBuilds(*cache)
	for _, b := range builds {
		fmt.Fprintf(stdout, "found PostgreSQL %s in %s\n", b.Version, b.BinDir)
	}
	return labExitOK
}

func labUp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := labFlags("up", stderr)
	dir := fs.String("dir", "lab", "the lab's folder")
	strategy := fs.String("strategy", "", "copy (default) or clone: what DIR/pgbluegreen.yaml says")
	asJSON := fs.Bool("json", false, "print the lab's description as JSON")
	cache := fs.String("cache", lab.DefaultCacheDir(), "build cache (env PGBG_CACHE)")
	if code, ok := parseLab(fs, args); !ok {
		return code
	}
	if *strategy != "" && *strategy != "copy" && *strategy != "clone" {
		fmt.Fprintf(stderr, "pgbluegreen lab up: --strategy %q: use copy or clone\n", *strategy)
		return labExitUsage
	}
	start := time.Now()
	info, err := lab.Up(ctx, lab.UpParams{Dir: *dir, CacheDir: *cache, Strategy: *strategy, Log: stderr})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "pgbluegreen lab up: interrupted; what it started is stopped")
			return labExitFailed
		}
		return labFail(stderr, "up", err)
	}
	if *asJSON {
		return writeLabJSON(stdout, stderr, info)
	}
	fmt.Fprintf(stdout, "lab up in %s (%s strategy, %.1fs)\n", info.Dir, info.Strategy, time.Since(start).Seconds())
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "  blue\tPostgreSQL %s\t%s\n", info.Blue.Version, info.Blue.Conninfo)
	if info.Strategy == "clone" {
		fmt.Fprintf(w, "  green\tclone of blue (made by the clone steps), %s\t%s\n", info.Green.Version, info.Clone.Conninfo)
	} else {
		fmt.Fprintf(w, "  green\tPostgreSQL %s\t%s\n", info.Green.Version, info.Green.Conninfo)
	}
	fmt.Fprintf(w, "  pgbouncer\tapp, transaction pooling\t%s\n", info.PgBouncer.Conninfo)
	fmt.Fprintf(w, "  console\tSHOW / PAUSE / RELOAD\t%s\n", info.PgBouncer.AdminConninfo)
	if b := info.PgBouncerSSH; b.Port > 0 {
		fmt.Fprintf(w, "  pgbouncer %s\tits ini reached over SSH only\t%s\n", b.Name, b.Conninfo)
		fmt.Fprintf(w, "  sshd\tthe lab's own, on loopback\tssh -p %d -i %s -o UserKnownHostsFile=%s %s@127.0.0.1\n", info.SSHD.Port, info.SSHD.Key, info.SSHD.KnownHosts, info.SSHD.User)
	}
	fmt.Fprintf(w, "  databases\t%s on blue\tapp: materialized view %s, large object %d\n", strings.Join(info.Databases, ", "), lab.MatView, info.LargeObject.OID)
	fmt.Fprintf(w, "  passwords\tevery login, SCRAM over TCP\t%s\n", info.Pgpass)
	fmt.Fprintf(w, "  config\t\t%s\n", info.Config)
	w.Flush()
	return labExitOK
}

func writeLabJSON(stdout, stderr io.Writer, v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return labFail(stderr, "json", err)
	}
	fmt.Fprintln(stdout, string(b))
	return labExitOK
}

func labDown(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := labFlags("down", stderr)
	dir := fs.String("dir", "lab", "the lab's folder")
	purge := fs.Bool("purge", false, "also remove the lab's files from DIR")
	if code, ok := parseLab(fs, args); !ok {
		return code
	}
	if err := lab.Down(ctx, *dir, *purge, stdout); err != nil {
		return labFail(stderr, "down", err)
	}
	return labExitOK
}

func labStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := labFlags("status", stderr)
	dir := fs.String("dir", "lab", "the lab's folder")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseLab(fs, args); !ok {
		return code
	}
	st, err := lab.Status(ctx, *dir)
	if err != nil {
		return labFail(stderr, "status", err)
	}
	if *asJSON {
		return writeLabJSON(stdout, stderr, st)
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATE\tPID\tPORT\tVERSION\tWHERE\tDATABASES")
	for _, c := range st {
		state, pid := "stopped", "-"
		if c.Running {
			state, pid = "running", fmt.Sprint(c.PID)
		}
		version := c.Version
		if c.Target != "" {
			version = "-> " + c.Target
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", c.Name, state, pid, c.Port, version, c.Where, statusDatabases(c.Databases))
	}
	w.Flush()
	return labExitOK
}

// statusDatabases is a component's databases in a line: a server's names,
// a PgBouncer's names and the port each points at.
func statusDatabases(dbs []lab.DatabaseStatus) string {
	if len(dbs) == 0 {
		return "-"
	}
	var out []string
	for _, d := range dbs {
		s := d.Name
		if d.Target != "" {
			s += " -> " + d.Target
			if pc, err := pgconn.ParseConfig(d.Target); err == nil {
				s = fmt.Sprintf("%s -> %s:%d", d.Name, pc.Host, pc.Port)
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func labLoad(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := labFlags("load", stderr)
	dir := fs.String("dir", "lab", "the lab's folder")
	rate := fs.Int("rate", 200, "transactions per second over all clients (0: as fast as possible)")
	duration := fs.Duration("duration", 30*time.Second, "how long to write")
	clients := fs.Int("clients", 4, "concurrent connections through PgBouncer (at least one per PgBouncer and database with several databases)")
	databases := fs.String("databases", lab.DefaultLoadDatabases, "the lab databases to write to, comma-separated, each with its own ledger")
	if code, ok := parseLab(fs, args); !ok {
		return code
	}
	if *duration <= 0 || *clients <= 0 || *rate < 0 {
		fmt.Fprintln(stderr, "pgbluegreen lab load: --duration and --clients must be positive, --rate not negative")
		return labExitUsage
	}
	dbs, err := lab.ParseDatabases(*databases)
	if err != nil {
		fmt.Fprintf(stderr, "pgbluegreen lab load: --databases: %v\n", err)
		return labExitUsage
	}
	res, err := lab.Load(ctx, lab.LoadParams{Dir: *dir, Rate: *rate, Duration: *duration, Clients: *clients, Databases: dbs, Log: stderr})
	b, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(b))
	if err != nil {
		return labFail(stderr, "load", err)
	}
	return labExitOK
}

func labVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := labFlags("verify", stderr)
	dir := fs.String("dir", "lab", "the lab's folder")
	if code, ok := parseLab(fs, args); !ok {
		return code
	}
	res, err := lab.Verify(ctx, *dir)
	if err != nil {
		return labFail(stderr, "verify", err)
	}
	for _, d := range res.Databases {
		fmt.Fprintf(stderr, "%s: %d ledger entries, %d lost, %d duplicated; %d tables compared, %d differ", d.Database, d.LedgerEntries, d.Lost, d.Duplicated, d.TablesCompared, len(d.MismatchedTables))
		if d.Note != "" {
			fmt.Fprintf(stderr, " (%s)", d.Note)
		}
		fmt.Fprintln(stderr)
	}
	b, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(b))
	if !res.OK() {
		return labExitFailed
	}
	return labExitOK
}
