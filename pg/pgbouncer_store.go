package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
)

// Where a PgBouncer's ini file lives and how the cutover changes it. The
// PAUSE, RELOAD and RESUME go over the network to each admin console; only
// the ini's [databases] entry is changed where the ini is: a local file, a
// file on another host reached over SSH, or whatever a configured command
// does (kubectl, Ansible, a config service). Every change is shown by the
// plan and journaled, read back and verified before the RELOAD.

// IniStore reads and changes one PgBouncer's ini.
type IniStore interface {
	// Method is "file", "ssh" or "command".
	Method() string
	// Where names the ini in plans, reports and errors.
	Where() string
	// ReadEntry reads db's [databases] entry as the ini says now.
	// ErrIniUnreadable: this store has no way to read it (a command with
	// neither an ini path nor a read_command); SHOW DATABASES is then
	// the only witness.
	ReadEntry(ctx context.Context, db string) (BouncerEntry, error)
	// Plan lists what Repoint runs for ch: file changes and commands.
	Plan(ch IniChange) []PlanLine
	// Repoint points ch.Database's entry at ch.To, journaled, then reads
	// it back and verifies it (where it can be read). An entry that points
	// there already is left alone, so a repeated undo is a no-op.
	Repoint(ctx context.Context, ch IniChange) error
	// Close ends any connection the store holds.
	Close()
}

// IniChange is one repoint of a PgBouncer's database entries: Database,
// and every entry of Also, in one write of the ini.
type IniChange struct {
	// Database is the entry's name in [databases].
	Database string
	// Side is "blue" or "green": where To is.
	Side string
	To   Endpoint
	// Restore marks the way back (an undo putting the source back); a
	// command store runs its restore_command for it.
	Restore bool
	// Also are more entries moved with Database (a cutover moves every
	// database of the cluster at once): each points at To's host and port
	// and at a database of its own there.
	Also []IniEntry
}

// IniEntry is one more [databases] entry an IniChange moves.
type IniEntry struct {
	// Name is the entry's name in [databases]; DBName is the database it
	// must name on the side it moves to.
	Name   string `json:"name"`
	DBName string `json:"dbname"`
}

// IniTarget is one entry of an IniChange with where it must point.
type IniTarget struct {
	Database string
	To       Endpoint
}

// Targets are every entry ch moves, Database first, each with where it
// must point.
func (ch IniChange) Targets() []IniTarget {
	out := []IniTarget{{Database: ch.Database, To: ch.To}}
	for _, e := range ch.Also {
		out = append(out, IniTarget{Database: e.Name, To: Endpoint{Host: ch.To.Host, Port: ch.To.Port, DBName: e.DBName}})
	}
	return out
}

// equal reports whether two changes move the same entries to the same
// places (a staged change is committed only for the very same one).
func (ch IniChange) equal(o IniChange) bool {
	if ch.Side != o.Side || ch.Restore != o.Restore || len(ch.Also) != len(o.Also) {
		return false
	}
	a, b := ch.Targets(), o.Targets()
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// pointsAt reports whether every entry of ch in the ini's text points
// where ch says already.
func (ch IniChange) pointsAt(text string) bool {
	for _, t := range ch.Targets() {
		if _, e, err := findEntry(text, t.Database); err != nil || !entryPointsAt(e, t.Database, t.To) {
			return false
		}
	}
	return true
}

// apply is the ini's text with every entry of ch pointing where ch says.
func (ch IniChange) apply(text string) (string, error) {
	for _, t := range ch.Targets() {
		var err error
		if text, err = repointText(text, t.Database, t.To); err != nil {
			return "", err
		}
	}
	return text, nil
}

// ErrIniUnreadable says a store cannot read its ini.
var ErrIniUnreadable = errors.New("the ini cannot be read here (no ini path or read_command configured)")

// NewIniStore returns b's ini store: over SSH when b.SSH is set, through
// commands when b.Command is, else the local file b.Ini. It does no I/O:
// an SSH store connects on first use.
func (b BouncerParams) NewIniStore() IniStore {
	on := "pgbouncer " + b.Name
	switch {
	case b.SSH != nil:
		return &sshIni{on: on, path: b.Ini, p: *b.SSH}
	case b.Command != nil:
		return &commandIni{on: on, name: b.Name, ini: b.Ini, p: *b.Command}
	}
	return &fileIni{on: on, path: b.Ini}
}

// IniMethod names how b's ini is reached: "file", "ssh" or "command".
func (b BouncerParams) IniMethod() string {
	switch {
	case b.SSH != nil:
		return "ssh"
	case b.Command != nil:
		return "command"
	}
	return "file"
}

// changeText says what a repoint changes, for plans and the journal.
func changeText(ch IniChange, how string) string {
	var parts []string
	for _, t := range ch.Targets() {
		parts = append(parts, fmt.Sprintf("%s: host=%s port=%d dbname=%s", t.Database, t.To.Host, t.To.Port, t.To.DBName))
	}
	return fmt.Sprintf("[databases] %s (%s)", strings.Join(parts, ", "), how)
}

// verifyEntry reads every entry of ch back from s and checks each points
// where ch says.
func verifyEntry(ctx context.Context, s IniStore, ch IniChange) error {
	for _, t := range ch.Targets() {
		e, err := s.ReadEntry(ctx, t.Database)
		switch {
		case errors.Is(err, ErrIniUnreadable):
			return nil // SHOW DATABASES after the RELOAD is the check
		case err != nil:
			return fmt.Errorf("read %s back: %w", s.Where(), err)
		case !entryPointsAt(e, t.Database, t.To):
			return fmt.Errorf("%s read back says `%s`, not %s: the change did not take", s.Where(), e.Line, t.To)
		}
	}
	return nil
}

// fileIni is an ini file on this host. A change staged before the pause
// (Stage) is renamed into place inside it.
type fileIni struct {
	on, path string
	mu       sync.Mutex
	staged   *fileStaged
}

// fileStaged is a change written beside the ini, and the ini as it was
// then: the rename happens only over that same file.
type fileStaged struct {
	ch   IniChange
	text string
	was  os.FileInfo
}

func (f *fileIni) Method() string { return "file" }
func (f *fileIni) Where() string  { return f.path }
func (f *fileIni) Close()         {}

func (f *fileIni) ReadEntry(_ context.Context, db string) (BouncerEntry, error) {
	return ReadBouncerEntry(f.path, db)
}

func (f *fileIni) change(ch IniChange) FileChange {
	return FileChange{On: f.on, Path: f.path,
		Text: changeText(ch, "the text staged before the pause renamed over it, or, when the file changed since or nothing was staged, rewritten atomically: temp file, fsync, rename; the old file kept as "+f.path+".pgbg-backup; read back and verified")}
}

func (f *fileIni) Plan(ch IniChange) []PlanLine {
	return []PlanLine{{On: f.on, Kind: "file", Text: f.change(ch).String()}}
}

// StageChange is the stage as plans show it and the journal records it
// (IniStager).
func (f *fileIni) StageChange(ch IniChange) FileChange {
	return FileChange{On: f.on, Path: f.path + ".pgbg-new",
		Text: changeText(ch, "staged: the new text written beside (fsync) and the old file kept as "+f.path+".pgbg-backup, for a rename inside the pause; PgBouncer does not read it")}
}

// Stage writes ch's text beside the ini, and the backup (IniStager): the
// four fsyncs of a whole rewrite happen before the pause, not in it.
func (f *fileIni) Stage(ctx context.Context, ch IniChange) error {
	f.mu.Lock()
	f.staged = nil
	f.mu.Unlock()
	was, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("%s: read PgBouncer's ini: %w", f.on, err)
	}
	old, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("%s: read PgBouncer's ini: %w", f.on, err)
	}
	if ch.pointsAt(string(old)) {
		return nil
	}
	start := time.Now()
	text, err := ch.apply(string(old))
	if err == nil {
		err = state.WriteFileLike(f.path+".pgbg-backup", old, was)
	}
	if err == nil {
		err = state.WriteFileLike(f.path+".pgbg-new", []byte(text), was)
	}
	f.StageChange(ch).Journal(ctx, time.Since(start), err)
	if err != nil {
		return fmt.Errorf("%s: stage %s: %w", f.on, f.path, err)
	}
	f.mu.Lock()
	f.staged = &fileStaged{ch: ch, text: text, was: was}
	f.mu.Unlock()
	return nil
}

// commitStaged renames the text staged for ch over the ini, when the ini
// is still the file it was staged against (same inode, size and mtime);
// the folder is fsync'd after, in the background. false: nothing done.
func (f *fileIni) commitStaged(ch IniChange) (bool, error) {
	f.mu.Lock()
	st := f.staged
	f.staged = nil
	f.mu.Unlock()
	if st == nil || !st.ch.equal(ch) {
		return false, nil
	}
	now, err := os.Stat(f.path)
	if err != nil || !os.SameFile(now, st.was) || now.Size() != st.was.Size() || !now.ModTime().Equal(st.was.ModTime()) {
		return false, nil
	}
	if err := os.Rename(f.path+".pgbg-new", f.path); err != nil {
		return true, fmt.Errorf("rename the staged text over %s: %w", f.path, err)
	}
	go syncDir(filepath.Dir(f.path))
	return true, nil
}

// syncDir fsyncs a folder: a rename in it is durable once it returns.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func (f *fileIni) Repoint(ctx context.Context, ch IniChange) error {
	fc := f.change(ch)
	start := time.Now()
	renamed, err := f.commitStaged(ch)
	if !renamed {
		if text, rerr := readLocal(f.path); rerr == nil && ch.pointsAt(text) {
			return nil
		}
		_, err = repointIni(f.path, ch)
	}
	if err == nil {
		err = verifyEntry(ctx, f, ch)
	}
	fc.Journal(ctx, time.Since(start), err)
	if err != nil {
		return fmt.Errorf("%s: %w", f.on, err)
	}
	return nil
}

// readLocal reads a local ini's text.
func readLocal(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read PgBouncer's ini: %w", err)
	}
	return string(b), nil
}

// BouncerParams is one PgBouncer in front of the database.
type BouncerParams struct {
	Name          string
	AdminConninfo string
	// Ini is the ini file's path: on this host, or on the SSH host when
	// SSH is set; with Command, optional (read to check the entry).
	Ini string
	// SSH, when set, reaches Ini on another host (see NewIniStore).
	SSH *SSHParams
	// Command, when set, repoints through the operator's commands.
	Command *IniCommandParams
	// Database is the database entry PgBouncer serves (and the cutover repoints).
	Database string
	// ClientConninfo connects through PgBouncer as an application would: the
	// version check and the probes go through it.
	ClientConninfo string
}
