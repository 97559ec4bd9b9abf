package lab

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// The lab's SSH server: Debian's openssh-server, run by the lab as its OS
// user on loopback (never the system's sshd), with a host key, a client
// key and a known_hosts file made in DIR/ssh. The second PgBouncer's ini
// is reached through it only, as on a real PgBouncer host. Run as an
// unprivileged user, sshd logs in only that user and needs no privilege
// separation folder.

// SSHD describes the lab's SSH server and the files a client needs.
type SSHD struct {
	Port int `json:"port"`
	// User is the login: the lab's OS user, who owns the second
	// PgBouncer's ini.
	User string `json:"user"`
	// Key is the client's private key; KnownHosts holds the server's key.
	Key        string `json:"key"`
	KnownHosts string `json:"known_hosts"`
	Config     string `json:"config"`
	PidFile    string `json:"pidfile"`
	LogFile    string `json:"logfile"`
}

// sshdBinary finds openssh-server's sshd.
func sshdBinary() (string, error) {
	for _, p := range []string{"/usr/sbin/sshd", "/usr/local/sbin/sshd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("sshd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("sshd not found: install openssh-server (`apt-get install openssh-server`, or `make deps`)")
}

// HasSSHD reports whether openssh-server is installed: without it the lab
// has no second PgBouncer.
func HasSSHD() bool { _, err := sshdBinary(); return err == nil }

// writeSSHFiles makes the host key, the client key, authorized_keys,
// known_hosts and sshd_config in DIR/ssh, keeping keys that exist (a
// second `lab up` must not change the host's key under known_hosts).
func writeSSHFiles(u oscmd.User, s *SSHD) error {
	dir := filepath.Dir(s.Config)
	if err := u.MkdirFor(dir, 0o755); err != nil {
		return err
	}
	hostKey, clientKey := filepath.Join(dir, "ssh_host_ed25519_key"), s.Key
	hostPub, err := ensureKey(hostKey)
	if err != nil {
		return err
	}
	clientPub, err := ensureKey(clientKey)
	if err != nil {
		return err
	}
	// sshd, run as the OS user, must read its host key: its own, 0600.
	if err := u.Chown(hostKey); err != nil {
		return err
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := state.WriteFileAtomic(authorized, ssh.MarshalAuthorizedKey(clientPub), 0o644); err != nil {
		return err
	}
	known := knownHostsLine(s.Port, hostPub)
	if err := state.WriteFileAtomic(s.KnownHosts, []byte(known), 0o644); err != nil {
		return err
	}
	conf := fmt.Sprintf(`# written by pgbluegreen lab up: the lab's own sshd, on loopback
Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers %s
`, s.Port, hostKey, authorized, s.PidFile, s.User)
	return state.WriteFileAtomic(s.Config, []byte(conf), 0o644)
}

// knownHostsLine is the known_hosts line for the lab's sshd.
func knownHostsLine(port int, key ssh.PublicKey) string {
	return "[127.0.0.1]:" + strconv.Itoa(port) + " " + string(ssh.MarshalAuthorizedKey(key))
}

// ensureKey makes an ed25519 key in OpenSSH's format at path (0600)
// unless one is there, and returns its public half.
func ensureKey(path string) (ssh.PublicKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		signer, err := ssh.ParsePrivateKey(b)
		if err == nil {
			return signer.PublicKey(), nil
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "pgbluegreen lab")
	if err != nil {
		return nil, err
	}
	if err := state.WriteFileAtomic(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("writing the SSH key %s: %w", path, err)
	}
	return ssh.NewPublicKey(pub)
}

// sshdPID is the running sshd's pid, 0 if none.
func sshdPID(s *SSHD) int {
	pid := oscmd.ReadPid(s.PidFile)
	if !oscmd.PidAlive(pid) {
		return 0
	}
	return pid
}

// startSSHD starts the lab's sshd as u (it daemonizes and writes its
// pidfile) and waits until it accepts connections. It returns false when
// it was running already.
func startSSHD(ctx context.Context, u oscmd.User, s *SSHD) (bool, error) {
	if sshdPID(s) != 0 {
		return false, nil
	}
	bin, err := sshdBinary()
	if err != nil {
		return false, err
	}
	_ = os.Remove(s.PidFile)
	if f, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		f.Close()
		if err := u.Chown(s.LogFile); err != nil {
			return false, err
		}
	}
	cmd := u.Command(context.WithoutCancel(ctx), bin, "-f", s.Config, "-E", s.LogFile)
	if err := oscmd.RunToFile(cmd, filepath.Join(filepath.Dir(s.LogFile), "sshd.start.log")); err != nil {
		return false, fmt.Errorf("starting sshd: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			if sshdPID(s) != 0 {
				return true, nil
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(s.LogFile)
			return true, fmt.Errorf("sshd did not accept connections on %s (log: %s)", addr, oscmd.LastLine(string(log)))
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-time.After(30 * time.Millisecond):
		}
	}
}

// stopSSHD stops the lab's sshd (its listener: sessions in progress end
// with their commands).
func stopSSHD(ctx context.Context, s *SSHD) error {
	pid := sshdPID(s)
	if pid == 0 {
		return nil
	}
	if err := stopPid(ctx, pid, syscall.SIGTERM, 10*time.Second); err != nil {
		return fmt.Errorf("stopping sshd: %w", err)
	}
	_ = os.Remove(s.PidFile)
	return nil
}
