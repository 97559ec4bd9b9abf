package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// IniCommandParams repoint a PgBouncer through commands of the operator's
// (kubectl, Ansible, a config service, a script that swaps a symlink):
// each is a shell command line run with sh -c, the target in its
// environment: PGBG_HOST, PGBG_PORT, PGBG_DBNAME (where the entry must
// point), PGBG_TARGET (blue or green), PGBG_DATABASE (the entry's name)
// and PGBG_PGBOUNCER (the PgBouncer's name). Their output goes to the
// journal, redacted.
type IniCommandParams struct {
	// Repoint points the entry at the target.
	Repoint string
	// Restore puts the source back after a failure; "" runs Repoint with
	// the source in the environment.
	Restore string
	// Read prints the ini's text, so it can be checked before and after;
	// "" with no ini path: SHOW DATABASES is the only check.
	Read string
	// Timeout bounds each command (default 30s); the command's process
	// group is killed past it.
	Timeout time.Duration
}

// commandIni is an ini changed by commands, read from a local path or
// through a read command when one is configured.
type commandIni struct {
	on, name, ini string
	p             IniCommandParams
}

func (c *commandIni) Method() string { return "command" }
func (c *commandIni) Close()         {}

func (c *commandIni) Where() string {
	if c.ini != "" {
		return c.ini + " (through commands)"
	}
	return "PgBouncer " + c.name + "'s ini (through commands)"
}

func (c *commandIni) timeout() time.Duration {
	if c.p.Timeout > 0 {
		return c.p.Timeout
	}
	return 30 * time.Second
}

func (c *commandIni) ReadEntry(ctx context.Context, db string) (BouncerEntry, error) {
	var text string
	switch {
	case c.ini != "":
		t, err := readLocal(c.ini)
		if err != nil {
			return BouncerEntry{}, err
		}
		text = t
	case c.p.Read != "":
		out, err := runShell(ctx, c.timeout(), exec.Command("sh", "-c", c.p.Read))
		if err != nil {
			return BouncerEntry{}, fmt.Errorf("read_command: %w", err)
		}
		text = string(out)
	default:
		return BouncerEntry{}, ErrIniUnreadable
	}
	_, e, err := findEntry(text, db)
	if err != nil {
		return BouncerEntry{}, fmt.Errorf("%s: %w", c.Where(), err)
	}
	return e, nil
}

// command is what runs for one target of ch, as plans show it and the
// journal records it.
func (c *commandIni) command(ch IniChange, t IniTarget) Command {
	tmpl, which := c.p.Repoint, "repoint_command"
	if ch.Restore && c.p.Restore != "" {
		tmpl, which = c.p.Restore, "restore_command"
	}
	return Command{On: c.on, Path: "env", Args: []string{
		"PGBG_HOST=" + t.To.Host, "PGBG_PORT=" + strconv.Itoa(t.To.Port), "PGBG_DBNAME=" + t.To.DBName,
		"PGBG_TARGET=" + ch.Side, "PGBG_DATABASE=" + t.Database, "PGBG_PGBOUNCER=" + c.name,
		"sh", "-c", tmpl},
		Note: fmt.Sprintf("%s, at most %s; its output to the journal", which, c.timeout())}
}

// Plan is one command per entry of ch (the commands take one entry each,
// PGBG_DATABASE), then the read back.
func (c *commandIni) Plan(ch IniChange) []PlanLine {
	var out []PlanLine
	for _, t := range ch.Targets() {
		out = append(out, PlanLine{On: c.on, Kind: "command", Text: c.command(ch, t).Display()})
	}
	if c.ini != "" || c.p.Read != "" {
		for _, t := range ch.Targets() {
			out = append(out, Note(c.on, "then %s is read back: its %s entry must say %s", c.Where(), t.Database, t.To))
		}
	}
	return out
}

// Repoint runs the command for each entry of ch that does not point
// where ch says yet, one after the other, then reads them all back.
func (c *commandIni) Repoint(ctx context.Context, ch IniChange) error {
	for _, t := range ch.Targets() {
		if e, err := c.ReadEntry(ctx, t.Database); err == nil && entryPointsAt(e, t.Database, t.To) {
			continue
		}
		cmd := c.command(ch, t)
		start := time.Now()
		out, err := runShell(ctx, c.timeout(), exec.Command(cmd.Path, cmd.Args...))
		cmd.Journal(ctx, time.Since(start), err)
		if len(out) > 0 {
			journalExecuted(ctx, Executed{On: c.on, Kind: "output", Text: tail(state.Redact(string(out)), 4000)})
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", c.on, strings.SplitN(cmd.Note, ",", 2)[0], err)
		}
	}
	if err := verifyEntry(ctx, c, ch); err != nil {
		return fmt.Errorf("%s: %w", c.on, err)
	}
	return nil
}

// runShell runs cmd in its own process group, bounded by timeout (the
// whole group is killed past it), and returns its stdout and stderr
// together; a failure's error ends with the output's last line.
func runShell(ctx context.Context, timeout time.Duration, cmd *exec.Cmd) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = oscmd.DiesWithUs()
	cmd.SysProcAttr.Setpgid = true
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return out.Bytes(), fmt.Errorf("timed out after %s", timeout)
	case err != nil:
		if last := lastLine(state.Redact(out.String())); last != "" {
			return out.Bytes(), fmt.Errorf("%w: %s", err, last)
		}
		return out.Bytes(), err
	}
	return out.Bytes(), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
