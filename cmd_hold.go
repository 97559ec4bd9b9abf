package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
)

// The holder of a snapshot copy's snapshot (steps.SnapshotHold): a process
// of its own (a new session, as the guard's) that makes the copy's slot on
// a replication session and keeps that session idle, so that the snapshot
// outlives a copy killed half way.

// holdPoll is how often the holder looks at its hold file.
const holdPoll = 200 * time.Millisecond

// startHolder is the runner's SnapshotHolderFunc (main wires it,
// program.holder): it starts `pgbluegreen hold-snapshot` with the same
// configuration and state and waits until the slot exists and its hold
// file is written.
func startHolder(g globals) steps.SnapshotHolderFunc {
	return func(ctx context.Context, database, slot string) (steps.SnapshotHold, error) {
		logPath := filepath.Join(filepath.Dir(g.state), "pgbluegreen.holder.log")
		cmd, ready, err := spawnHelper(g, logPath, "hold-snapshot", "--database", database, "--slot", slot)
		if err != nil {
			return steps.SnapshotHold{}, err
		}
		defer ready.Close()
		go func() { _ = cmd.Wait() }()
		// The slot waits for the transactions running on blue to end: as
		// long as that takes, or until ctx ends.
		line := make(chan string, 1)
		go func() {
			s, _ := bufio.NewReader(ready).ReadString('\n')
			line <- strings.TrimSpace(s)
		}()
		var said string
		select {
		case said = <-line:
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return steps.SnapshotHold{}, fmt.Errorf("make slot %s: %w", slot, ctx.Err())
		}
		if said != "ready" {
			if said == "" {
				said = "it ended without a word (see " + logPath + ")"
			}
			return steps.SnapshotHold{}, errors.New(said)
		}
		h, ok, err := steps.ReadSnapshotHold(steps.SnapshotHoldPath(filepath.Dir(g.state), slot))
		if err == nil && !ok {
			err = fmt.Errorf("the holder of slot %s wrote no hold file (see %s)", slot, logPath)
		}
		return h, err
	}
}

// journalHolder journals a statement the holder ran, under copy-data.
func journalHolder(statePath string, s pg.Stmt, took time.Duration, err error) {
	j, jerr := state.OpenJournal(journalPath(statePath))
	if jerr != nil {
		return
	}
	defer j.Close()
	e := state.Entry{Step: "copy-data", Target: s.On, Kind: "sql", Text: s.String(), Duration: took, Outcome: "ok"}
	if err != nil {
		e.Outcome, e.Error = "error", err.Error()
	}
	_ = j.Append(e)
}

// holdCommand is `pgbluegreen hold-snapshot`: started by copy-data, never
// by hand.
var holdCommand = command{name: "hold-snapshot", synopsis: "hold-snapshot --database DB --slot SLOT (started by copy-data, not by hand)", run: runHold}

func runHold(c *call, args []string) int {
	fs := c.flags()
	database := fs.String("database", "", "the database of the slot")
	slot := fs.String("slot", "", "the slot to make")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	// fd 3 is copy-data's pipe: one line, "ready" or what went wrong.
	tell := func(string) {}
	if ready := os.NewFile(3, "ready"); ready != nil {
		tell = func(s string) {
			_, _ = ready.WriteString(s + "\n")
			ready.Close()
		}
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(c.stderr, "%s holder of slot %s: %s\n", time.Now().UTC().Format(time.RFC3339Nano), *slot, fmt.Sprintf(format, a...))
	}
	fail := func(err error) int {
		msg := state.Redact(err.Error())
		logf("%s", msg)
		tell(msg)
		return exitFailed
	}
	if *slot == "" {
		fmt.Fprintln(c.stderr, "pgbluegreen hold-snapshot: --slot is needed; copy-data starts its holder itself")
		return exitUsage
	}
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	cfg, ok := loadConfig(c.g, c.stderr)
	if !ok {
		return fail(errors.New("the configuration does not load (see the holder's log)"))
	}
	cfg = cfg.ForDatabase(*database)
	pool, err := pg.NewPool(pg.PoolParams{Conninfo: cfg.Blue.Conninfo, ConnectTimeout: cfg.Timeouts.Connect.Duration, MaxConns: 1})
	if err != nil {
		return fail(fmt.Errorf("blue: %w", err))
	}
	conn := pool.Config().ConnConfig.Config
	pool.Close()
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	held, err := pg.HoldSnapshot(ctx, &conn, *slot)
	cancel()
	if err != nil {
		return fail(err)
	}
	defer held.Conn.Close(context.Background())
	path := steps.SnapshotHoldPath(filepath.Dir(c.g.state), *slot)
	h := steps.SnapshotHold{Database: *database, Slot: *slot, LSN: held.LSN, Snapshot: held.Snapshot, PID: os.Getpid(), Since: time.Now().UTC()}
	if err := steps.WriteSnapshotHold(path, h); err != nil {
		return fail(err)
	}
	logf("slot made at %s; holding snapshot %s (idle bound %s)", h.LSN, h.Snapshot, steps.SnapshotHoldIdle)
	tell("ready")
	for {
		select {
		case <-term:
			logf("told to stop: letting the snapshot go, the slot stays")
			return exitOK
		case <-time.After(holdPoll):
		}
		st, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			logf("the hold file is gone: the copy is done, or starts over; letting the snapshot go")
			return exitOK
		}
		if err == nil && time.Since(st.ModTime()) > steps.SnapshotHoldIdle {
			// Nothing goes on from this slot now: it would hold blue's WAL.
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			start := time.Now()
			derr := held.DropSlot(dctx, *slot)
			cancel()
			journalHolder(c.g.state, held.DropSlotStmt(*slot), time.Since(start), derr)
			logf("no copy has gone on for %s: the snapshot let go and the slot dropped (error: %v; if any, run %s on blue)", steps.SnapshotHoldIdle, derr, pg.DropSlotStmt("blue", *slot))
			_ = os.Remove(path)
			return exitOK
		}
	}
}
