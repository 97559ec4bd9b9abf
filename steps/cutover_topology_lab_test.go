package steps

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

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
	"github.com/pgbluegreen/pgbluegreen/steps/cutover"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
	"github.com/pgbluegreen/pgbluegreen/steps/testhook"
)

// Real topologies: the lab has two PgBouncers, one whose ini is a local
// file and one whose ini is reached only over SSH (the lab's own sshd).
// A cutover and a rollback under load move both, every one paused before
// any is repointed and repointed before any is resumed; a wrong host key
// is refused at the precheck with nothing paused; a repoint that fails on
// the remote one puts both back on blue; the command method swaps a
// symlink.
func TestCutoverTwoPgBouncers(t *testing.T) {
	l := newCutoverLab(t)
	if len(l.runner.Config.Cutover.PgBouncer) != 2 || l.runner.Config.Cutover.PgBouncer[1].SSH == nil {
		t.Fatalf("the lab's config has no PgBouncer over SSH: %+v", l.runner.Config.Cutover.PgBouncer)
	}
	l.catchUp(t)
	ctx := context.Background()
	l.runner.Config.Cutover.MaxLagBytes = 16 << 20 // not a test of the lag gate
	remote := l.runner.Config.Cutover.PgBouncer[1]

	// targets reads where each PgBouncer sends writes and whether it is
	// paused, from its console.
	targets := func() []string {
		t.Helper()
		var out []string
		for _, b := range l.runner.Config.Cutover.PgBouncer {
			c, err := pg.ConnectConsole(ctx, b.Name, b.AdminConninfo, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			d, err := c.Database(ctx, b.Database)
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			side := fmt.Sprintf("%s:%d", d.Host, d.Port)
			switch d.Port {
			case l.info.Blue.Port:
				side = "blue"
			case l.info.Green.Port:
				side = "green"
			}
			if d.Paused {
				side += " (paused)"
			}
			out = append(out, b.Name+" -> "+side)
		}
		return out
	}
	want := func(side string) {
		t.Helper()
		got := strings.Join(targets(), ", ")
		if exp := "lab -> " + side + ", lab-ssh -> " + side; got != exp {
			t.Fatalf("PgBouncers: %s, want %s", got, exp)
		}
	}
	pauses := func() int {
		entries, _, err := state.ReadJournal(filepath.Join(l.info.Dir, "pgbluegreen.state.journal.jsonl"), 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range entries {
			if e.Kind == "sql" && strings.HasPrefix(e.Text, "PAUSE ") {
				n++
			}
		}
		return n
	}

	t.Run("a wrong host key is refused at the precheck, nothing paused", func(t *testing.T) {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := ssh.NewPublicKey(pub)
		bad := filepath.Join(t.TempDir(), "known_hosts")
		line := fmt.Sprintf("[127.0.0.1]:%d %s", remote.SSH.Port, ssh.MarshalAuthorizedKey(key))
		if err := os.WriteFile(bad, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		saved := *remote.SSH
		l.runner.Config.Cutover.PgBouncer[1].SSH.KnownHosts = bad
		defer func() { *l.runner.Config.Cutover.PgBouncer[1].SSH = saved }()
		before := pauses()
		_, err = l.runner.Run(ctx, "cutover", RunParams{Confirmed: true})
		if !IsRefused(err) || !strings.Contains(err.Error(), "host key") || !strings.Contains(err.Error(), "pgbouncer lab-ssh") {
			t.Fatalf("cutover with a wrong host key: %v, want a refusal at the precheck naming the host key", err)
		}
		t.Logf("refused: %v", err)
		if n := pauses() - before; n != 0 {
			t.Errorf("%d PAUSE journaled: something was paused", n)
		}
		want("blue")
		if a, _ := l.store.Snapshot().LastAttempt("cutover"); a.Outcome != state.AttemptRefused {
			t.Errorf("attempt %+v, want refused", a)
		}
	})

	t.Run("a repoint that fails on the remote one puts both back on blue", func(t *testing.T) {
		dir := filepath.Dir(remote.Ini)
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o755)
		var runErr error
		res := l.loadWindow(t, 200, time.Second, time.Second, func() {
			_, runErr = l.runner.Run(ctx, "cutover", RunParams{Confirmed: true})
		})
		var abort *cutover.AbortError
		if runErr == nil || IsRefused(runErr) || !strings.Contains(runErr.Error(), "lab-ssh") {
			t.Fatalf("cutover with the remote ini not writable: %v, want an abort naming lab-ssh", runErr)
		}
		t.Logf("aborted: %v (AbortError %t)", runErr, errors.As(runErr, &abort))
		if res.Errors != 0 {
			t.Errorf("clients saw %d errors (%s)", res.Errors, res.LastError)
		}
		want("blue")
		if a, _ := l.store.Snapshot().LastAttempt("cutover"); a.Outcome != state.AttemptAborted {
			t.Errorf("attempt %+v, want aborted", a)
		}
		rep := l.report(t, CutoverReportKey)
		if rep.Outcome != cutover.OutcomeAborted || !strings.Contains(rep.FinalTarget, fmt.Sprint(l.info.Blue.Port)) {
			t.Errorf("report: outcome %s, final target %s", rep.Outcome, rep.FinalTarget)
		}
		l.waitDrained(t, false, "pgbg_all")
		l.verify(t)
	})

	t.Run("an undo whose remote ini cannot be put back still resumes, warning", func(t *testing.T) {
		// Held before the RELOAD: both inis already say green, SHOW
		// DATABASES still says blue. The remote ini's folder is then made
		// read-only and the run interrupted: the undo cannot put that ini
		// back, but its PgBouncer serves blue, so it is resumed with a
		// warning rather than left paused.
		holdInProcess(t, "reload")
		held := filepath.Join(l.runner.Env("cutover").reportDir(), testhook.HoldFile)
		os.Remove(held)
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := l.runner.Run(runCtx, "cutover", RunParams{Confirmed: true})
			errc <- err
		}()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, err := os.Stat(held); err == nil {
				break
			}
			select {
			case err := <-errc:
				t.Fatalf("the cutover ended before the RELOAD: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("the cutover never reached the RELOAD")
			}
			time.Sleep(20 * time.Millisecond)
		}
		dir := filepath.Dir(remote.Ini)
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		cancel()
		err := <-errc
		os.Chmod(dir, 0o755)
		t.Logf("interrupted: %v", err)
		want("blue")
		rep := l.report(t, CutoverReportKey)
		if w := strings.Join(rep.Warnings, "; "); !strings.Contains(w, "PgBouncer lab-ssh serves blue, but its ini could not be put back") {
			t.Errorf("the report's warnings: %q, want the remote ini named", w)
		}
		if a, _ := l.store.Snapshot().LastAttempt("cutover"); a.Outcome != state.AttemptAborted {
			t.Errorf("attempt %+v, want aborted", a)
		}
		tr := monitor.ReadTraffic(ctx, l.runner.Config, l.runner.Blue, l.runner.Green)
		if tr.Settled || !strings.Contains(strings.Join(tr.Warnings, "; "), "lab-ssh") {
			t.Errorf("traffic %+v: want unsettled, the remote ini named", tr)
		}
		// The operator's fix: the ini back on blue, each database's entry.
		blueEnd, err := pg.EndpointOf(l.runner.Config.Blue.Conninfo)
		if err != nil {
			t.Fatal(err)
		}
		for _, db := range []string{lab.AppDB, lab.BillingDB} {
			blueEnd.DBName = db
			if _, err := pg.RepointIni(remote.Ini, db, blueEnd); err != nil {
				t.Fatal(err)
			}
		}
		if tr := monitor.ReadTraffic(ctx, l.runner.Config, l.runner.Blue, l.runner.Green); !tr.Settled || tr.Target != "blue" {
			t.Errorf("traffic after the fix: %+v", tr)
		}
		l.waitDrained(t, false, "pgbg_all")
	})

	cycle := func(t *testing.T, step, side, slot string, onGreen bool) *cutover.Report {
		t.Helper()
		res := l.loadWindow(t, 200, 2*time.Second, 2*time.Second, func() {
			if out := l.run(t, step, ""); out != OutcomeRan {
				t.Fatalf("%s: %s", step, out)
			}
		})
		key := CutoverReportKey
		if step == "rollback" {
			key = RollbackReportKey
		}
		rep := l.report(t, key)
		t.Logf("load during the %s: %+v", step, res)
		t.Logf("%s report:\n%s", step, rep.Markdown())
		if res.Errors != 0 {
			t.Errorf("clients saw %d errors (%s)", res.Errors, res.LastError)
		}
		if rep.Outcome != cutover.OutcomeDone || len(rep.Bouncers) != 2 {
			t.Fatalf("report: outcome %s, %d PgBouncers", rep.Outcome, len(rep.Bouncers))
		}
		for _, b := range rep.Bouncers {
			if b.PauseMs <= 0 || b.RepointMs <= 0 || b.ResumeMs <= 0 {
				t.Errorf("PgBouncer %s: pause %.1f, repoint %.1f, resume %.1f ms: each must be timed", b.Name, b.PauseMs, b.RepointMs, b.ResumeMs)
			}
		}
		// Every PgBouncer paused before any ini was rewritten, every ini
		// rewritten before any RELOAD, and reloaded before any was resumed:
		// the sub-steps run in that order, each over all of them.
		order := map[string]int{}
		for k, s := range rep.SubSteps {
			order[s.Name] = k
		}
		if !(order["pause"] < order["rewrite the ini"] && order["rewrite the ini"] < order["reload"] && order["reload"] < order["resume"]) {
			t.Errorf("sub-steps out of order: %v", order)
		}
		// A remote ini's new text was staged before the pause and renamed
		// into place inside it: nothing staged is left beside it.
		if k, ok := order["stage the ini"]; rep.Bouncers[1].Method == "ssh" && (!ok || k > order["pause"]) {
			t.Errorf("the remote ini was not staged before the pause: %v", order)
		}
		if _, err := os.Stat(remote.Ini + ".pgbg-new"); !os.IsNotExist(err) {
			t.Errorf("the staged text is still beside the remote ini (not renamed into place): %v", err)
		}
		want(side)
		l.waitDrained(t, onGreen, slot)
		v := l.verify(t)
		t.Logf("verify after the %s: %+v", step, v)
		return rep
	}

	t.Run("cutover and rollback under load through both", func(t *testing.T) {
		rep := cycle(t, "cutover", "green", reverseReplication, true)
		if rep.Bouncers[1].Method != "ssh" || !strings.HasPrefix(rep.Bouncers[1].Ini, "ssh://") {
			t.Errorf("the remote PgBouncer's ini: %s %s", rep.Bouncers[1].Method, rep.Bouncers[1].Ini)
		}
		if b, err := os.ReadFile(remote.Ini + ".pgbg-backup"); err != nil || !strings.Contains(string(b), fmt.Sprintf("port=%d", l.info.Blue.Port)) {
			t.Errorf("no backup of the remote ini pointing at blue: %v", err)
		}
		cycle(t, "rollback", "blue", "pgbg_all", false)
	})

	t.Run("the command method swaps a symlink", func(t *testing.T) {
		dir := filepath.Dir(remote.Ini)
		text, err := os.ReadFile(remote.Ini)
		if err != nil {
			t.Fatal(err)
		}
		blueLine := fmt.Sprintf("port=%d", l.info.Blue.Port)
		if !strings.Contains(string(text), blueLine) {
			t.Fatalf("the remote ini does not point at blue:\n%s", text)
		}
		green := strings.ReplaceAll(string(text), blueLine, fmt.Sprintf("port=%d", l.info.Green.Port)) // every entry: app and billing move
		for name, body := range map[string]string{"pgbouncer.blue.ini": string(text), "pgbouncer.green.ini": green} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Remove(remote.Ini); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("pgbouncer.blue.ini", remote.Ini); err != nil {
			t.Fatal(err)
		}
		// Medplum's switchover swaps an ini symlink: the new link is made
		// beside and renamed over the old one, atomically.
		swap := fmt.Sprintf(`cd %s && ln -sfn "pgbouncer.$PGBG_TARGET.ini" pgbouncer.ini.new && mv -Tf pgbouncer.ini.new pgbouncer.ini && echo "now $PGBG_TARGET: $PGBG_HOST:$PGBG_PORT/$PGBG_DBNAME"`, dir)
		saved := l.runner.Config.Cutover.PgBouncer[1]
		l.runner.Config.Cutover.PgBouncer[1] = config.PgBouncerConfig{Name: saved.Name, AdminConninfo: saved.AdminConninfo, Database: saved.Database,
			Ini: saved.Ini, RepointCommand: swap, CommandTimeout: config.Duration{Duration: 10 * time.Second}}
		defer func() { l.runner.Config.Cutover.PgBouncer[1] = saved }()
		if problems := l.runner.Config.Validate(); len(problems) > 0 {
			t.Fatalf("config: %v", problems)
		}
		rep := cycle(t, "cutover", "green", reverseReplication, true)
		if rep.Bouncers[1].Method != "command" {
			t.Errorf("the remote PgBouncer's ini method: %s", rep.Bouncers[1].Method)
		}
		if target, _ := os.Readlink(remote.Ini); target != "pgbouncer.green.ini" {
			t.Errorf("the symlink points at %q after the cutover", target)
		}
		entries, _, err := state.ReadJournal(filepath.Join(l.info.Dir, "pgbluegreen.state.journal.jsonl"), 0)
		if err != nil {
			t.Fatal(err)
		}
		var ran, output bool
		for _, e := range entries {
			ran = ran || e.Kind == "command" && strings.Contains(e.Text, "PGBG_TARGET=green") && e.Outcome == "ok"
			output = output || e.Kind == "output" && strings.Contains(e.Text, "now green: 127.0.0.1:")
		}
		if !ran || !output {
			t.Errorf("journal: the command ran %t, its output kept %t", ran, output)
		}
		cycle(t, "rollback", "blue", "pgbg_all", false)
		if target, _ := os.Readlink(remote.Ini); target != "pgbouncer.blue.ini" {
			t.Errorf("the symlink points at %q after the rollback", target)
		}
	})
}

// holdInProcess holds a cutover run in this process before point, as
// testhook.HoldEnv does in a binary built with -tags pgbgtest: it writes
// testhook.HoldFile beside the state file and waits until the run's
// context ends.
func holdInProcess(t *testing.T, point string) {
	savedPoint, savedHold := holdPoint, hold
	t.Cleanup(func() { holdPoint, hold = savedPoint, savedHold })
	holdPoint = func() string { return point }
	hold = func(done <-chan struct{}, dir, at string) {
		_ = os.WriteFile(filepath.Join(dir, testhook.HoldFile), []byte(fmt.Sprintf("%d %s\n", os.Getpid(), at)), 0o644)
		<-done
	}
}
