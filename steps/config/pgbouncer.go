package config

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// PgBouncerConfig is one PgBouncer in front of blue: its admin console, the
// database entry it serves, and how its ini is reached: a local file (ini),
// a file on another host over SSH (ini + ssh), or the operator's commands
// (repoint_command, restore_command, read_command).
type PgBouncerConfig struct {
	Name          string `yaml:"name"`
	AdminConninfo string `yaml:"admin_conninfo"`
	// Ini is the ini's path: on this host, or on ssh.host with ssh.
	Ini      string `yaml:"ini"`
	Database string `yaml:"database"`
	// SSH reaches Ini on another host.
	SSH *SSHConfig `yaml:"ssh"`
	// RepointCommand points the entry at the target (sh -c, with
	// PGBG_HOST, PGBG_PORT, PGBG_DBNAME, PGBG_TARGET, PGBG_DATABASE and
	// PGBG_PGBOUNCER in its environment); RestoreCommand puts the source
	// back after a failure (default: RepointCommand with the source's
	// values); ReadCommand prints the ini, to check it (optional; ini may
	// name a local copy instead).
	RepointCommand string   `yaml:"repoint_command"`
	RestoreCommand string   `yaml:"restore_command"`
	ReadCommand    string   `yaml:"read_command"`
	CommandTimeout Duration `yaml:"command_timeout"`
}

// SSHConfig says how to reach a PgBouncer's host over SSH. The host's key
// must be in known_hosts: an unknown or changed key is refused.
type SSHConfig struct {
	Host string `yaml:"host"`
	User string `yaml:"user"`
	Port int    `yaml:"port"`
	// Key is a private key file; unset, the SSH agent (SSH_AUTH_SOCK).
	Key string `yaml:"key"`
	// KnownHosts defaults to ~/.ssh/known_hosts.
	KnownHosts string `yaml:"known_hosts"`
	// Jump is a jump host: [user@]host[:port].
	Jump string `yaml:"jump"`
}

// BouncerParams maps one configured PgBouncer onto pg's, with the client
// connection string the probes use.
func (b PgBouncerConfig) BouncerParams(client string) pg.BouncerParams {
	p := pg.BouncerParams{Name: BouncerName(b), AdminConninfo: b.AdminConninfo, Ini: b.Ini, Database: b.Database, ClientConninfo: client}
	if b.SSH != nil {
		p.SSH = &pg.SSHParams{Host: b.SSH.Host, Port: b.SSH.Port, User: b.SSH.User, Key: expandHome(b.SSH.Key),
			KnownHosts: expandHome(b.SSH.KnownHosts), Jump: b.SSH.Jump}
	}
	if b.RepointCommand != "" {
		p.Command = &pg.IniCommandParams{Repoint: b.RepointCommand, Restore: b.RestoreCommand, Read: b.ReadCommand, Timeout: b.CommandTimeout.Duration}
	}
	return p
}

// expandHome reads a leading ~/ as the home folder, as ssh does.
func expandHome(path string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return path
}

// validatePgBouncers returns every problem with cutover.pgbouncer, one
// line each.
func (c *Config) validatePgBouncers() []string {
	var p []string
	bad := func(format string, args ...any) { p = append(p, "config: "+fmt.Sprintf(format, args...)) }
	if c.Cutover.Method == "pgbouncer" && len(c.Cutover.PgBouncer) == 0 {
		bad("cutover.pgbouncer is empty; the pgbouncer method needs at least one PgBouncer (admin_conninfo, database, and ini, ssh or repoint_command)")
	}
	names := map[string]int{}
	for i, b := range c.Cutover.PgBouncer {
		key := fmt.Sprintf("cutover.pgbouncer[%d]", i)
		if b.Name != "" {
			key = fmt.Sprintf("cutover.pgbouncer[%d] (%s)", i, b.Name)
		}
		if b.AdminConninfo == "" || b.Database == "" {
			bad("%s needs admin_conninfo and database", key)
		} else if _, err := pgconn.ParseConfig(b.AdminConninfo); err != nil {
			bad("%s.admin_conninfo: %v", key, err)
		}
		if j, seen := names[BouncerName(b)]; seen {
			bad("%s has the same name as cutover.pgbouncer[%d] (%s): give each PgBouncer its own name", key, j, BouncerName(b))
		}
		names[BouncerName(b)] = i
		cmd := b.RepointCommand != ""
		switch {
		case b.SSH != nil && cmd:
			bad("%s has both ssh and repoint_command: use one way to change its ini", key)
		case b.SSH != nil:
			p = append(p, b.SSH.validate(key, b.Ini)...)
		case cmd:
			if b.Ini != "" && !filepath.IsAbs(b.Ini) {
				bad("%s.ini %q must be an absolute path", key, b.Ini)
			}
		case b.Ini == "":
			bad("%s needs ini (a local file), ini with ssh (a file on another host), or repoint_command", key)
		case !filepath.IsAbs(b.Ini):
			bad("%s.ini %q must be an absolute path", key, b.Ini)
		}
		if !cmd && (b.RestoreCommand != "" || b.ReadCommand != "" || b.CommandTimeout.Duration != 0) {
			bad("%s sets restore_command, read_command or command_timeout without repoint_command", key)
		}
		if b.CommandTimeout.Duration < 0 {
			bad("%s.command_timeout must be positive", key)
		}
	}
	return p
}

func (s *SSHConfig) validate(key, ini string) []string {
	var p []string
	bad := func(format string, args ...any) { p = append(p, "config: "+fmt.Sprintf(format, args...)) }
	if s.Host == "" {
		bad("%s.ssh.host is missing (the host that holds the ini)", key)
	}
	if s.Port < 0 || s.Port > 65535 {
		bad("%s.ssh.port %d is not a port (1-65535; default 22)", key, s.Port)
	}
	if ini == "" || !strings.HasPrefix(ini, "/") {
		bad("%s.ini must be the absolute path of the ini on %s", key, cmp.Or(s.Host, "<the SSH host>"))
	}
	for _, f := range []struct{ name, v string }{{"key", s.Key}, {"known_hosts", s.KnownHosts}} {
		if f.v != "" && !filepath.IsAbs(f.v) && !strings.HasPrefix(f.v, "~/") {
			bad("%s.ssh.%s %q must be an absolute path", key, f.name, f.v)
		}
	}
	if s.Jump != "" {
		hp := s.Jump[strings.LastIndexByte(s.Jump, '@')+1:]
		if h, port, err := net.SplitHostPort(hp); err == nil {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || h == "" {
				bad("%s.ssh.jump %q: write [user@]host[:port]", key, s.Jump)
			}
		} else if hp == "" || strings.Contains(hp, ":") && !strings.HasPrefix(hp, "[") {
			bad("%s.ssh.jump %q: write [user@]host[:port]", key, s.Jump)
		}
	}
	return p
}
