package pg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
