package config

import (
	"strings"
	"testing"
	"time"
)

// Each way of reaching a PgBouncer's ini is read from the file, and every
// mistake in cutover.pgbouncer is its own line naming the entry.
func TestPgBouncerConfig(t *testing.T) {
	base := strings.Split(minimalConfig, "cutover:")[0]
	good := base + `cutover:
  pgbouncer:
    - name: local
      admin_conninfo: "host=127.0.0.1 port=6432 dbname=pgbouncer user=pgbouncer"
      ini: /etc/pgbouncer/pgbouncer.ini
      database: app
    - name: remote
      admin_conninfo: "host=10.0.0.6 port=6432 dbname=pgbouncer user=pgbouncer"
      ini: /etc/pgbouncer/pgbouncer.ini
      database: app
      ssh: {host: 10.0.0.6, user: pgb, port: 2222, key: /keys/id, known_hosts: ~/.ssh/known_hosts, jump: ops@bastion:22}
    - name: k8s
      admin_conninfo: "host=pgbouncer.svc port=6432 dbname=pgbouncer user=pgbouncer"
      database: app
      repoint_command: ./repoint.sh
      restore_command: ./restore.sh
      command_timeout: 5s
`
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	local, remote, k8s := c.Cutover.PgBouncer[0].BouncerParams(""), c.Cutover.PgBouncer[1].BouncerParams(""), c.Cutover.PgBouncer[2].BouncerParams("")
	if local.IniMethod() != "file" || remote.IniMethod() != "ssh" || k8s.IniMethod() != "command" {
		t.Errorf("methods: %s %s %s", local.IniMethod(), remote.IniMethod(), k8s.IniMethod())
	}
	if s := remote.SSH; s.Host != "10.0.0.6" || s.Port != 2222 || s.User != "pgb" || s.Key != "/keys/id" || strings.HasPrefix(s.KnownHosts, "~") || s.Jump != "ops@bastion:22" {
		t.Errorf("ssh: %+v", s)
	}
	if k := k8s.Command; k.Repoint != "./repoint.sh" || k.Restore != "./restore.sh" || k.Timeout != 5*time.Second {
		t.Errorf("command: %+v", k)
	}

	bad := base + `cutover:
  pgbouncer:
    - name: a
      admin_conninfo: "host=127.0.0.1 port=6432 dbname=pgbouncer user=pgbouncer"
      database: app
    - name: a
      admin_conninfo: "host=127.0.0.1 port=6433 dbname=pgbouncer user=pgbouncer"
      ini: relative.ini
      database: app
    - name: b
      admin_conninfo: "host=127.0.0.1 port=6434 dbname=pgbouncer user=pgbouncer"
      database: app
      ssh: {port: 70000, jump: "bastion:notaport"}
      repoint_command: x
    - name: c
      admin_conninfo: "host=127.0.0.1 port=6435 dbname=pgbouncer user=pgbouncer"
      database: app
      ssh: {host: h, key: rel/key}
    - name: d
      admin_conninfo: "host=127.0.0.1 port=6436 dbname=pgbouncer user=pgbouncer"
      ini: /x.ini
      database: app
      restore_command: y
`
	_, err = Parse([]byte(bad))
	if err == nil {
		t.Fatal("a bad cutover.pgbouncer was accepted")
	}
	got := err.Error()
	for _, want := range []string{
		"cutover.pgbouncer[0] (a) needs ini (a local file), ini with ssh (a file on another host), or repoint_command",
		"cutover.pgbouncer[1] (a) has the same name as cutover.pgbouncer[0] (a)",
		`cutover.pgbouncer[1] (a).ini "relative.ini" must be an absolute path`,
		"cutover.pgbouncer[2] (b) has both ssh and repoint_command",
		"cutover.pgbouncer[3] (c).ini must be the absolute path of the ini on h",
		`cutover.pgbouncer[3] (c).ssh.key "rel/key" must be an absolute path`,
		"cutover.pgbouncer[4] (d) sets restore_command, read_command or command_timeout without repoint_command",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	for _, line := range strings.Split(got, "\n") {
		if !strings.HasPrefix(line, "config: ") {
			t.Errorf("not one problem per line: %q", line)
		}
	}
}
