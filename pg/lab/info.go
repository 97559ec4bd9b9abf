package lab

import (
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/state"
)

// Names fixed by the lab.
const (
	// AppDB is the database the application writes to, on both servers.
	AppDB = "app"
	// BillingDB is blue's second application database, owned by AppRole,
	// with tables and a sequence of its own: a cluster, not a database.
	BillingDB = "billing"
	// AppRole owns the schema and is the role the workload connects as.
	AppRole = "app"
	// AdminRole is the superuser pgbluegreen and the lab connect as.
	AdminRole = "postgres"
	// ReplicationRole is the role green's subscriptions connect to blue as.
	ReplicationRole = "pgbg_repl"
	// ConsoleUser is PgBouncer's admin console user (PgBouncer's alone, not
	// a role on the servers).
	ConsoleUser = "pgbouncer"
	// MatView is the materialized view in AppDB over public.accounts, with
	// a unique index so REFRESH ... CONCURRENTLY works. Logical replication
	// does not carry its rows.
	MatView = "public.account_tiers"
	// DefaultLoadDatabases is what `lab load` writes to unless told
	// (--databases, LoadParams.Databases): a comma-separated list of
	// Databases. Both: pgbluegreen moves every database of blue, and the
	// end-to-end tests write to both.
	DefaultLoadDatabases = AppDB + "," + BillingDB
	// InfoFile is the lab's machine-readable description inside DIR.
	InfoFile = "lab.json"
	// ConfigFile is the program's configuration written for the lab.
	ConfigFile = "pgbluegreen.yaml"
	// LedgerFile records every acknowledged write of `lab load` to AppDB;
	// another database's are in LedgerFile-DB (ledger-billing).
	LedgerFile = "ledger"
)

// Databases are the lab's application databases on blue, AppDB first.
var Databases = []string{AppDB, BillingDB}

// Server describes one PostgreSQL server of the lab.
type Server struct {
	Major    int    `json:"major"`
	Version  string `json:"version"`
	BinDir   string `json:"bindir"`
	DataDir  string `json:"datadir"`
	Port     int    `json:"port"`
	Conninfo string `json:"conninfo"` // superuser postgres, database app, passfile DIR/pgpass
}

// Bouncer describes one of the lab's PgBouncers.
type Bouncer struct {
	// Name is what the lab's pgbluegreen.yaml calls it.
	Name          string `json:"name"`
	Port          int    `json:"port"`
	Conninfo      string `json:"conninfo"`       // database app as role app, through PgBouncer, passfile DIR/pgpass
	AdminConninfo string `json:"admin_conninfo"` // the console: database pgbouncer, user pgbouncer
	Ini           string `json:"ini"`
	PidFile       string `json:"pidfile"`
	LogFile       string `json:"logfile"`
}

// Clone describes where the clone strategy puts a green made from blue.
type Clone struct {
	Port     int    `json:"port"`
	DataDir  string `json:"datadir"`
	Conninfo string `json:"conninfo"`
}

// Info is the lab's description, kept in DIR/lab.json.
type Info struct {
	Dir       string  `json:"dir"`
	Strategy  string  `json:"strategy"`
	Blue      Server  `json:"blue"`
	Green     Server  `json:"green"`
	PgBouncer Bouncer `json:"pgbouncer"`
	// PgBouncerSSH is the second PgBouncer, whose ini pgbluegreen reaches
	// only through SSHD (Port 0: openssh-server is not installed).
	PgBouncerSSH    Bouncer `json:"pgbouncer_ssh"`
	SSHD            SSHD    `json:"sshd"`
	ReplicationRole string  `json:"replication_role"`
	// Pgpass is the passfile holding every lab login's password (0600);
	// every connection string the lab writes names it (passfile=).
	Pgpass string `json:"pgpass"`
	// Databases are the application databases on blue (Databases).
	Databases   []string    `json:"databases"`
	LargeObject LargeObject `json:"large_object"`
	Clone       Clone       `json:"clone"`
	OSUser      string      `json:"os_user"`
	Config      string      `json:"config"`
	// Ledger is AppDB's ledger; LedgerPath gives any database's.
	Ledger string `json:"ledger"`
	Notice string `json:"notice,omitempty"`
}

// LargeObject is the large object the lab keeps in AppDB, owned by AppRole:
// logical replication does not carry it. Its OID, size and md5 let a test
// find it on green and compare its content.
type LargeObject struct {
	Database string `json:"database"`
	OID      uint32 `json:"oid"`
	Bytes    int64  `json:"bytes"`
	MD5      string `json:"md5"`
}

// ReadInfo reads DIR/lab.json.
func ReadInfo(dir string) (*Info, error) {
	b, err := os.ReadFile(filepath.Join(dir, InfoFile))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("no lab in %s: run `pgbluegreen lab up --dir %s`", dir, dir)
		}
		return nil, fmt.Errorf("reading the lab description: %w", err)
	}
	var i Info
	if err := json.Unmarshal(b, &i); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, InfoFile), err)
	}
	return &i, nil
}

func writeInfo(i *Info) error {
	b, err := json.MarshalIndent(i, "", "  ")
	if err != nil {
		return err
	}
	return state.WriteFileAtomic(filepath.Join(i.Dir, InfoFile), append(b, '\n'), 0o644)
}

// Bouncers are the lab's PgBouncers: the local one, and the one reached
// over SSH when openssh-server is installed.
func (i *Info) Bouncers() []*Bouncer {
	out := []*Bouncer{&i.PgBouncer}
	if i.PgBouncerSSH.Port > 0 {
		out = append(out, &i.PgBouncerSSH)
	}
	return out
}

// LedgerPath is the ledger file of one database's writes (AppDB's is
// Ledger).
func (i *Info) LedgerPath(db string) string {
	if db == AppDB {
		return i.Ledger
	}
	return filepath.Join(i.Dir, LedgerFile+"-"+db)
}

// hasDatabase reports whether db is one of the lab's databases (app alone
// in a lab.json written before there were two).
func (i *Info) hasDatabase(db string) bool {
	if len(i.Databases) == 0 {
		return db == AppDB
	}
	for _, d := range i.Databases {
		if d == db {
			return true
		}
	}
	return false
}

// tcpConninfo is a login over TCP on loopback with its password read from
// the passfile: nothing needs PGPASSWORD, and no password is written in a
// connection string.
func tcpConninfo(port int, db, user, pgpass string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s sslmode=disable passfile=%s", port, connValue(db), connValue(user), connValue(pgpass))
}

func serverConninfo(port int, pgpass string) string {
	return tcpConninfo(port, AppDB, AdminRole, pgpass)
}

// connValue quotes a connection string value when libpq needs it: empty,
// or holding a space, a quote or a backslash.
func connValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\\t\n") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// freePorts picks n distinct free loopback ports, skipping those in avoid.
// They come from below the kernel's ephemeral range when there is room: a
// port the kernel may hand to any outgoing connection (a test's client, a
// walsender's peer) can be taken between now and when a server binds it,
// and the clone's port is bound minutes later.
func freePorts(n int, avoid map[int]bool) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo, hi := 15000, ephemeralLow()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		addr := "127.0.0.1:0"
		if hi-lo > 1000 && tries < 200 {
			addr = fmt.Sprintf("127.0.0.1:%d", lo+mrand.IntN(hi-lo))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr != "127.0.0.1:0" {
				continue // taken: try another
			}
			return nil, fmt.Errorf("finding a free loopback port: %w", err)
		}
		ls = append(ls, l)
		p := l.Addr().(*net.TCPAddr).Port
		if !avoid[p] {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	v, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return v
}

// configYAML renders DIR/pgbluegreen.yaml for the lab.
func configYAML(i *Info) string {
	green := i.Green.Conninfo
	if i.Strategy == "clone" {
		green = i.Clone.Conninfo
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# written by `pgbluegreen lab up`\n")
	fmt.Fprintf(&b, "strategy: %s\n", i.Strategy)
	fmt.Fprintf(&b, "blue:\n  conninfo: %q\n", i.Blue.Conninfo)
	fmt.Fprintf(&b, "green:\n  conninfo: %q\n", green)
	fmt.Fprintf(&b, "replication:\n  role: %s\n  password:\n    pgpass_file: %s\n", i.ReplicationRole, i.Pgpass)
	fmt.Fprintf(&b, "publications:\n  - name: pgbg_all\n")
	fmt.Fprintf(&b, "schemas: [public, inventory]\n")
	fmt.Fprintf(&b, "app_roles: [%s]\n", AppRole)
	fmt.Fprintf(&b, "cutover:\n  method: pgbouncer\n  max_lag_bytes: 1048576\n  drain_timeout: 10s\n  pgbouncer:\n")
	fmt.Fprintf(&b, "    - name: %s\n      admin_conninfo: %q\n      ini: %s\n      database: %s\n", i.PgBouncer.Name, i.PgBouncer.AdminConninfo, i.PgBouncer.Ini, AppDB)
	if s := i.SSHD; i.PgBouncerSSH.Port > 0 {
		fmt.Fprintf(&b, "    - name: %s\n      admin_conninfo: %q\n      ini: %s\n      database: %s\n", i.PgBouncerSSH.Name, i.PgBouncerSSH.AdminConninfo, i.PgBouncerSSH.Ini, AppDB)
		fmt.Fprintf(&b, "      ssh:\n        host: 127.0.0.1\n        port: %d\n        user: %s\n        key: %s\n        known_hosts: %s\n", s.Port, s.User, s.Key, s.KnownHosts)
	}
	fmt.Fprintf(&b, "clone:\n  blue_bindir: %s\n  green_bindir: %s\n  data_dir: %s\n  port: %d\n  os_user: %s\n",
		i.Blue.BinDir, i.Green.BinDir, i.Clone.DataDir, i.Clone.Port, i.OSUser)
	fmt.Fprintf(&b, "lag:\n  interval: 1s\n")
	return b.String()
}
