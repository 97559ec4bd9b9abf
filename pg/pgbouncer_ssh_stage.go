package pg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
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
	// StageChange is the stage as the plan shows it and the journal
	// records it.
	StageChange(ch IniChange) FileChange
}

// stageScript writes stdin beside the file as $f.pgbg-new (checked against
// its sha256, fsync'd, renamed into that name), after checking the file
// still holds what was read, and links the file as .pgbg-backup. Exit 4:
// the file changed since it was read; exit 5: stdin arrived incomplete.
// Nothing PgBouncer reads changes. It prints "perl" when the host has it
// (the commit then runs in perl: perlCommitScript).
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
if command -v perl >/dev/null 2>&1; then echo perl; fi
`

// commitScript renames the staged text over the file, inside the pause.
// It is started right after the stage and waits for the line "commit" on
// its stdin (any other line, or none, and it exits 3 having done
// nothing): inside the pause only that line goes over the wire, to a
// shell already running. Then, only when the file is still the one
// staged against (the backup's inode, and not modified since the stage:
// shell builtins, no program started), it renames, prints "renamed" and
// fsyncs the directory in the background: the rename is durable moments
// later without the pause waiting for it. Nothing is read back here: what
// PgBouncer made of the file is read from SHOW DATABASES before the
// RESUME, and the file itself after it. Exit 4: the file changed since
// the stage, nothing done.
//
// The mv is a program started inside the pause: 10 ms on an idle host,
// 60-115 ms on the lab's two cores at 1,000 writes/s. perlCommitScript
// does the same in a perl started before the pause, where perl is there
// (perl-base is essential on Debian and Ubuntu): inside the pause, a
// read, three stats and a rename.
const commitScript = `f=$1
if [ -L "$f" ]; then f=$(readlink -f -- "$f"); fi
IFS= read -r go || exit 3
[ "$go" = commit ] || exit 3
if ! [ "$f" -ef "$f.pgbg-backup" ] || [ "$f" -nt "$f.pgbg-new" ] || ! [ -f "$f.pgbg-new" ]; then
  echo "$f changed since the new text was staged: not renamed" >&2; exit 4
fi
mv -f -- "$f.pgbg-new" "$f" || exit 1
echo renamed
(sync -- "${f%/*}/" >/dev/null 2>&1 </dev/null &)
`

// perlCommitScript is commitScript in perl (IO::Handle is in perl-base).
// The file's size, mtime and ctime are taken when it starts, right after
// the stage: any write since changes one of them (the shell's -nt, in
// whole seconds here, is kept too).
const perlCommitScript = `use strict; use IO::Handle;
my $f = $ARGV[0];
my @a = stat $f or exit 1;
$| = 1; print "ready\n";
my $go = <STDIN>;
exit 3 unless defined $go && $go eq "commit\n";
my @f = stat $f; my @b = stat "$f.pgbg-backup"; my @n = stat "$f.pgbg-new";
if (!@f || !@b || !@n || $f[0] != $b[0] || $f[1] != $b[1] || $f[9] > $n[9]
    || $f[7] != $a[7] || $f[9] != $a[9] || $f[10] != $a[10]) {
  print STDERR "$f changed since the new text was staged: not renamed\n"; exit 4;
}
rename "$f.pgbg-new", $f or die "rename $f.pgbg-new: $!\n";
print "renamed\n";
(my $d = $f) =~ s{/[^/]*$}{};
if (open my $h, "<", $d eq "" ? "/" : $d) { $h->sync; }
exit 0;
`

// commitCommand runs the commit on the ini: perlCommitScript when the
// stage found perl on the host, commitScript otherwise.
func (s *sshIni) commitCommand(perl bool) string {
	if perl {
		return "sh -c " + shellQuote(`f=$1; if [ -L "$f" ]; then f=$(readlink -f -- "$f"); fi; exec perl -e `+shellQuote(perlCommitScript)+` "$f"`) + " pgbg " + shellQuote(s.path)
	}
	return "sh -c " + shellQuote(commitScript) + " pgbg " + shellQuote(s.path)
}

// stagedIni is a change staged on the host, the text it makes, and its
// commitScript, started and waiting (nil when it could not be started:
// the commit then runs as a command of its own).
type stagedIni struct {
	ch    IniChange
	text  string
	perl  bool
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
	var staged, perl bool
	try := func(old []byte) (err error) {
		text, staged, perl, err = s.stage(ctx, old, ch)
		return err
	}
	err = s.againIfChanged(ctx, try(old), try)
	if !staged && err == nil {
		return nil // it points there already
	}
	s.StageChange(ch).Journal(ctx, time.Since(start), err)
	if err != nil {
		return fmt.Errorf("%s: stage %s: %w", s.on, s.Where(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disarm()
	s.staged = &stagedIni{ch: ch, text: text, perl: perl}
	if s.conn != nil {
		// A perl commit says when it is loaded and waiting (a cold perl
		// took 75 ms on the lab under load): the stage waits for it, so
		// the pause does not.
		ready := ""
		if perl {
			ready = "ready"
		}
		s.staged.armed, _ = s.conn.arm(ctx, s.commitCommand(perl), ready, s.p.timeout())
	}
	return nil
}

// disarm forgets the staged change, ending its waiting commit (s.mu held).
func (s *sshIni) disarm() {
	if s.staged != nil && s.staged.armed != nil {
		s.staged.armed.disarm()
	}
	s.staged = nil
}

// StageChange is the stage as the plan shows it and the journal records
// it (IniStager).
func (s *sshIni) StageChange(ch IniChange) FileChange {
	return FileChange{On: s.on, Path: s.Where() + ".pgbg-new",
		Text: changeText(ch, "staged: the new text written beside (fsync), for a rename inside the pause; PgBouncer does not read it")}
}

// stage runs stageScript for old with ch applied; false when the entry
// points at ch.To already; perl when the host has it.
func (s *sshIni) stage(ctx context.Context, old []byte, ch IniChange) (text string, staged, perl bool, err error) {
	if ch.pointsAt(string(old)) {
		return "", false, false, nil
	}
	text, err = ch.apply(string(old))
	if err != nil {
		return "", true, false, fmt.Errorf("%s: %w", s.Where(), err)
	}
	sum, newSum := sha256.Sum256(old), sha256.Sum256([]byte(text))
	script := "sh -c " + shellQuote(stageScript) + " pgbg " + shellQuote(s.path) + " " + hex.EncodeToString(sum[:]) + " " + hex.EncodeToString(newSum[:])
	out, err := s.run(ctx, script, []byte(text))
	return text, true, strings.TrimSpace(string(out)) == "perl", err
}

// commitStaged renames the text staged for ch into place and checks the
// read back. ok is false when nothing was staged for ch, or the file
// changed since (then nothing was done, and the caller rewrites it whole).
func (s *sshIni) commitStaged(ctx context.Context, ch IniChange) (ok bool, err error) {
	s.mu.Lock()
	st := s.staged
	if st == nil || !st.ch.equal(ch) {
		s.disarm()
		s.mu.Unlock()
		return false, nil
	}
	s.staged = nil
	s.mu.Unlock()
	if st.armed != nil {
		_, err = st.armed.fire(ctx, s.p.timeout(), "commit", "renamed")
		if err != nil && isConnBroken(err) {
			// The waiting shell is gone with its connection: whether it
			// renamed is unknown, and the caller's whole rewrite, which
			// reads the file first, settles it.
			return false, nil
		}
	} else {
		_, err = s.run(ctx, s.commitCommand(st.perl), []byte("commit\n"))
	}
	var exit *ssh.ExitError
	if errors.As(err, &exit) && exit.ExitStatus() == errChanged {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("rename the staged text over %s: %w", s.Where(), err)
	}
	// The file is the staged text: its sha256 was checked when it was
	// written, and the script renamed it only over the file staged against.
	s.mu.Lock()
	s.last = []byte(st.text)
	s.mu.Unlock()
	return true, nil
}
