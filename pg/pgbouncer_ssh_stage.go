package pg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"
)

// Staging an SSH ini before the pause. Writing the new text over SSH
// (copy, write, checksum, fsync, rename, fsync) took 130-190 ms on the lab
// under load, all of it inside the pause, where it was most of the pause.
// PgBouncer reads its ini only at a RELOAD, so the new text can be written
// beside the file before writes stop (pgbouncer.ini.pgbg-new, fsync'd, the
// backup linked); inside the pause one remote command checks the file is
// the one staged against and renames the new text over it.

// IniStager is an IniStore that can stage a change before the pause.
type IniStager interface {
	// Stage writes ch's text beside the ini, where PgBouncer does not read
	// it; the next Repoint with the same change renames it into place. An
	// entry that points at ch.To already stages nothing.
	Stage(ctx context.Context, ch IniChange) error
}

// stageScript writes stdin beside the file as $f.pgbg-new (checked against
// its sha256, fsync'd, renamed into that name), after checking the file
// still holds what was read, and links the file as .pgbg-backup. Exit 4:
// the file changed since it was read; exit 5: stdin arrived incomplete.
// Nothing PgBouncer reads changes.
const stageScript = `set -e
f=$1; want=$2; new=$3
if [ -L "$f" ]; then f=$(readlink -f -- "$f"); fi
t="$f.pgbg-new.$$"
trap 'rm -f -- "$t"' EXIT
sum=$(sha256sum < "$f"); sum=${sum%% *}
if [ "$sum" != "$want" ]; then echo "$f changed since it was read: not staged" >&2; exit 4; fi
cp -p -- "$f" "$t"; cat > "$t"
sum=$(sha256sum < "$t"); sum=${sum%% *}
if [ "$sum" != "$new" ]; then echo "$f: the new text arrived incomplete: not staged" >&2; exit 5; fi
sync -- "$t"
mv -f -- "$t" "$f.pgbg-new"
ln -f -- "$f" "$f.pgbg-backup"
`

// commitScript renames the staged text over the file, inside the pause.
// It is started right after the stage and waits for the line "commit" on
// its stdin (any other line, or none, and it exits 3 having done
// nothing): inside the pause only that line goes over the wire, to a
// shell already running. Then, only when the file is still the one
// staged against (the backup's inode, and not modified since the stage:
// shell builtins, no program started), it renames and prints the file
// (the read back). The directory is fsync'd in the background: the rename
// is durable moments later without the pause waiting for it. Exit 4: the
// file changed since the stage, nothing done.
const commitScript = `f=$1
if [ -L "$f" ]; then f=$(readlink -f -- "$f"); fi
IFS= read -r go || exit 3
[ "$go" = commit ] || exit 3
if ! [ "$f" -ef "$f.pgbg-backup" ] || [ "$f" -nt "$f.pgbg-new" ] || ! [ -f "$f.pgbg-new" ]; then
  echo "$f changed since the new text was staged: not renamed" >&2; exit 4
fi
mv -f -- "$f.pgbg-new" "$f" || exit 1
(sync -- "${f%/*}/" >/dev/null 2>&1 </dev/null &)
cat -- "$f"
`

// stagedIni is a change staged on the host, the text it makes, and its
// commitScript, started and waiting (nil when it could not be started:
// the commit then runs as a command of its own).
type stagedIni struct {
	ch    IniChange
	text  string
	armed *armed
}

// Stage writes ch's new text beside the remote ini (IniStager).
func (s *sshIni) Stage(ctx context.Context, ch IniChange) error {
	old, err := s.lastRead(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	var text string
	var staged bool
	try := func(old []byte) (err error) {
		text, staged, err = s.stage(ctx, old, ch)
		return err
	}
	err = s.againIfChanged(ctx, try(old), try)
	if !staged && err == nil {
		return nil // it points there already
	}
	s.stageChange(ch).Journal(ctx, time.Since(start), err)
	if err != nil {
		return fmt.Errorf("%s: stage %s: %w", s.on, s.Where(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disarm()
	s.staged = &stagedIni{ch: ch, text: text}
	if s.conn != nil {
		s.staged.armed, _ = s.conn.arm(s.commitCommand())
	}
	return nil
}

// commitCommand runs commitScript on the ini.
func (s *sshIni) commitCommand() string {
	return "sh -c " + shellQuote(commitScript) + " pgbg " + shellQuote(s.path)
}

// disarm forgets the staged change, ending its waiting commit (s.mu held).
func (s *sshIni) disarm() {
	if s.staged != nil && s.staged.armed != nil {
		s.staged.armed.disarm()
	}
	s.staged = nil
}

// stageChange is the stage as the plan shows it and the journal records it.
func (s *sshIni) stageChange(ch IniChange) FileChange {
	return FileChange{On: s.on, Path: s.Where() + ".pgbg-new",
		Text: changeText(ch, "staged: the new text written beside (fsync), for a rename inside the pause; PgBouncer does not read it")}
}

// stage runs stageScript for old with ch applied; false when the entry
// points at ch.To already.
func (s *sshIni) stage(ctx context.Context, old []byte, ch IniChange) (string, bool, error) {
	if _, e, err := findEntry(string(old), ch.Database); err == nil && entryPointsAt(e, ch.Database, ch.To) {
		return "", false, nil
	}
	text, err := repointText(string(old), ch.Database, ch.To)
	if err != nil {
		return "", true, fmt.Errorf("%s: %w", s.Where(), err)
	}
	sum, newSum := sha256.Sum256(old), sha256.Sum256([]byte(text))
	script := "sh -c " + shellQuote(stageScript) + " pgbg " + shellQuote(s.path) + " " + hex.EncodeToString(sum[:]) + " " + hex.EncodeToString(newSum[:])
	_, err = s.run(ctx, script, []byte(text))
	return text, true, err
}

// commitStaged renames the text staged for ch into place and checks the
// read back. ok is false when nothing was staged for ch, or the file
// changed since (then nothing was done, and the caller rewrites it whole).
func (s *sshIni) commitStaged(ctx context.Context, ch IniChange) (ok bool, err error) {
	s.mu.Lock()
	st := s.staged
	if st == nil || st.ch != ch {
		s.disarm()
		s.mu.Unlock()
		return false, nil
	}
	s.staged = nil
	s.mu.Unlock()
	var now []byte
	if st.armed != nil {
		now, err = st.armed.fire(ctx, s.p.timeout(), "commit")
		if err != nil && isConnBroken(err) {
			// The waiting shell is gone with its connection: whether it
			// renamed is unknown, and the caller's whole rewrite, which
			// reads the file first, settles it.
			return false, nil
		}
	} else {
		now, err = s.run(ctx, s.commitCommand(), []byte("commit\n"))
	}
	var exit *ssh.ExitError
	if errors.As(err, &exit) && exit.ExitStatus() == errChanged {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("rename the staged text over %s: %w", s.Where(), err)
	}
	s.mu.Lock()
	s.last = now
	s.mu.Unlock()
	if string(now) != st.text {
		return true, fmt.Errorf("%s read back is not the text staged: the change did not take", s.Where())
	}
	return true, nil
}
