package ui

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// Every command here is built from values (never a closure over the model)
// and bounded by a deadline, so nothing slow runs in Update, View or Init.

// Messages of the polling chains. gen tags a chain: a message from an older
// chain (an interval change restarts it) is dropped.
type (
	lagTickMsg    struct{ gen int }
	followTickMsg struct{ gen int }
	lagResultMsg  struct {
		gen    int
		sample monitor.LagSample
		err    error
		at     time.Time
	}
	subsResultMsg struct {
		gen  int
		subs []monitor.Subscription
		err  error
		at   time.Time
	}
	versionMsg struct {
		blue    bool
		version string
		err     error
	}
	// followMsg carries what changed on disk: new journal entries, and in
	// watch mode the state file and the lock's holder.
	followMsg struct {
		gen     int
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

func lagTickCmd(gen int, every time.Duration) tea.Cmd {
	return tea.Tick(every, func(time.Time) tea.Msg { return lagTickMsg{gen: gen} })
}

func followTickCmd(gen int, every time.Duration) tea.Cmd {
	return tea.Tick(every, func(time.Time) tea.Msg { return followTickMsg{gen: gen} })
}

// readCmd runs one read of the servers, bounded by timeout, off the
// screen's loop, and hands what it read to msg: every poll of the screen
// is one.
func readCmd[T any](read func(context.Context) (T, error), timeout time.Duration, msg func(T, error) tea.Msg) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		v, err := read(ctx)
		return msg(v, err)
	}
}

// pollLagCmd reads blue's slots once.
func pollLagCmd(gen int, read LagFunc, timeout time.Duration) tea.Cmd {
	return readCmd(read, timeout, func(s monitor.LagSample, err error) tea.Msg {
		return lagResultMsg{gen: gen, sample: s, err: err, at: time.Now()}
	})
}

// pollSubsCmd reads green's subscriptions once.
func pollSubsCmd(gen int, read SubscriptionsFunc, timeout time.Duration) tea.Cmd {
	return readCmd(read, timeout, func(s []monitor.Subscription, err error) tea.Msg {
		return subsResultMsg{gen: gen, subs: s, err: err, at: time.Now()}
	})
}

// versionCmd reads one server's version.
func versionCmd(blue bool, read VersionFunc, timeout time.Duration) tea.Cmd {
	return readCmd(read, timeout, func(v string, err error) tea.Msg {
		return versionMsg{blue: blue, version: v, err: err}
	})
}

// followCmd reads the journal from offset and, in watch mode, the state file
// (store.Reload) and the lock's holder.
func followCmd(gen int, journal string, offset int64, store Store, lockPath string, watch bool) tea.Cmd {
	return func() tea.Msg {
		msg := followMsg{gen: gen, next: offset}
		if journal != "" {
			msg.entries, msg.next, msg.err = state.ReadJournal(journal, offset)
		}
		if watch && store != nil {
			st, err := store.Reload()
			if err != nil && msg.err == nil {
				msg.err = err
			}
			msg.st = st
			if h, held := state.ReadHolder(lockPath); held {
				msg.holder = h.String()
			}
		}
		return msg
	}
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
