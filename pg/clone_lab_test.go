package pg_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// cloneLab brings up a clone-strategy lab (blue only, PgBouncer).
func cloneLab(t *testing.T) *lab.Info {
	t.Helper()
	return labtest.Start(t, labtest.StartParams{Strategy: "clone"})
}

func cloneParams(info *lab.Info, logf func(string, ...any)) pg.CloneParams {
	return pg.CloneParams{
		BlueConninfo: info.Blue.Conninfo, GreenConninfo: info.Clone.Conninfo,
		BlueBindir: info.Blue.BinDir, GreenBindir: info.Green.BinDir,
		DataDir: info.Clone.DataDir, Port: info.Clone.Port, OSUser: info.OSUser, Log: logf,
	}
}

func pool(t *testing.T, conninfo string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), conninfo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func one[T any](t *testing.T, p *pgxpool.Pool, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := p.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// TestCloneResumesEachPhase takes a clone through every phase in separate
// calls, as a run interrupted at each point would: a stale `redo done at`
// line written before the first start is ignored, an interrupted pg_upgrade
// (a half-made new cluster) is redone, and green ends on 17 with blue's
// data, no inherited publication or slot, and a seed after the slot.
func TestCloneResumesEachPhase(t *testing.T) {
	info := cloneLab(t)
	ctx := context.Background()
	blue := pool(t, info.Blue.Conninfo)
	if _, err := blue.Exec(ctx, "CREATE PUBLICATION pgbg_all FOR ALL TABLES"); err != nil {
		t.Fatal(err)
	}
	slotLSN, err := pg.ParseLSN(one[string](t, blue, "SELECT lsn::text FROM pg_create_logical_replication_slot('pgbg_all', 'pgoutput')"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blue.Exec(ctx, "INSERT INTO public.ledger (client, n) SELECT 999, g FROM generate_series(1, 100) g"); err != nil {
		t.Fatal(err)
	}
	p := cloneParams(info, t.Logf)
	ps := p.Paths()

	p.StopAfter = pg.CloneBackedUp
	res, err := pg.Clone(ctx, p)
	if err != nil || res.From != pg.CloneAbsent || res.To != pg.CloneBackedUp {
		t.Fatalf("clone to backed up: %+v, %v", res, err)
	}
	if ph, _ := p.Phase(17); ph != pg.CloneBackedUp {
		t.Fatalf("phase after the base backup: %s", ph)
	}
	// A stale line, as pg_ctl -l appending to an old log would leave.
	if err := os.WriteFile(ps.RecoveryLog, []byte("LOG:  redo done at 0/1 system usage: stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ph, _ := p.Phase(17); ph != pg.CloneBackedUp {
		t.Fatalf("a stale redo line before the marker counted as recovery: phase %s", ph)
	}

	p.StopAfter = pg.ClonePrepared
	res, err = pg.Clone(ctx, p)
	if err != nil || res.From != pg.CloneBackedUp || res.To != pg.ClonePrepared {
		t.Fatalf("clone to prepared: %+v, %v", res, err)
	}
	if res.RedoDone <= slotLSN || res.RedoDone.String() == "0/1" {
		t.Fatalf("redo done at %s; the slot was created at %s", res.RedoDone, slotLSN)
	}
	t.Logf("slot created at %s, clone's redo done at %s (seed %s + 1)", slotLSN, res.RedoDone, res.RedoDone)
	facts, err := p.ReadCloneFacts()
	if err != nil || facts.Superuser != "postgres" || len(facts.Dropped) == 0 {
		t.Fatalf("facts %+v, %v", facts, err)
	}
	if !strings.Contains(strings.Join(facts.Dropped, ","), "publication pgbg_all (database app)") {
		t.Fatalf("the inherited publication was not dropped: %v", facts.Dropped)
	}
	if pg.PostmasterPID(ps.Basebackup) != 0 {
		t.Fatal("the clone still runs after preparing")
	}

	// pg_upgrade interrupted while linking: the clone's pg_control renamed,
	// the new cluster without its end. Both are discarded and blue cloned
	// again (the slot is unconsumed, so a new clone is as good).
	if err := os.MkdirAll(filepath.Join(ps.Upgrading, "pg_upgrade_output.d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(ps.Basebackup, "global", "pg_control"), filepath.Join(ps.Basebackup, "global", "pg_control.old")); err != nil {
		t.Fatal(err)
	}
	if _, err := blue.Exec(ctx, "INSERT INTO public.ledger (client, n) SELECT 999, g FROM generate_series(101, 150) g"); err != nil {
		t.Fatal(err)
	}
	firstRedo := res.RedoDone
	res, err = pg.Clone(ctx, p)
	if err != nil || res.From != pg.CloneUpgrading || res.To != pg.ClonePrepared || res.Basebackup == 0 {
		t.Fatalf("clone after a ruined link: %+v, %v", res, err)
	}
	if res.RedoDone <= firstRedo {
		t.Fatalf("the new clone's redo done %s is not after the first's %s: a stale seed", res.RedoDone, firstRedo)
	}

	// pg_upgrade interrupted before it linked anything: a half-made cluster.
	if err := os.MkdirAll(filepath.Join(ps.Upgrading, "base"), 0o700); err != nil {
		t.Fatal(err)
	}
	if ph, _ := p.Phase(17); ph != pg.CloneUpgrading {
		t.Fatalf("phase with a half-made new cluster: %s", ph)
	}
	p.StopAfter = ""
	res, err = pg.Clone(ctx, p)
	if err != nil || res.From != pg.CloneUpgrading || res.To != pg.CloneUpgraded {
		t.Fatalf("clone to upgraded: %+v, %v", res, err)
	}
	t.Logf("pg_upgrade --link took %s", res.Upgrade.Round(time.Millisecond))

	green := pool(t, info.Clone.Conninfo)
	if v := one[string](t, green, "SHOW server_version_num"); !strings.HasPrefix(v, "17") {
		t.Fatalf("green is %s", v)
	}
	if n := one[int64](t, green, "SELECT count(*) FROM public.ledger WHERE client = 999"); n != 150 {
		t.Fatalf("green has %d of blue's 150 rows", n)
	}
	if relics, err := pg.RelicReplication(ctx, green); err != nil || len(relics) != 0 {
		t.Fatalf("relics on green: %v, %v", relics, err)
	}
	if v := one[string](t, green, "SHOW max_logical_replication_workers"); v == "0" {
		t.Fatal("the clone's quiet setting max_logical_replication_workers = 0 was carried to green")
	}
	if v := one[string](t, green, "SHOW wal_level"); v != "logical" {
		t.Fatalf("blue's wal_level was not carried to green: %s", v)
	}
	if fileExists(ps.Basebackup) || fileExists(ps.Upgrading) {
		t.Fatal("the clone's old files are still there after the upgrade")
	}

	// Done: a further call changes nothing and keeps the seed's evidence.
	res, err = pg.Clone(ctx, p)
	if err != nil || res.From != pg.CloneUpgraded || res.Basebackup != 0 || res.Upgrade != 0 {
		t.Fatalf("clone again: %+v, %v", res, err)
	}
	if res.RedoDone <= slotLSN {
		t.Fatalf("the recovery log lost its seed: %s", res.RedoDone)
	}
	// The upgraded cluster on a stale green: green's major mismatch is refused.
	if _, err := p.Phase(18); err == nil {
		t.Fatal("a data dir of another major was accepted")
	}
}

// TestRelicsAndOrigins drops inherited replication on a server and moves a
// disabled subscription's origin to a seed.
func TestRelicsAndOrigins(t *testing.T) {
	info := cloneLab(t)
	ctx := context.Background()
	blue := pool(t, info.Blue.Conninfo)
	for _, s := range []string{"CREATE PUBLICATION relic_pub FOR ALL TABLES", "SELECT pg_create_logical_replication_slot('relic_slot', 'pgoutput')"} {
		if _, err := blue.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := pg.RelicReplication(ctx, blue)
	if err != nil || strings.Join(got, ",") != "logical slot relic_slot,publication relic_pub" {
		t.Fatalf("relics %v, %v", got, err)
	}
	relics, err := pg.ReadRelics(ctx, blue)
	if err != nil {
		t.Fatal(err)
	}
	dropped, err := pg.DropRelicsParams{On: "blue", Relics: relics}.Exec(ctx, blue)
	if err != nil || len(dropped) != 2 {
		t.Fatalf("dropped %v, %v", dropped, err)
	}
	if got, _ := pg.RelicReplication(ctx, blue); len(got) != 0 {
		t.Fatalf("left: %v", got)
	}

	// A disabled subscription with no connection: its origin exists.
	if _, err := blue.Exec(ctx, "CREATE SUBSCRIPTION s1 CONNECTION 'host=127.0.0.1 port=1 dbname=x' PUBLICATION p WITH (connect = false, enabled = false, slot_name = NONE, create_slot = false)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blue.Exec(context.Background(), "DROP SUBSCRIPTION IF EXISTS s1") })
	seed, _ := pg.ParseLSN("0/3000101")
	st, err := pg.ReadOrigin(ctx, blue, "s1")
	if err != nil || !st.Exists || st.Enabled || st.Progressed {
		t.Fatalf("origin before: %+v, %v", st, err)
	}
	if ok, _ := pg.OriginAdvanced(ctx, blue, "s1", seed); ok {
		t.Fatal("an origin never advanced reported advanced")
	}
	if err := (pg.OriginAdvanceParams{On: "blue", Origins: []any{st.Origin}, LSN: seed}).Exec(ctx, blue); err != nil {
		t.Fatal(err)
	}
	if ok, err := pg.OriginAdvanced(ctx, blue, "s1", seed); !ok || err != nil {
		t.Fatalf("origin not at the seed: %v", err)
	}
	if ok, _ := pg.OriginAdvanced(ctx, blue, "s1", seed+1); ok {
		t.Fatal("origin reported at a different LSN")
	}
	if st, _ := pg.ReadOrigin(ctx, blue, "nope"); st.Exists {
		t.Fatal("a missing subscription exists")
	}
}

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }

// TestCloneBasebackupPassword takes the base backup as the replication role,
// whose pg_hba line demands SCRAM: the password, read from the passfile,
// reaches pg_basebackup through its environment and is written nowhere.
func TestCloneBasebackupPassword(t *testing.T) {
	info := cloneLab(t)
	t.Setenv("PGPASSFILE", info.Pgpass)
	pw, err := os.ReadFile(info.Pgpass)
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(pw[strings.LastIndexByte(strings.TrimSpace(string(pw)), ':')+1:]))
	if len(password) < 16 {
		t.Fatalf("no password in the lab's passfile")
	}
	p := cloneParams(info, t.Logf)
	p.BlueConninfo = strings.Replace(info.Blue.Conninfo, "user=postgres", "user="+lab.ReplicationRole, 1)
	p.StopAfter = pg.CloneBackedUp
	if _, err := pg.Clone(context.Background(), p); err != nil {
		t.Fatalf("base backup as %s: %v", lab.ReplicationRole, err)
	}
	if ph, _ := p.Phase(17); ph != pg.CloneBackedUp {
		t.Fatalf("phase %s", ph)
	}
	err = filepath.Walk(p.Paths().Work, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Mode()&os.ModeSocket != 0 {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), password) {
			t.Errorf("%s holds the password", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Without the password the same backup is refused by blue: the test
	// proves the password was needed.
	t.Setenv("PGPASSFILE", "/nonexistent")
	q := p
	q.DataDir = p.DataDir + "-nopw"
	// The lab's connection strings name their passfile (passfile=), which
	// wins over PGPASSFILE.
	q.BlueConninfo = strings.Replace(p.BlueConninfo, "passfile="+info.Pgpass, "passfile=/nonexistent", 1)
	if _, err := pg.Clone(context.Background(), q); err == nil {
		t.Fatal("a base backup without the password succeeded: the test proves nothing")
	}
	os.RemoveAll(q.Paths().Work)
	os.RemoveAll(q.Paths().Partial)
}

// BenchmarkClone makes green from blue on the lab (pg_basebackup, recovery
// with blue's binaries, pg_upgrade --link 15 -> 17, start), each iteration
// into a new folder, and reports each phase's seconds.
func BenchmarkClone(b *testing.B) {
	info := labtest.Start(b, labtest.StartParams{Strategy: "clone"})
	dir := info.Dir
	var bb, rec, up, total time.Duration
	for i := 0; i < b.N; i++ {
		p := cloneParams(info, nil)
		p.DataDir = filepath.Join(dir, fmt.Sprintf("bench-%d", i))
		start := time.Now()
		res, err := pg.Clone(context.Background(), p)
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		bb, rec, up = bb+res.Basebackup, rec+res.Recovery, up+res.Upgrade
		b.StopTimer()
		if err := lab.StopServer(context.Background(), p.DataDir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(bb.Seconds()/n, "basebackup_s")
	b.ReportMetric(rec.Seconds()/n, "recovery_s")
	b.ReportMetric(up.Seconds()/n, "upgrade_s")
	b.ReportMetric(total.Seconds()/n, "clone_s")
}
