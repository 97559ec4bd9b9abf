package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
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

// IniChange is one repoint of a PgBouncer's database entry.
type IniChange struct {
	// Database is the entry's name in [databases].
	Database string
	// Side is "blue" or "green": where To is.
	Side string
	To   Endpoint
	// Restore marks the way back (an undo putting the source back); a
	// command store runs its restore_command for it.
	Restore bool
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
	return fmt.Sprintf("[databases] %s: host=%s port=%d dbname=%s (%s)", ch.Database, ch.To.Host, ch.To.Port, ch.To.DBName, how)
}

// verifyEntry reads db's entry back from s and checks it points at to.
func verifyEntry(ctx context.Context, s IniStore, ch IniChange) error {
	e, err := s.ReadEntry(ctx, ch.Database)
	switch {
	case errors.Is(err, ErrIniUnreadable):
		return nil // SHOW DATABASES after the RELOAD is the check
	case err != nil:
		return fmt.Errorf("read %s back: %w", s.Where(), err)
	case !entryPointsAt(e, ch.Database, ch.To):
		return fmt.Errorf("%s read back says `%s`, not %s: the change did not take", s.Where(), e.Line, ch.To)
	}
	return nil
}

// fileIni is an ini file on this host.
type fileIni struct{ on, path string }

func (f *fileIni) Method() string { return "file" }
func (f *fileIni) Where() string  { return f.path }
func (f *fileIni) Close()         {}

func (f *fileIni) ReadEntry(_ context.Context, db string) (BouncerEntry, error) {
	return ReadBouncerEntry(f.path, db)
}

func (f *fileIni) change(ch IniChange) FileChange {
	return FileChange{On: f.on, Path: f.path,
		Text: changeText(ch, "atomically: temp file, fsync, rename; the old file kept as "+f.path+".pgbg-backup; read back and verified")}
}

func (f *fileIni) Plan(ch IniChange) []PlanLine {
	return []PlanLine{{On: f.on, Kind: "file", Text: f.change(ch).String()}}
}

func (f *fileIni) Repoint(ctx context.Context, ch IniChange) error {
	if e, err := f.ReadEntry(ctx, ch.Database); err == nil && entryPointsAt(e, ch.Database, ch.To) {
		return nil
	}
	fc := f.change(ch)
	start := time.Now()
	_, err := RepointIni(f.path, ch.Database, ch.To)
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
