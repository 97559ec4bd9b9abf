package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/fit"
	"github.com/pgbluegreen/pgbluegreen/ui/logpane"
	"github.com/pgbluegreen/pgbluegreen/ui/pane"
	"github.com/pgbluegreen/pgbluegreen/ui/units"
)

// Running steps and following the run's files: what happens between a key
// press and the log.

// applyFollow takes in what the follow command read.
func (m *Model) applyFollow(msg followed) {
	if msg.err != nil {
		m.status.SetFlash("following files: " + fit.OneLine(msg.err))
	}
	m.journalOff = msg.next
	for _, e := range msg.entries {
		m.log.Add(m.entryText(e), logpane.EntryLevel(e))
		m.checks.TakeEntry(e)
	}
	if m.pendingWait > 0 {
		m.pendingWait--
	}
	if m.pendingWait == 0 {
		for _, l := range m.pending {
			m.log.Add(l.text, l.level)
		}
		m.pending = nil
	}
	if m.p.Watch {
		if msg.st != nil {
			m.st = msg.st
		}
		if msg.holder != "" {
			m.status.SetLock(msg.holder)
		} else {
			m.status.SetLock("nobody (no instance is driving)")
		}
		m.running = ""
		for _, s := range m.p.Steps {
			if r := m.st.Step(s.ID); r.Status == state.Running {
				m.running = s.ID
				if r.StartedAt != nil {
					m.runStart = *r.StartedAt
				}
			}
		}
	} else {
		m.refreshState()
	}
}

// refreshState takes the state this process's runner changed (drive mode).
func (m *Model) refreshState() {
	if m.p.Watch || m.p.Store == nil {
		return
	}
	m.st = m.p.Store.Snapshot()
}

// finished ends a run.
func (m *Model) finished(msg StepFinishedMsg) tea.Cmd {
	m.running, m.cancel = "", nil
	m.refreshState()
	if m.p.JournalPath != "" && !m.quitting {
		// Hold the outcome until the journal read that starts after this
		// point: two reads if one is in flight now.
		m.pendingWait = 1
		if m.journal.InFlight() {
			m.pendingWait = 2
		}
		m.holdNotes = true
		defer func() { m.holdNotes = false }()
	}
	d := units.Elapsed(m.now().Sub(m.runStart))
	switch {
	case msg.Err != nil && steps.IsRefused(msg.Err):
		m.note(pane.Warn, fit.OneLine(msg.Err))
	case msg.Err != nil && msg.Check:
		m.note(pane.Error, fmt.Sprintf("rehearsal of %s failed: %s; nothing changed", msg.ID, fit.OneLine(msg.Err)))
	case msg.Check:
		m.note(pane.OK, fmt.Sprintf("rehearsal of %s: every precheck passed (%s); nothing changed", msg.ID, d))
	case msg.Err != nil && msg.DryRun:
		m.note(pane.Error, fmt.Sprintf("dry run of %s failed: %s; nothing was executed", msg.ID, fit.OneLine(msg.Err)))
	case msg.Err != nil:
		rec := m.st.Step(msg.ID)
		m.note(pane.Error, fmt.Sprintf("%s %s after %s: %s", msg.ID, rec.Status, d, fit.OneLine(msg.Err)))
	case msg.DryRun:
		m.note(pane.Info, fmt.Sprintf("%s: dry run printed above; nothing was executed", msg.ID))
	default:
		m.note(pane.OK, fmt.Sprintf("%s: %s (%s)", msg.ID, msg.Outcome, d))
		// Done: the cursor moves on to the next step, the usual next key press.
		m.runbook.Advance(msg.ID)
	}
	if m.quitting {
		return tea.Quit
	}
	return m.followNow()
}

// followNow reads the files now, or once more after the read in flight.
func (m *Model) followNow() tea.Cmd {
	if m.p.JournalPath == "" && !m.p.Watch {
		return nil
	}
	f := follow{journal: m.p.JournalPath, offset: m.journalOff, store: m.p.Store, lockPath: m.p.StatePath, watch: m.p.Watch}
	return m.journal.ReadNow(f.read)
}

// requestCancel cancels the running step; the screen quits when it ends.
func (m *Model) requestCancel() {
	m.quitting = true
	if m.cancel != nil {
		m.cancel()
	}
	m.note(pane.Warn, fmt.Sprintf("cancelling %s; the screen closes when its state is saved (Ctrl+C again leaves at once)", m.running))
}

// heldNote is a note held until the journal's lines it follows are shown.
type heldNote struct {
	text  string
	level pane.Level
}

// note adds a line of the screen's own to the log.
func (m *Model) note(level pane.Level, text string) {
	text = m.now().In(m.p.Location).Format("15:04:05") + " " + text
	if m.holdNotes {
		m.pending = append(m.pending, heldNote{text: text, level: level})
		return
	}
	m.log.Add(text, level)
	m.status.SetFlash("")
}

// lineText formats one line of step output.
func (m *Model) lineText(l steps.Line) string {
	t := l.Time
	if t.IsZero() {
		t = m.now()
	}
	return fmt.Sprintf("%s %s %s", t.In(m.p.Location).Format("15:04:05"), l.Step, state.Redact(l.Text))
}

// entryText formats one journal entry.
func (m *Model) entryText(e state.Entry) string {
	var b strings.Builder
	b.WriteString(e.Time.In(m.p.Location).Format("15:04:05"))
	if e.Step != "" {
		b.WriteString(" " + e.Step)
	}
	if e.Kind != "log" {
		tag := e.Kind
		if e.Target != "" {
			tag = e.Target + " " + e.Kind
		}
		b.WriteString(" [" + tag + "]")
	}
	b.WriteString(" " + strings.Join(strings.Fields(e.Text), " "))
	if e.Duration > 0 && e.Kind != "log" {
		b.WriteString(fmt.Sprintf(" (%s)", e.Duration.Round(time.Millisecond)))
	}
	if e.Error != "" {
		b.WriteString(" error: " + strings.Join(strings.Fields(e.Error), " "))
	}
	return b.String()
}

// startRun runs a step (or its dry run) in a command.
func (m *Model) startRun(id string, p steps.RunParams) tea.Cmd {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// A dry run and a rehearsal change nothing: the step is not "running".
	m.cancel, m.running, m.runDry, m.runStart, m.runDone = cancel, id, p.DryRun || p.Check, m.now(), done
	switch {
	case p.DryRun:
		m.note(pane.Info, "dry run of "+id+": the plan read from the servers now (read-only); nothing is executed")
	case p.Check:
		m.note(pane.Info, "rehearsal of "+id+": every live precheck, then it stops; nothing changes")
	case p.Way != "":
		m.note(pane.Info, fmt.Sprintf("▶ running %s, way out %s", id, p.Way))
	default:
		m.note(pane.Info, "▶ running "+id)
	}
	return tea.Batch(runStepCmd(ctx, m.p.Runner, id, p, done), m.spinner.Tick)
}
