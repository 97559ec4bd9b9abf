package pg

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshConn is one SSH connection (through a jump host when configured).
type sshConn struct {
	client *ssh.Client
	jump   *ssh.Client
}

func (c *sshConn) close() {
	c.client.Close()
	if c.jump != nil {
		c.jump.Close()
	}
}

// ErrHostKey marks a host whose key is not the one known_hosts holds, or
// that known_hosts does not hold: the connection is refused.
var ErrHostKey = errors.New("host key not verified")

// dialSSH connects to p's host, through p.Jump when set, verifying every
// host key against known_hosts.
func dialSSH(ctx context.Context, p SSHParams) (*sshConn, error) {
	auth, closeAuth, err := sshAuth(p)
	if err != nil {
		return nil, err
	}
	defer closeAuth()
	khFile := p.KnownHosts
	if khFile == "" {
		home, _ := os.UserHomeDir()
		khFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	kh, err := knownhosts.New(khFile)
	if err != nil {
		return nil, fmt.Errorf("SSH: read known_hosts %s: %w (set ssh.known_hosts to the file that holds the host's key)", khFile, err)
	}
	config := func(u, addr string) *ssh.ClientConfig {
		return &ssh.ClientConfig{User: u, Auth: auth, Timeout: p.timeout(),
			HostKeyCallback:   verifyHostKey(kh, khFile),
			HostKeyAlgorithms: knownAlgorithms(kh, addr)}
	}
	c := &sshConn{}
	target := p.addr()
	if p.Jump != "" {
		ju, jaddr, err := parseJump(p.Jump, p.user())
		if err != nil {
			return nil, err
		}
		conn, err := dialTCP(ctx, jaddr, p.timeout())
		if err != nil {
			return nil, fmt.Errorf("SSH: connect to jump host %s: %w", jaddr, err)
		}
		if c.jump, err = handshake(conn, jaddr, config(ju, jaddr)); err != nil {
			return nil, fmt.Errorf("SSH: jump host %s@%s: %w", ju, jaddr, err)
		}
		tconn, err := c.jump.DialContext(ctx, "tcp", target)
		if err != nil {
			c.jump.Close()
			return nil, fmt.Errorf("SSH: from jump host %s to %s: %w", jaddr, target, err)
		}
		if c.client, err = handshake(tconn, target, config(p.user(), target)); err != nil {
			c.jump.Close()
			return nil, fmt.Errorf("SSH: %s@%s (through %s): %w", p.user(), target, jaddr, err)
		}
		return c, nil
	}
	conn, err := dialTCP(ctx, target, p.timeout())
	if err != nil {
		return nil, fmt.Errorf("SSH: connect to %s: %w", target, err)
	}
	if c.client, err = handshake(conn, target, config(p.user(), target)); err != nil {
		return nil, fmt.Errorf("SSH: %s@%s: %w", p.user(), target, err)
	}
	return c, nil
}

func dialTCP(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake is bounded too: handshake lifts it once connected.
	_ = conn.SetDeadline(time.Now().Add(timeout))
	return conn, nil
}

// handshake runs the SSH handshake on conn and lifts its deadline.
func handshake(conn net.Conn, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

// verifyHostKey is known_hosts verification with an error that says what
// to do: an unknown host is never added, a changed key never accepted.
func verifyHostKey(kh ssh.HostKeyCallback, file string) ssh.HostKeyCallback {
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := kh(host, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return fmt.Errorf("%w: the key of %s is revoked in %s", ErrHostKey, host, file)
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return fmt.Errorf("%w: %s is not in %s; check its key's fingerprint (%s) with the host's administrator, then add it (ssh-keyscan -p PORT HOST >> %s)",
				ErrHostKey, host, file, ssh.FingerprintSHA256(key), file)
		case errors.As(err, &ke):
			return fmt.Errorf("%w: the key %s offers (%s %s) is not the one %s holds at line %d: the host was reinstalled, or the connection is intercepted; nothing was changed there. Check the fingerprint, then correct %s",
				ErrHostKey, host, key.Type(), ssh.FingerprintSHA256(key), file, ke.Want[0].Line, file)
		}
		return fmt.Errorf("%w: %v", ErrHostKey, err)
	}
}

var (
	probeKeyOnce sync.Once
	probeKey     ssh.PublicKey
)

// knownAlgorithms are the host key algorithms known_hosts holds for addr,
// asked for first so the server shows the key that can be verified (a
// host known by its ed25519 key must not be refused for offering RSA).
// Asking the callback about a key nobody has lists the known ones.
func knownAlgorithms(kh ssh.HostKeyCallback, addr string) []string {
	probeKeyOnce.Do(func() {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err == nil {
			probeKey, _ = ssh.NewPublicKey(pub)
		}
	})
	if probeKey == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := kh(addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, probeKey); !errors.As(err, &ke) {
		return nil
	}
	var out []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			out = append(out, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			out = append(out, t)
		}
	}
	return out
}

// sshAuth is the key file's signer and the agent's, whichever are there.
func sshAuth(p SSHParams) ([]ssh.AuthMethod, func(), error) {
	var methods []ssh.AuthMethod
	closeAll := func() {}
	if p.Key != "" {
		b, err := os.ReadFile(p.Key)
		if err != nil {
			return nil, closeAll, fmt.Errorf("SSH: read key %s: %w", p.Key, err)
		}
		signer, err := ssh.ParsePrivateKey(b)
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			return nil, closeAll, fmt.Errorf("SSH: key %s is encrypted: load it into the SSH agent (ssh-add %s) and leave ssh.key unset", p.Key, p.Key)
		case err != nil:
			return nil, closeAll, fmt.Errorf("SSH: key %s: %w", p.Key, err)
		}
		methods = append(methods, ssh.PublicKeys(signer))
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
			closeAll = func() { conn.Close() }
		}
	}
	if len(methods) == 0 {
		return nil, closeAll, fmt.Errorf("SSH: no key: set ssh.key to a private key file, or start an SSH agent (SSH_AUTH_SOCK) holding one")
	}
	return methods, closeAll, nil
}

func (p SSHParams) user() string {
	if p.User != "" {
		return p.User
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// parseJump reads [user@]host[:port].
func parseJump(s, defUser string) (string, string, error) {
	u := defUser
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		u, s = s[:at], s[at+1:]
	}
	host, port := s, 22
	if h, ps, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(ps)
		if err != nil || n <= 0 || n > 65535 {
			return "", "", fmt.Errorf("SSH: jump host %q: bad port", s)
		}
		host, port = h, n
	}
	if host == "" {
		return "", "", fmt.Errorf("SSH: jump host %q: no host", s)
	}
	return u, joinHostPort(host, port), nil
}

// run runs a command on the host with stdin, bounded by timeout and ctx,
// and returns its stdout; a failure's error ends with its stderr's last line.
func (c *sshConn) run(ctx context.Context, timeout time.Duration, cmd string, stdin []byte) ([]byte, error) {
	sess, err := c.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("SSH session: %w", err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if stdin != nil {
		sess.Stdin = bytes.NewReader(stdin)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		return nil, fmt.Errorf("remote command: %w", ctx.Err())
	}
	if err != nil {
		if last := lastLine(stderr.String()); last != "" {
			return stdout.Bytes(), fmt.Errorf("%w: %s", err, last)
		}
		return stdout.Bytes(), err
	}
	return stdout.Bytes(), nil
}

// armed is a remote command started and waiting for one line on its
// stdin: what it does then costs neither a session's setup nor a shell's
// start, which on a loaded host is most of a remote command's time.
type armed struct {
	sess   *ssh.Session
	stdin  io.WriteCloser
	stdout lineWatch
	stderr bytes.Buffer
	done   chan error
}

// lineWatch is a command's stdout, written by the SSH library as it comes:
// seen is closed once a line equal to want has arrived.
type lineWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.want != "" && w.seen != nil && slices.Contains(strings.Split(w.buf.String(), "\n"), w.want) {
		close(w.seen)
		w.seen = nil
	}
	return len(p), nil
}

func (w *lineWatch) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

// arm starts cmd, which should read one line before it does anything;
// with ready set, it waits (at most timeout) until cmd prints that line.
func (c *sshConn) arm(ctx context.Context, cmd, ready string, timeout time.Duration) (*armed, error) {
	sess, err := c.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("SSH session: %w", err)
	}
	a := &armed{sess: sess, done: make(chan error, 1)}
	seen := make(chan struct{})
	if ready != "" {
		a.stdout.want, a.stdout.seen = ready, seen
	}
	sess.Stdout, sess.Stderr = &a.stdout, &a.stderr
	if a.stdin, err = sess.StdinPipe(); err != nil {
		sess.Close()
		return nil, fmt.Errorf("SSH session: %w", err)
	}
	if err := sess.Start(cmd); err != nil {
		sess.Close()
		return nil, fmt.Errorf("SSH session: %w", err)
	}
	go func() { a.done <- sess.Wait() }()
	if ready == "" {
		return a, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case <-seen:
		return a, nil
	case err := <-a.done:
		a.done <- err
		a.disarm()
		return nil, fmt.Errorf("SSH session: the armed command ended before it was ready: %v", err)
	case <-ctx.Done():
		a.disarm()
		return nil, fmt.Errorf("SSH session: the armed command was not ready: %w", ctx.Err())
	}
}

// fire sends line to the armed command and waits, bounded by timeout and
// ctx, until it ends or prints the line done (when not empty): the
// command's work may go on after it, and its session is closed once it
// ends. It returns the stdout so far, and the error as run gives it.
func (a *armed) fire(ctx context.Context, timeout time.Duration, line, done string) ([]byte, error) {
	seen := make(chan struct{})
	a.stdout.mu.Lock()
	if done != "" {
		a.stdout.want, a.stdout.seen = done, seen
	}
	a.stdout.mu.Unlock()
	if _, err := io.WriteString(a.stdin, line+"\n"); err != nil {
		a.sess.Close()
		return nil, fmt.Errorf("SSH session: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case err := <-a.done:
		a.sess.Close()
		if err != nil {
			if last := lastLine(a.stderr.String()); last != "" {
				return a.stdout.bytes(), fmt.Errorf("%w: %s", err, last)
			}
			return a.stdout.bytes(), err
		}
		return a.stdout.bytes(), nil
	case <-seen:
		go func() {
			<-a.done
			a.sess.Close()
		}()
		return a.stdout.bytes(), nil
	case <-ctx.Done():
		_ = a.sess.Signal(ssh.SIGKILL)
		a.sess.Close()
		return nil, fmt.Errorf("remote command: %w", ctx.Err())
	}
}

// disarm closes the command's stdin: it reads no line and exits having
// done nothing.
func (a *armed) disarm() {
	a.stdin.Close()
	a.sess.Close()
}

// isConnBroken reports whether err means the connection is gone (a
// session could not be opened on it), not that the command failed.
func isConnBroken(err error) bool {
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		return false
	}
	return errors.Is(err, io.EOF) || strings.Contains(err.Error(), "SSH session")
}
