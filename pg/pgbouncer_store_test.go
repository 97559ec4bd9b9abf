package pg

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testIni = "[databases]\napp = host=127.0.0.1 port=5001 dbname=app pool_size=5\n\n[pgbouncer]\nlisten_port = 6432\n"

// The local and command stores repoint, read back, journal what their
// plan shows, and leave an entry that points at the target alone.
func TestLocalAndCommandIniStores(t *testing.T) {
	green := Endpoint{Host: "127.0.0.1", Port: 5002, DBName: "app"}
	ch := IniChange{Database: "app", Side: "green", To: green}
	for _, b := range []BouncerParams{
		{Name: "f"},
		{Name: "c", Command: &IniCommandParams{Repoint: `sed -i "s/port=[0-9]*/port=$PGBG_PORT/" "$INI" && echo "moved $PGBG_PGBOUNCER to $PGBG_TARGET password=hunter2"`}},
	} {
		t.Run(b.IniMethod(), func(t *testing.T) {
			b.Ini = filepath.Join(t.TempDir(), "pgbouncer.ini")
			t.Setenv("INI", b.Ini)
			if err := os.WriteFile(b.Ini, []byte(testIni), 0o640); err != nil {
				t.Fatal(err)
			}
			s := b.NewIniStore()
			var got []Executed
			ctx := WithJournal(context.Background(), func(_ context.Context, x Executed) { got = append(got, x) })
			if err := s.Repoint(ctx, ch); err != nil {
				t.Fatal(err)
			}
			e, err := s.ReadEntry(ctx, "app")
			if err != nil || !entryPointsAt(e, "app", green) || e.Get("pool_size") != "5" {
				t.Fatalf("after the repoint: %q %v", e.Line, err)
			}
			plan := s.Plan(ch)
			if len(got) == 0 || !strings.HasPrefix(plan[0].Text, got[0].Text) || got[0].Kind != plan[0].Kind {
				t.Errorf("journaled %+v, plan %+v", got, plan)
			}
			if b.Command != nil {
				if len(got) != 2 || got[1].Kind != "output" || !strings.Contains(got[1].Text, "moved c to green") || strings.Contains(got[1].Text, "hunter2") {
					t.Errorf("the command's output, redacted, should follow it: %+v", got)
				}
			}
			n := len(got)
			if err := s.Repoint(ctx, ch); err != nil || len(got) != n {
				t.Errorf("a second repoint: %v, %d more journaled; want a no-op", err, len(got)-n)
			}
		})
	}
}

// A command past its timeout is killed with its children, and says so.
func TestCommandIniTimeout(t *testing.T) {
	b := BouncerParams{Name: "slow", Command: &IniCommandParams{Repoint: "sleep 30 & sleep 30", Timeout: 200 * time.Millisecond}}
	start := time.Now()
	err := b.NewIniStore().Repoint(context.Background(), IniChange{Database: "app", Side: "green", To: Endpoint{Host: "h", Port: 1, DBName: "app"}})
	if err == nil || !strings.Contains(err.Error(), "timed out after 200ms") || time.Since(start) > 10*time.Second {
		t.Errorf("a command past its timeout: %v after %s", err, time.Since(start))
	}
}

func TestParseJump(t *testing.T) {
	for in, want := range map[string][2]string{
		"bastion":              {"me", "bastion:22"},
		"ops@bastion:2222":     {"ops", "bastion:2222"},
		"ops@[2001:db8::1]:22": {"ops", "[2001:db8::1]:22"},
	} {
		u, addr, err := parseJump(in, "me")
		if err != nil || u != want[0] || addr != want[1] {
			t.Errorf("parseJump(%q) = %s %s %v, want %v", in, u, addr, err, want)
		}
	}
	if _, _, err := parseJump("ops@h:x", "me"); err == nil {
		t.Error("a bad port was accepted")
	}
}

// A local ini staged before the pause: the stage leaves the file PgBouncer
// reads as it was (the new text and the backup beside it), the repoint
// renames the staged text into place; a file edited since the stage is
// rewritten whole instead, the edit kept.
func TestLocalIniStaged(t *testing.T) {
	green := Endpoint{Host: "127.0.0.1", Port: 5002, DBName: "app"}
	ch := IniChange{Database: "app", Side: "green", To: green}
	stage := func(t *testing.T) (*fileIni, string) {
		t.Helper()
		ini := filepath.Join(t.TempDir(), "pgbouncer.ini")
		if err := os.WriteFile(ini, []byte(testIni), 0o640); err != nil {
			t.Fatal(err)
		}
		s := BouncerParams{Name: "f", Ini: ini}.NewIniStore().(*fileIni)
		if err := s.Stage(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(ini); string(b) != testIni {
			t.Fatalf("the stage changed the ini PgBouncer reads:\n%s", b)
		}
		if b, _ := os.ReadFile(ini + ".pgbg-backup"); string(b) != testIni {
			t.Fatalf("the backup:\n%s", b)
		}
		return s, ini
	}
	t.Run("renamed into place", func(t *testing.T) {
		s, ini := stage(t)
		staged, _ := os.Stat(ini + ".pgbg-new")
		if err := s.Repoint(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
		now, _ := os.Stat(ini)
		if !os.SameFile(staged, now) {
			t.Error("the ini is not the staged file: it was rewritten, not renamed")
		}
		if e, err := s.ReadEntry(context.Background(), "app"); err != nil || !entryPointsAt(e, "app", green) {
			t.Errorf("after the rename: %q %v", e.Line, err)
		}
	})
	t.Run("edited since the stage: rewritten whole", func(t *testing.T) {
		s, ini := stage(t)
		edited := strings.Replace(testIni, "listen_port = 6432", "listen_port = 6433", 1)
		time.Sleep(10 * time.Millisecond) // a later mtime
		if err := os.WriteFile(ini, []byte(edited), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := s.Repoint(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(ini)
		if !strings.Contains(string(b), "listen_port = 6433") || !strings.Contains(string(b), "port=5002") {
			t.Errorf("the edit and the repoint should both be there:\n%s", b)
		}
	})
}

// A change of several entries (every database of a cutover) is one write
// of a local ini, staged or not, and one command per entry through
// commands; each entry names its own database; the plan shows each, and a
// change whose entries all point there already does nothing.
func TestIniChangeOfSeveralEntries(t *testing.T) {
	const text = "[databases]\napp = host=10.0.0.1 port=5432 dbname=app\nbilling = host=10.0.0.1 port=5432 dbname=billing pool_size=3\nother = host=10.0.0.9 port=5432 dbname=other\n"
	ch := IniChange{Database: "app", Side: "green", To: Endpoint{Host: "10.0.0.2", Port: 5433, DBName: "app"},
		Also: []IniEntry{{Name: "billing", DBName: "billing"}}}
	check := func(t *testing.T, s IniStore) {
		t.Helper()
		for _, tg := range ch.Targets() {
			e, err := s.ReadEntry(context.Background(), tg.Database)
			if err != nil || !entryPointsAt(e, tg.Database, tg.To) {
				t.Errorf("%s after the repoint: %q %v", tg.Database, e.Line, err)
			}
		}
		if e, _ := s.ReadEntry(context.Background(), "other"); e.Get("host") != "10.0.0.9" {
			t.Errorf("an entry the change does not name moved: %q", e.Line)
		}
		if e, _ := s.ReadEntry(context.Background(), "billing"); e.Get("pool_size") != "3" {
			t.Errorf("billing lost its other keys: %q", e.Line)
		}
	}
	for _, b := range []BouncerParams{
		{Name: "f"},
		{Name: "c", Command: &IniCommandParams{Repoint: `sed -i "/^$PGBG_DATABASE =/s/host=[^ ]* port=[0-9]*/host=$PGBG_HOST port=$PGBG_PORT/" "$INI"`}},
	} {
		t.Run(b.IniMethod(), func(t *testing.T) {
			b.Ini = filepath.Join(t.TempDir(), "pgbouncer.ini")
			t.Setenv("INI", b.Ini)
			if err := os.WriteFile(b.Ini, []byte(text), 0o640); err != nil {
				t.Fatal(err)
			}
			s := b.NewIniStore()
			plan := s.Plan(ch)
			all := ""
			for _, l := range plan {
				all += l.Text + "\n"
			}
			if !strings.Contains(all, "app: host=10.0.0.2 port=5433 dbname=app") && !strings.Contains(all, "PGBG_DATABASE=app") ||
				!strings.Contains(all, "billing: host=10.0.0.2 port=5433 dbname=billing") && !strings.Contains(all, "PGBG_DATABASE=billing") {
				t.Errorf("the plan does not name both entries:\n%s", all)
			}
			var got []Executed
			ctx := WithJournal(context.Background(), func(_ context.Context, x Executed) { got = append(got, x) })
			if err := s.Repoint(ctx, ch); err != nil {
				t.Fatal(err)
			}
			check(t, s)
			want := 1
			if b.Command != nil {
				want = 2
			}
			if len(got) != want {
				t.Errorf("journaled %d, want %d: %+v", len(got), want, got)
			}
			n := len(got)
			if err := s.Repoint(ctx, ch); err != nil || len(got) != n {
				t.Errorf("a second repoint: %v, %d more journaled; want a no-op", err, len(got)-n)
			}
		})
	}
	t.Run("staged", func(t *testing.T) {
		ini := filepath.Join(t.TempDir(), "pgbouncer.ini")
		if err := os.WriteFile(ini, []byte(text), 0o640); err != nil {
			t.Fatal(err)
		}
		s := BouncerParams{Name: "f", Ini: ini}.NewIniStore().(*fileIni)
		if err := s.Stage(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
		staged, _ := os.Stat(ini + ".pgbg-new")
		// The stage is for this change only: one that moves fewer entries
		// rewrites the file whole.
		if err := s.Repoint(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
		if now, _ := os.Stat(ini); !os.SameFile(staged, now) {
			t.Error("the staged text was not renamed into place")
		}
		check(t, s)
	})
}

// MovedEntries are the entries of the moving databases at blue's or
// green's host and port, wherever each stands; another server's entry of
// the same database, and the console's own, are left out.
func TestMovedEntries(t *testing.T) {
	blue, green := Endpoint{Host: "10.0.0.1", Port: 5432}, Endpoint{Host: "10.0.0.2", Port: 5433}
	rows := []BouncerDatabase{
		{Name: "app", Host: "10.0.0.1", Port: 5432, Database: "app"},
		{Name: "billing_rw", Host: "10.0.0.2", Port: 5433, Database: "billing"},
		{Name: "billing_ro", Host: "10.0.0.7", Port: 5432, Database: "billing"},
		{Name: "archive", Host: "10.0.0.1", Port: 5432, Database: "archive"},
		{Name: "pgbouncer", Port: 6432, Database: "pgbouncer"},
	}
	var got []string
	for _, d := range MovedEntries(rows, []string{"app", "billing"}, blue, green) {
		got = append(got, d.Name)
	}
	if strings.Join(got, ",") != "app,billing_rw" {
		t.Errorf("moved entries: %v", got)
	}
}
