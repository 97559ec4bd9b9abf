package pg

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
)

const sampleIni = `;; comment
[databases]
; app = host=old
other = host=10.0.0.9 port=5432 dbname=other
app = host=127.0.0.1 port=5433 dbname=app pool_size=7 user=app
"Mixed" = host=h port=1 dbname='my db'

[pgbouncer]
listen_port = 6432
app = not-a-database
`

// TestRepointIniKeepsTheRest: only host, port and dbname of the one entry
// change; other entries, comments, keys and the mode stay; Restore puts the
// exact bytes back.
func TestRepointIniKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(ini, []byte(sampleIni), 0o640); err != nil {
		t.Fatal(err)
	}
	bk, err := RepointIni(ini, "app", Endpoint{Host: "10.1.1.1", Port: 6543, DBName: "app2"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(ini)
	want := strings.Replace(sampleIni, "app = host=127.0.0.1 port=5433 dbname=app pool_size=7 user=app",
		"app = host=10.1.1.1 port=6543 dbname=app2 pool_size=7 user=app", 1)
	if string(got) != want {
		t.Fatalf("rewritten ini:\n%s\nwant:\n%s", got, want)
	}
	if st, _ := os.Stat(ini); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
	if b, _ := os.ReadFile(ini + ".pgbg-backup"); string(b) != sampleIni {
		t.Error("backup file is not the old ini")
	}
	e, err := ReadBouncerEntry(ini, "app")
	if err != nil || e.Get("host") != "10.1.1.1" || e.Get("port") != "6543" || e.Get("pool_size") != "7" {
		t.Fatalf("entry after repoint: %+v %v", e, err)
	}
	if err := bk.Restore(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(ini); string(got) != sampleIni {
		t.Fatalf("restored ini differs:\n%s", got)
	}
	m, err := ReadBouncerEntry(ini, "Mixed")
	if err != nil || m.Get("dbname") != "my db" {
		t.Fatalf("quoted entry: %+v %v", m, err)
	}
	if m.Conninfo("user=x") != "host=h port=1 dbname='my db' user=x" {
		t.Errorf("conninfo %q", m.Conninfo("user=x"))
	}
	if _, err := ReadBouncerEntry(ini, "missing"); err == nil {
		t.Error("a missing entry was found")
	}
	if _, err := RepointIni(ini, "missing", Endpoint{}); err == nil {
		t.Error("repointing a missing entry succeeded")
	}
}

// FuzzParseEntryParams: any line parses or fails cleanly, and what parses
// renders back to the same pairs.
func FuzzParseEntryParams(f *testing.F) {
	for _, s := range []string{"host=a port=1", "dbname='x y' user=u", `a='it\'s'`, "=", "a=", "x='open"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsAny(s, "\n\r") {
			return
		}
		params, err := parseEntryParams(s)
		if err != nil {
			return
		}
		var parts []string
		for _, kv := range params {
			if strings.ContainsAny(kv[0], "= \t'") || kv[0] == "" {
				return
			}
			parts = append(parts, kv[0]+"="+quoteIniValue(kv[1]))
		}
		again, err := parseEntryParams(strings.Join(parts, " "))
		if err != nil || len(again) != len(params) {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, params, strings.Join(parts, " "), again, err)
		}
		for k := range again {
			if again[k] != params[k] {
				t.Fatalf("%q: pair %d %v became %v", s, k, params[k], again[k])
			}
		}
	})
}

// TestConsole drives a real PgBouncer: SHOW DATABASES and pool mode, PAUSE
// holds a client until RESUME, and a repoint + RELOAD + WAIT_CLOSE moves a
// client to green, then back.
func TestConsole(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	i := l.info
	c, err := ConnectConsole(ctx, "lab", i.PgBouncer.AdminConninfo, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := c.Database(ctx, lab.AppDB)
	if err != nil || d.Host != "127.0.0.1" || d.Port != i.Blue.Port || d.Paused {
		t.Fatalf("SHOW DATABASES: %+v %v", d, err)
	}
	if mode, err := c.PoolMode(ctx, lab.AppDB); err != nil || mode != "transaction" {
		t.Fatalf("pool mode %q %v", mode, err)
	}
	blueVersion, err := VersionThrough(ctx, i.PgBouncer.Conninfo)
	if err != nil || !strings.Contains(blueVersion, "PostgreSQL 15") {
		t.Fatalf("version through PgBouncer: %q %v", blueVersion, err)
	}

	if err := c.Pause(ctx, lab.AppDB); err != nil {
		t.Fatal(err)
	}
	if d, _ := c.Database(ctx, lab.AppDB); !d.Paused {
		t.Error("SHOW DATABASES does not say paused after PAUSE")
	}
	got := make(chan error, 1)
	go func() { _, err := VersionThrough(ctx, i.PgBouncer.Conninfo); got <- err }()
	select {
	case err := <-got:
		t.Fatalf("a client query finished while paused: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := c.Resume(ctx, lab.AppDB); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("the held query failed after RESUME: %v", err)
	}
	if err := c.Resume(ctx, lab.AppDB); !IsNotPaused(err) {
		t.Errorf("RESUME of a running database: %v, want a not-paused error", err)
	}

	green := Endpoint{Host: "127.0.0.1", Port: i.Green.Port, DBName: lab.AppDB}
	bk, err := RepointIni(i.PgBouncer.Ini, lab.AppDB, green)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(context.Context) error{c.Reload, func(ctx context.Context) error { return c.WaitClose(ctx, lab.AppDB) }} {
		if err := step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := VersionThrough(ctx, i.PgBouncer.Conninfo); err != nil || !strings.Contains(v, "PostgreSQL 17") {
		t.Fatalf("after repoint, version through PgBouncer: %q %v", v, err)
	}
	if d, _ := c.Database(ctx, lab.AppDB); d.Port != i.Green.Port {
		t.Errorf("SHOW DATABASES port %d after repoint, want green's %d", d.Port, i.Green.Port)
	}
	if err := bk.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := VersionThrough(ctx, i.PgBouncer.Conninfo); err != nil || v != blueVersion {
		t.Fatalf("after restore, version through PgBouncer: %q %v", v, err)
	}
}
