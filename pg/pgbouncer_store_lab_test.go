package pg

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// sshStore is the lab's second PgBouncer's ini, reached through the lab's
// sshd as the cutover reaches it.
func sshStore(info *lab.Info) (*sshIni, SSHParams) {
	p := SSHParams{Host: "127.0.0.1", Port: info.SSHD.Port, User: info.SSHD.User, Key: info.SSHD.Key, KnownHosts: info.SSHD.KnownHosts}
	b := BouncerParams{Name: "lab-ssh", Ini: info.PgBouncerSSH.Ini, SSH: &p}
	return b.NewIniStore().(*sshIni), p
}

// TestSSHIniStore reads and repoints the ini of the lab's second PgBouncer
// over SSH: the entry read back, the backup kept, the other lines kept, a
// repeated repoint a no-op; through a jump host (the lab's sshd reaching
// itself); and an unknown or changed host key refused before any command
// runs on the host.
func TestSSHIniStore(t *testing.T) {
	info := labtest.Start(t, labtest.StartParams{Strategy: "copy"})
	ctx := context.Background()
	s, p := sshStore(info)
	defer s.Close()
	e, err := s.ReadEntry(ctx, lab.AppDB)
	if err != nil {
		t.Fatal(err)
	}
	if e.Get("port") != fmt.Sprint(info.Blue.Port) {
		t.Fatalf("entry %q, want blue's port %d", e.Line, info.Blue.Port)
	}
	before, _ := os.ReadFile(info.PgBouncerSSH.Ini)
	green := Endpoint{Host: "127.0.0.1", Port: info.Green.Port, DBName: lab.AppDB}
	var journaled []Executed
	jctx := WithJournal(ctx, func(_ context.Context, x Executed) { journaled = append(journaled, x) })
	if err := s.Repoint(jctx, IniChange{Database: lab.AppDB, Side: "green", To: green}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(info.PgBouncerSSH.Ini)
	backup, _ := os.ReadFile(info.PgBouncerSSH.Ini + ".pgbg-backup")
	if string(backup) != string(before) {
		t.Errorf("the backup is not the file as it was")
	}
	if !strings.Contains(string(after), fmt.Sprintf("port=%d", info.Green.Port)) || strings.Count(string(after), "\n") != strings.Count(string(before), "\n") {
		t.Errorf("after the repoint:\n%s", after)
	}
	if len(journaled) != 1 || journaled[0].Kind != "file" || journaled[0].Text != s.Plan(IniChange{Database: lab.AppDB, Side: "green", To: green})[0].Text {
		t.Errorf("journaled %+v, want the planned file change once", journaled)
	}
	if err := s.Repoint(jctx, IniChange{Database: lab.AppDB, Side: "green", To: green}); err != nil || len(journaled) != 1 {
		t.Errorf("a repeated repoint: %v, %d journaled; want a no-op", err, len(journaled))
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(info.PgBouncerSSH.Ini), "*.pgbg-tmp.*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}

	t.Run("through a jump host", func(t *testing.T) {
		jp := p
		jp.Jump = fmt.Sprintf("%s@127.0.0.1:%d", p.User, p.Port)
		j := (&BouncerParams{Name: "jumped", Ini: info.PgBouncerSSH.Ini, SSH: &jp}).NewIniStore()
		defer j.Close()
		e, err := j.ReadEntry(ctx, lab.AppDB)
		if err != nil || e.Get("port") != fmt.Sprint(info.Green.Port) {
			t.Errorf("through the jump host: %q %v", e.Line, err)
		}
	})

	t.Run("staged before, renamed after; a file changed since is read again", func(t *testing.T) {
		st, _ := sshStore(info)
		defer st.Close()
		if _, err := st.ReadEntry(ctx, lab.AppDB); err != nil {
			t.Fatal(err)
		}
		// Someone edits the file after the read: the stage reads it again.
		edit := func() {
			t.Helper()
			f, err := os.OpenFile(info.PgBouncerSSH.Ini, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(f, "; edited by hand")
			f.Close()
		}
		edit()
		blue := Endpoint{Host: "127.0.0.1", Port: info.Blue.Port, DBName: lab.AppDB}
		toBlue := IniChange{Database: lab.AppDB, Side: "blue", To: blue}
		if err := st.Stage(ctx, toBlue); err != nil {
			t.Fatalf("stage over a file changed since it was read: %v", err)
		}
		if e, _ := st.ReadEntry(ctx, lab.AppDB); e.Get("port") != fmt.Sprint(info.Green.Port) {
			t.Fatalf("the stage changed what PgBouncer reads: %q", e.Line)
		}
		if err := st.Repoint(ctx, toBlue); err != nil {
			t.Fatal(err)
		}
		text, _ := os.ReadFile(info.PgBouncerSSH.Ini)
		if !strings.Contains(string(text), fmt.Sprintf("port=%d", info.Blue.Port)) || !strings.Contains(string(text), "; edited by hand") {
			t.Errorf("after the staged repoint (the hand edit kept):\n%s", text)
		}
		if _, err := os.Stat(info.PgBouncerSSH.Ini + ".pgbg-new"); !os.IsNotExist(err) {
			t.Errorf("the staged text is still beside the ini: %v", err)
		}
		// Staged, then edited again before the rename: the armed commit
		// refuses and the repoint rewrites the file as it is now.
		if err := st.Stage(ctx, IniChange{Database: lab.AppDB, Side: "green", To: green}); err != nil {
			t.Fatal(err)
		}
		edit()
		later := time.Now().Add(2 * time.Second)
		os.Chtimes(info.PgBouncerSSH.Ini, later, later)
		if err := st.Repoint(ctx, IniChange{Database: lab.AppDB, Side: "green", To: green}); err != nil {
			t.Fatal(err)
		}
		text, _ = os.ReadFile(info.PgBouncerSSH.Ini)
		if !strings.Contains(string(text), fmt.Sprintf("port=%d", info.Green.Port)) || strings.Count(string(text), "; edited by hand") != 2 {
			t.Errorf("after a repoint over a file edited since the stage (both edits kept):\n%s", text)
		}
	})

	t.Run("an unknown or changed host key is refused", func(t *testing.T) {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		key, _ := ssh.NewPublicKey(pub)
		dir := t.TempDir()
		for name, text := range map[string]string{
			"changed": fmt.Sprintf("[127.0.0.1]:%d %s", p.Port, ssh.MarshalAuthorizedKey(key)),
			"unknown": fmt.Sprintf("[127.0.0.1]:%d %s", p.Port+1, ssh.MarshalAuthorizedKey(key)),
		} {
			kh := filepath.Join(dir, name)
			if err := os.WriteFile(kh, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			bp := p
			bp.KnownHosts = kh
			bad := (&BouncerParams{Name: name, Ini: info.PgBouncerSSH.Ini, SSH: &bp}).NewIniStore()
			_, err := bad.ReadEntry(ctx, lab.AppDB)
			bad.Close()
			if !errors.Is(err, ErrHostKey) {
				t.Errorf("%s host key: %v, want ErrHostKey", name, err)
			}
			t.Logf("%s: %v", name, err)
		}
	})
}

// BenchmarkSSHRepoint is one repoint of the remote ini over an open SSH
// connection (read, rewrite with backup, fsyncs and renames, read back):
// the part of the pause a PgBouncer reached over SSH adds.
func BenchmarkSSHRepoint(b *testing.B) {
	ctx := context.Background()
	s, sides := sshBench(b)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := s.Repoint(ctx, IniChange{Database: lab.AppDB, To: sides[i%2]}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/repoint")
}

// BenchmarkSSHStagedRename is what a remote ini adds to the pause when it
// was staged before: the armed commit's rename, over an open connection.
func BenchmarkSSHStagedRename(b *testing.B) {
	ctx := context.Background()
	s, sides := sshBench(b)
	var in time.Duration
	for i := 0; i < b.N; i++ {
		ch := IniChange{Database: lab.AppDB, To: sides[i%2]}
		if err := s.Stage(ctx, ch); err != nil {
			b.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // the armed command is waiting, as before a pause
		start := time.Now()
		if err := s.Repoint(ctx, ch); err != nil {
			b.Fatal(err)
		}
		in += time.Since(start)
	}
	b.ReportMetric(float64(in.Microseconds())/1000/float64(b.N), "ms/rename")
}

// sshBench is a lab's remote ini store, read once, and the two sides its
// entry is moved between.
func sshBench(b *testing.B) (*sshIni, []Endpoint) {
	info := labtest.Start(b, labtest.StartParams{Strategy: "copy"})
	s, _ := sshStore(info)
	b.Cleanup(s.Close)
	if _, err := s.ReadEntry(context.Background(), lab.AppDB); err != nil {
		b.Fatal(err)
	}
	return s, []Endpoint{{Host: "127.0.0.1", Port: info.Green.Port, DBName: lab.AppDB}, {Host: "127.0.0.1", Port: info.Blue.Port, DBName: lab.AppDB}}
}
