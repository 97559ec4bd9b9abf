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
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
)

// Following the run into the log: the journal (every statement the run
// executed, in order), the runner's output when there is no journal, in
// watch mode the state file and the lock's holder, and the screen's own
// notes, a finished step's held until its lines are shown.

// sourceJournal names the journal's reads.
const sourceJournal = "journal"

// following is the journal followed: its chain (brisk while a step runs),
// its poller, the offset read up to, and the notes held for it.
type following struct {
	ticks   *poll.Chain
	journal *poll.Poller[followed]
	offset  int64
	// pending are the screen's notes about a finished step, held until the
	// journal read that follows the step (wait reads on), so they come
	// after its lines; hold says a note now is held.
	pending []heldNote
	wait    int
	hold    bool
}

func newFollowing(timeout time.Duration) following {
	c := poll.NewChain("follow")
	return following{ticks: c, journal: poll.New(c, poll.Params[followed]{Source: sourceJournal, Timeout: timeout})}
}

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
	// lineMsg is a line of the runner's output; linesClosedMsg says there
	// will be none more.
	lineMsg        steps.Line
	linesClosedMsg struct{}
)

// journalRead is one read of the files the screen follows: the journal from
// offset and, in watch mode, the state file (store.Reload) and the lock's
// holder. Its method is the read the journal's poller runs.
type journalRead struct {
	journal  string
	offset   int64
	store    Store
	lockPath string
	watch    bool
}

// read reads the files. A file that cannot be read is said in the result,
// not as the read's error: the journal is read again at the next tick
// whatever happened.
func (f journalRead) read(context.Context) (followed, error) {
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

// takeOutput takes the journal's reads and the runner's output; ok is false
// for any other message.
func (m *Model) takeOutput(msg tea.Msg) (tea.Cmd, bool) {
	switch msg := msg.(type) {
	case poll.Msg[followed]:
		if !m.follow.journal.Take(msg, m.now()) {
			return nil, true
		}
		m.applyFollow(msg.Value)
		if m.follow.journal.Again() {
			return m.followNow(), true
		}
		return nil, true
	case lineMsg:
		m.refreshState()
		if m.p.JournalPath == "" {
			m.checks.TakeLine(msg.Step, msg.Text)
			m.log.Add(m.lineText(steps.Line(msg)), logpane.LevelOf(msg.Level))
			return waitLineCmd(m.p.Lines), true
		}
		// The journal has the line too, in order with the statements the
		// step ran: read it now rather than show the line out of order.
		return tea.Batch(waitLineCmd(m.p.Lines), m.followNow()), true
	case linesClosedMsg:
		return nil, true
	}
	return nil, false
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

// followEvery is the pace of following the files: brisk while a step runs,
// so its statements show as they happen.
func (m *Model) followEvery() time.Duration {
	if m.run.id != "" {
		return 300 * time.Millisecond
	}
	return time.Second
}

// followNow reads the files now, or once more after the read in flight.
func (m *Model) followNow() tea.Cmd {
	if m.p.JournalPath == "" && !m.p.Watch {
		return nil
	}
	f := journalRead{journal: m.p.JournalPath, offset: m.follow.offset, store: m.p.Store, lockPath: m.p.StatePath, watch: m.p.Watch}
	return m.follow.journal.ReadNow(f.read)
}

// applyFollow takes in what the follow command read.
func (m *Model) applyFollow(msg followed) {
	if msg.err != nil {
		m.status.SetFlash("following files: " + fit.OneLine(msg.err))
	}
	m.follow.offset = msg.next
	for _, e := range msg.entries {
		m.log.Add(m.entryText(e), logpane.EntryLevel(e))
		m.checks.TakeEntry(e)
	}
	if m.follow.wait > 0 {
		m.follow.wait--
	}
	if m.follow.wait == 0 {
		for _, l := range m.follow.pending {
			m.log.Add(l.text, l.level)
		}
		m.follow.pending = nil
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
		m.run.id = ""
		for _, s := range m.p.Steps {
			if r := m.st.Step(s.ID); r.Status == state.Running {
				m.run.id = s.ID
				if r.StartedAt != nil {
					m.run.start = *r.StartedAt
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

// heldNote is a note held until the journal's lines it follows are shown.
type heldNote struct {
	text  string
	level pane.Level
}

// note adds a line of the screen's own to the log.
func (m *Model) note(level pane.Level, text string) {
	text = m.now().In(m.p.Location).Format("15:04:05") + " " + text
	if m.follow.hold {
		m.follow.pending = append(m.follow.pending, heldNote{text: text, level: level})
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
