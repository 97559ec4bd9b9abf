package ui

import (
	"context"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
)

// Every command here is built from values (never a closure over the model)
// and bounded by a deadline, so nothing slow runs in Update, View or Init.

// sourceJournal names the journal's reads.
const sourceJournal = "journal"

type (
	// followed is what changed on disk: new journal entries, and in watch
	// mode the state file and the lock's holder.
	followed struct {
		st      *state.State
		entries []state.Entry
		next    int64
		holder  string
		err     error
	}
	lineMsg        steps.Line
	linesClosedMsg struct{}
	valueSavedMsg  struct {
		key string
		err error
	}
	skippedMsg struct {
		id  string
		err error
	}
)

// StepFinishedMsg reports the end of a run started from the screen.
type StepFinishedMsg struct {
	ID      string
	DryRun  bool
	Check   bool
	Outcome steps.Outcome
	Err     error
}

// follow is one read of the files the screen follows: the journal from
// offset and, in watch mode, the state file (store.Reload) and the lock's
// holder. Its method is the read the journal's poller runs.
type follow struct {
	journal  string
	offset   int64
	store    Store
	lockPath string
	watch    bool
}

// read reads the files. A file that cannot be read is said in the result,
// not as the read's error: the journal is read again at the next tick
// whatever happened.
func (f follow) read(context.Context) (followed, error) {
	msg := followed{next: f.offset}
	if f.journal != "" {
		msg.entries, msg.next, msg.err = state.ReadJournal(f.journal, f.offset)
	}
	if f.watch && f.store != nil {
		st, err := f.store.Reload()
		if err != nil && msg.err == nil {
			msg.err = err
		}
		msg.st = st
		if h, held := state.ReadHolder(f.lockPath); held {
			msg.holder = h.String()
		}
	}
	return msg, nil
}

// waitLineCmd reads one line of step output; its handler re-arms it, so
// output streams into the log as it is produced.
func waitLineCmd(lines <-chan steps.Line) tea.Cmd {
	if lines == nil {
		return nil
	}
	return func() tea.Msg {
		l, ok := <-lines
		if !ok {
			return linesClosedMsg{}
		}
		return lineMsg(l)
	}
}

// runStepCmd runs one step off the UI goroutine; ctx cancels it.
// done is closed when Run returns, for Model.Stop.
func runStepCmd(ctx context.Context, r Runner, id string, p steps.RunParams, done chan<- struct{}) tea.Cmd {
	return func() tea.Msg {
		out, err := r.Run(ctx, id, p)
		close(done)
		return StepFinishedMsg{ID: id, DryRun: p.DryRun, Check: p.Check, Outcome: out, Err: err}
	}
}

// setValueCmd records an operator's value (checked against its type,
// journaled with the reason) through the runner.
func setValueCmd(r Runner, key, value, reason string) tea.Cmd {
	return func() tea.Msg { return valueSavedMsg{key: key, err: r.SetValue(key, value, reason)} }
}

// skipCmd marks a step skipped with the operator's reason (state and journal).
func skipCmd(r Runner, id, reason string) tea.Cmd {
	return func() tea.Msg { return skippedMsg{id: id, err: r.Skip(id, reason)} }
}
