package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/charmbracelet/x/term"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// command is one of the program's commands, declared in its own file
// (cmd_NAME.go): its name and usage line, and the function that parses its
// flags (c.flags), has what it needs opened (c.open) and does its work.
type command struct {
	name string
	// synopsis is the usage line its flags' help starts with, after
	// "pgbluegreen ".
	synopsis string
	run      func(c *call, args []string) int
}

// call is one command being run: the program, the global flags and the
// command.
type call struct {
	*program
	g   globals
	cmd command
}

// flags makes the command's flag set: its errors and help go to stderr in
// one piece, the help starting with the command's usage line.
func (c *call) flags() *flag.FlagSet {
	fs := flag.NewFlagSet(c.cmd.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: pgbluegreen %s\n", c.cmd.synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses and maps -h and bad flags to exit codes.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// parseMixed parses flags that may stand before or after the positional
// arguments (`run STEP --yes` and `run --yes STEP`), returning the latter.
func parseMixed(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for len(args) > 0 {
		if code, ok := parseFlags(fs, args); !ok {
			return nil, code, false
		}
		args = fs.Args()
		if len(args) > 0 {
			pos, args = append(pos, args[0]), args[1:]
		}
	}
	return pos, 0, true
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
	var ce *config.Error
	fmt.Fprintf(stderr, "pgbluegreen: %s\n", state.Redact(err.Error()))
	if errors.As(err, &ce) {
		return exitUsage
	}
	return exitFailed
}

// isTerminal reports whether w is a terminal (the screen draws on one).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

// oneLine is s on one line of at most max characters.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
