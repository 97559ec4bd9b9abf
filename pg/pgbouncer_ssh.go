package pg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// An ini on another host, reached over SSH (golang.org/x/crypto/ssh): the
// host's key verified against known_hosts, never bypassed; the SSH agent or
// a key file; an optional jump host. The remote file is read with cat and
// rewritten by a small POSIX shell script: written beside, fsync'd,
// renamed over, the old file kept as .pgbg-backup; then read back and
// verified before the RELOAD.

// SSHParams say how to reach the host that holds a PgBouncer's ini.
type SSHParams struct {
	Host string
	// Port is the SSH port (default 22).
	Port int
	// User is the login (default: the local user's name).
	User string
	// Key is a private key file; "" uses the SSH agent (SSH_AUTH_SOCK).
	// An encrypted key must be loaded into the agent instead.
	Key string
	// KnownHosts is the known_hosts file the host's key must be in
	// (default ~/.ssh/known_hosts).
	KnownHosts string
	// Jump is a jump host, [user@]host[:port], reached with the same
	// keys and known_hosts.
	Jump string
	// Timeout bounds the connection and each remote command (default 10s).
	Timeout time.Duration
}

// sshIni is an ini file on an SSH host.
type sshIni struct {
	on, path string
	p        SSHParams

	mu   sync.Mutex
	conn *sshConn
	// last is the file as last read (the precheck reads it): the repoint
	// inside the pause rewrites from it in one remote command, which
	// refuses if the file changed since.
	last []byte
	// staged is the change Stage wrote beside the file, which Repoint
	// renames into place.
	staged *stagedIni
}

func (s *sshIni) Method() string { return "ssh" }

// Where is the file as a URL: ssh://user@host:port/path.
func (s *sshIni) Where() string {
	return fmt.Sprintf("ssh://%s@%s:%d%s", s.p.user(), s.p.Host, s.p.port(), s.path)
}

func (s *sshIni) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disarm()
	if s.conn != nil {
		s.conn.close()
		s.conn = nil
	}
}

// run runs a remote command on the store's connection, connecting (again)
// when there is none or it broke.
func (s *sshIni) run(ctx context.Context, script string, stdin []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for try := 0; ; try++ {
		if s.conn == nil {
			c, err := dialSSH(ctx, s.p)
			if err != nil {
				return nil, err
			}
			s.conn = c
		}
		out, err := s.conn.run(ctx, s.p.timeout(), script, stdin)
		if err == nil || try > 0 || !isConnBroken(err) {
			return out, err
		}
		s.conn.close() // a connection that idled out: once more on a new one
		s.conn = nil
	}
}

func (s *sshIni) read(ctx context.Context) ([]byte, error) {
	out, err := s.run(ctx, "cat -- "+shellQuote(s.path), nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.Where(), err)
	}
	s.mu.Lock()
	s.last = out
	s.mu.Unlock()
	return out, nil
}

func (s *sshIni) ReadEntry(ctx context.Context, db string) (BouncerEntry, error) {
	text, err := s.read(ctx)
	if err != nil {
		return BouncerEntry{}, err
	}
	_, e, err := findEntry(string(text), db)
	if err != nil {
		return BouncerEntry{}, fmt.Errorf("%s: %w", s.Where(), err)
	}
	return e, nil
}

func (s *sshIni) change(ch IniChange) FileChange {
	return FileChange{On: s.on, Path: s.Where(),
		Text: changeText(ch, "over SSH: the new text written beside (fsync; staged before the pause when it can be) and renamed over it; the old file kept as "+s.path+".pgbg-backup; read back and verified")}
}

func (s *sshIni) Plan(ch IniChange) []PlanLine {
	return []PlanLine{{On: s.on, Kind: "file", Text: s.change(ch).String()}}
}

// rewriteScript replaces the file (a symlink's target) atomically with
// stdin, after checking it still holds what was read (its sha256) and
// keeping it as .pgbg-backup, then prints it as it is now (the read
// back): one remote command, since each costs round trips inside the
// pause. Exit 4: it changed since it was read, nothing written. Exit 5:
// what arrived on stdin is not all that was sent (the connection dropped
// mid-way, the client killed): nothing written.
//
// Few programs, builtins where the shell has them: on a loaded host each
// one started costs milliseconds. The backup is a hard link to the old
// file, which the rename then leaves to it alone.
const rewriteScript = `set -e
f=$1; want=$2; new=$3
if [ -L "$f" ]; then f=$(readlink -f -- "$f"); fi
t="$f.pgbg-tmp.$$"
trap 'rm -f -- "$t"' EXIT
sum=$(sha256sum < "$f"); sum=${sum%% *}
if [ "$sum" != "$want" ]; then echo "$f changed since it was read: not rewritten" >&2; exit 4; fi
cp -p -- "$f" "$t"; cat > "$t"
sum=$(sha256sum < "$t"); sum=${sum%% *}
if [ "$sum" != "$new" ]; then echo "$f: the new text arrived incomplete: not rewritten" >&2; exit 5; fi
sync -- "$t"
ln -f -- "$f" "$f.pgbg-backup"; mv -f -- "$t" "$f"
sync -- "${f%/*}/" 2>/dev/null || true
cat -- "$f"
`

// errChanged is the rewrite script's exit 4.
const errChanged = 4

// lastRead is the file as last read (the precheck reads it), read now if
// it never was.
func (s *sshIni) lastRead(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	old := s.last
	s.mu.Unlock()
	if old != nil {
		return old, nil
	}
	old, err := s.read(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.on, err)
	}
	return old, nil
}

// againIfChanged runs try once more, on the file read again, when err
// says it changed since it was read (a script's exit 4).
func (s *sshIni) againIfChanged(ctx context.Context, err error, try func(old []byte) error) error {
	var exit *ssh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != errChanged {
		return err
	}
	old, err := s.read(ctx)
	if err != nil {
		return err
	}
	return try(old)
}

func (s *sshIni) Repoint(ctx context.Context, ch IniChange) error {
	old, err := s.lastRead(ctx)
	if err != nil {
		return err
	}
	fc := s.change(ch)
	start := time.Now()
	if ok, err := s.commitStaged(ctx, ch); ok {
		fc.Journal(ctx, time.Since(start), err)
		if err != nil {
			return fmt.Errorf("%s: %w", s.on, err)
		}
		return nil
	}
	var done bool
	try := func(old []byte) (err error) {
		done, err = s.rewrite(ctx, old, ch)
		return err
	}
	err = s.againIfChanged(ctx, try(old), try)
	if !done && err == nil {
		return nil // it pointed there already: nothing written, nothing to journal
	}
	fc.Journal(ctx, time.Since(start), err)
	if err != nil {
		return fmt.Errorf("%s: %w", s.on, err)
	}
	return nil
}

// rewrite writes old with ch applied, then checks what the script read
// back. It reports false, writing nothing, when the entry points at
// ch.To already.
func (s *sshIni) rewrite(ctx context.Context, old []byte, ch IniChange) (bool, error) {
	if ch.pointsAt(string(old)) {
		return false, nil
	}
	text, err := ch.apply(string(old))
	if err != nil {
		return true, fmt.Errorf("%s: %w", s.Where(), err)
	}
	sum, newSum := sha256.Sum256(old), sha256.Sum256([]byte(text))
	script := "sh -c " + shellQuote(rewriteScript) + " pgbg " + shellQuote(s.path) + " " + hex.EncodeToString(sum[:]) + " " + hex.EncodeToString(newSum[:])
	now, err := s.run(ctx, script, []byte(text))
	if err != nil {
		return true, fmt.Errorf("rewrite %s: %w", s.Where(), err)
	}
	s.mu.Lock()
	s.last = now
	s.mu.Unlock()
	for _, t := range ch.Targets() {
		_, e, err := findEntry(string(now), t.Database)
		switch {
		case err != nil:
			return true, fmt.Errorf("read %s back: %w", s.Where(), err)
		case !entryPointsAt(e, t.Database, t.To):
			return true, fmt.Errorf("%s read back says `%s`, not %s: the change did not take", s.Where(), e.Line, t.To)
		}
	}
	return true, nil
}

func (p SSHParams) port() int {
	if p.Port > 0 {
		return p.Port
	}
	return 22
}

func (p SSHParams) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return 10 * time.Second
}

func (p SSHParams) addr() string { return joinHostPort(p.Host, p.port()) }

func joinHostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
