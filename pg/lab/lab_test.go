package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
)

// requireLab skips (outside CI) or fails (CI=true) when the lab cannot run
// here: it needs two PostgreSQL majors (15 and the cached 17), PgBouncer, and
// as root the postgres OS user.
func requireLab(t *testing.T) {
	t.Helper()
	var why string
	builds, _ := FindBuilds(DefaultCacheDir())
	if _, err := bouncerBinary(); err != nil {
		why = err.Error()
	}
	if len(builds) < 2 || builds[len(builds)-1].Major < 17 {
		why = "the lab tests need PostgreSQL 15 and 17: run `make deps`"
	}
	if _, err := currentOSUser(); err != nil {
		why = err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// labDir makes a lab folder the postgres OS user can enter (t.TempDir()'s
// parents are 0700 root).
func labDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "pgbg-lab-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Down(context.Background(), dir, true, nil); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		os.RemoveAll(dir)
	})
	return dir
}

func mustConnect(t *testing.T, ctx context.Context, conninfo string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connecting to %s: %v", conninfo, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, ctx context.Context, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// TestLab runs one lab through its life: up with two majors, every endpoint
// reachable, up again changes nothing, load and verify round trip, verify
// catches a lost and a duplicated write, down leaves no process behind.
func TestLab(t *testing.T) {
	requireLab(t)
	ctx := context.Background()
	dir := labDir(t)
	info, err := Up(ctx, UpParams{Dir: dir})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}

	t.Run("two majors and every endpoint answers", func(t *testing.T) {
		if info.Blue.Major != 15 || info.Green.Major != 17 {
			t.Fatalf("blue %d green %d, want 15 and 17", info.Blue.Major, info.Green.Major)
		}
		blue := mustConnect(t, ctx, info.Blue.Conninfo, pgx.QueryExecModeCacheStatement)
		green := mustConnect(t, ctx, info.Green.Conninfo, pgx.QueryExecModeCacheStatement)
		if v := queryString(t, ctx, blue, "SHOW server_version_num"); !strings.HasPrefix(v, "15") {
			t.Errorf("blue is %s", v)
		}
		if v := queryString(t, ctx, green, "SHOW server_version_num"); !strings.HasPrefix(v, "17") {
			t.Errorf("green is %s", v)
		}
		if v := queryString(t, ctx, blue, "SHOW wal_level"); v != "logical" {
			t.Errorf("blue wal_level %s", v)
		}
		// Through PgBouncer as the application role, in exec mode.
		app := mustConnect(t, ctx, info.PgBouncer.Conninfo, pgx.QueryExecModeExec)
		if n := queryString(t, ctx, app, "SELECT count(*)::text FROM public.accounts"); n != "3000" {
			t.Errorf("accounts through PgBouncer: %s rows", n)
		}
		if u := queryString(t, ctx, app, "SELECT current_user"); u != AppRole {
			t.Errorf("PgBouncer connection is %s", u)
		}
		console := mustConnect(t, ctx, info.PgBouncer.AdminConninfo, pgx.QueryExecModeSimpleProtocol)
		if v := queryString(t, ctx, console, "SHOW VERSION"); !strings.Contains(v, "PgBouncer") {
			t.Errorf("SHOW VERSION said %q", v)
		}
		// The hard cases are there.
		for _, q := range []string{
			"SELECT count(*)::text FROM pg_class c WHERE c.relname = 'events_log' AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = c.oid AND contype = 'p')",
			`SELECT count(*)::text FROM pg_class WHERE relname = 'OrderItems'`,
			"SELECT count(*)::text FROM pg_partitioned_table WHERE partrelid = 'public.measurements'::regclass",
			"SELECT count(*)::text FROM pg_extension WHERE extname = 'pg_trgm'",
			"SELECT count(*)::text FROM pg_class s WHERE relname = 'invoice_no' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = s.oid AND d.deptype IN ('a', 'i'))",
			"SELECT count(*)::text FROM information_schema.columns WHERE table_schema = 'inventory' AND table_name = 'items' AND is_identity = 'YES'",
		} {
			if got := queryString(t, ctx, blue, q); got != "1" {
				t.Errorf("%s: %s", q, got)
			}
		}
		// The replication role logs in with the pgpass password (SCRAM) and
		// not without it.
		pw := readPgpassPassword(info.Pgpass, ReplicationRole)
		base := strings.Replace(info.Blue.Conninfo, "user=postgres", "user="+ReplicationRole, 1)
		repl := mustConnect(t, ctx, base+" password="+pw, pgx.QueryExecModeExec)
		if u := queryString(t, ctx, repl, "SELECT current_user"); u != ReplicationRole {
			t.Errorf("replication role connection is %s", u)
		}
		if c, err := pgx.Connect(ctx, base+" password=wrong"); err == nil {
			c.Close(ctx)
			t.Error("the replication role logged in with a wrong password")
		}
		cfg, err := os.ReadFile(filepath.Join(dir, ConfigFile))
		if err != nil || !strings.Contains(string(cfg), "strategy: copy") || !strings.Contains(string(cfg), "port="+strconv.Itoa(info.Green.Port)) {
			t.Errorf("pgbluegreen.yaml: %v\n%s", err, cfg)
		}
	})

	t.Run("up twice gives the same lab", func(t *testing.T) {
		blue := mustConnect(t, ctx, info.Blue.Conninfo, pgx.QueryExecModeExec)
		const digest = "SELECT md5(string_agg(a::text, ',' ORDER BY id)) FROM public.accounts a"
		before := queryString(t, ctx, blue, digest)
		pids := []int{ServerPID(info.Blue.DataDir), ServerPID(info.Green.DataDir), bouncerPID(&info.PgBouncer)}
		again, err := Up(ctx, UpParams{Dir: dir})
		if err != nil {
			t.Fatalf("second lab up: %v", err)
		}
		if again.Blue.Port != info.Blue.Port || again.Green.Port != info.Green.Port || again.PgBouncer.Port != info.PgBouncer.Port || again.Clone.Port != info.Clone.Port {
			t.Errorf("ports changed: %+v then %+v", info, again)
		}
		after := []int{ServerPID(info.Blue.DataDir), ServerPID(info.Green.DataDir), bouncerPID(&info.PgBouncer)}
		if pids[0] != after[0] || pids[1] != after[1] || pids[2] != after[2] {
			t.Errorf("running processes were restarted: %v then %v", pids, after)
		}
		if got := queryString(t, ctx, blue, digest); got != before {
			t.Error("the data changed")
		}
	})

	t.Run("load and verify round trip", func(t *testing.T) {
		// This test's round trip is app's (the two databases' is TestLabLoginsAndDatabases').
		res, err := Load(ctx, LoadParams{Dir: dir, Rate: 100, Duration: 2 * time.Second, Clients: 3, Databases: []string{AppDB}})
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		if res.Committed == 0 || res.Errors != 0 {
			t.Fatalf("load: %+v", res)
		}
		entries, err := readLedger(info.Ledger)
		if err != nil || int64(len(entries)) != res.Committed {
			t.Fatalf("ledger has %d entries (%v), load committed %d", len(entries), err, res.Committed)
		}
		v, err := Verify(ctx, dir)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if !v.OK() || v.LedgerEntries != len(entries) || v.Note == "" {
			t.Fatalf("verify after a clean load: %+v", v)
		}
	})

	t.Run("load rides through a PgBouncer PAUSE", func(t *testing.T) {
		console := mustConnect(t, ctx, info.PgBouncer.AdminConninfo, pgx.QueryExecModeSimpleProtocol)
		type out struct {
			res LoadResult
			err error
		}
		before, _ := readLedger(info.Ledger)
		done := make(chan out, 1)
		go func() {
			res, err := Load(ctx, LoadParams{Dir: dir, Rate: 100, Duration: 3 * time.Second, Clients: 3, Databases: []string{AppDB}})
			done <- out{res, err}
		}()
		// Pause only once writes are flowing (the ledger grows).
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if now, _ := readLedger(info.Ledger); len(now) > len(before) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no write acknowledged within 10 s")
			}
		}
		if _, err := console.Exec(ctx, "PAUSE "+AppDB); err != nil {
			t.Fatalf("PAUSE: %v", err)
		}
		time.Sleep(800 * time.Millisecond)
		if _, err := console.Exec(ctx, "RESUME "+AppDB); err != nil {
			t.Fatalf("RESUME: %v", err)
		}
		o := <-done
		if o.err != nil || o.res.Errors != 0 || o.res.Committed == 0 {
			t.Fatalf("load across a PAUSE: %+v, %v", o.res, o.err)
		}
		// The clients waited through the pause rather than failing.
		if o.res.MaxStallMs < 500 {
			t.Errorf("longest stall %.0f ms although writes were paused for 800 ms", o.res.MaxStallMs)
		}
		if v, err := Verify(ctx, dir); err != nil || !v.OK() {
			t.Fatalf("verify after the pause: %+v, %v", v, err)
		}
	})

	t.Run("verify compares blue and green once green replicates", func(t *testing.T) {
		replicateToGreen(t, ctx, info)
		var v VerifyResult
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			var err error
			if v, err = Verify(ctx, dir); err != nil {
				t.Fatal(err)
			}
			if v.OK() && v.TablesCompared > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("blue and green never matched: %+v", v)
			}
		}
		if v.TablesCompared < 9 || v.Note != "" {
			t.Fatalf("compared %d tables (note %q), want every table of public and inventory", v.TablesCompared, v.Note)
		}
		green := mustConnect(t, ctx, info.Green.Conninfo, pgx.QueryExecModeExec)
		if _, err := green.Exec(ctx, `UPDATE public."OrderItems" SET qty = qty + 1 WHERE id = 1`); err != nil {
			t.Fatal(err)
		}
		v, err := Verify(ctx, dir)
		if err != nil || len(v.MismatchedTables) != 1 || v.MismatchedTables[0] != `public."OrderItems"` {
			t.Fatalf("after changing a row on green only: %+v, %v", v, err)
		}
		if _, err := green.Exec(ctx, "DROP SUBSCRIPTION lab_test"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("verify reports a lost and a duplicated write", func(t *testing.T) {
		entries, _ := readLedger(info.Ledger)
		if len(entries) < 2 {
			t.Fatal("no ledger to tamper with")
		}
		blue := mustConnect(t, ctx, info.Blue.Conninfo, pgx.QueryExecModeExec)
		gone, copied := entries[0], entries[1]
		if _, err := blue.Exec(ctx, "DELETE FROM public.ledger WHERE id = $1", gone.id); err != nil {
			t.Fatal(err)
		}
		v, err := Verify(ctx, dir)
		if err != nil || v.Lost != 1 || v.Duplicated != 0 || v.OK() {
			t.Fatalf("after deleting one acknowledged row: %+v, %v", v, err)
		}
		if _, err := blue.Exec(ctx, "INSERT INTO public.ledger (client, n, payload) VALUES ($1, $2, 'copy')", copied.client, copied.n); err != nil {
			t.Fatal(err)
		}
		v, err = Verify(ctx, dir)
		if err != nil || v.Lost != 1 || v.Duplicated != 1 {
			t.Fatalf("after copying one acknowledged row: %+v, %v", v, err)
		}
	})

	t.Run("down leaves no process behind", func(t *testing.T) {
		pids := labPids(info)
		if len(pids) < 3 {
			t.Fatalf("found only %d lab processes before down", len(pids))
		}
		if err := Down(ctx, dir, false, nil); err != nil {
			t.Fatalf("lab down: %v", err)
		}
		for _, pid := range pids {
			if oscmd.PidAlive(pid) {
				t.Errorf("process %d still runs after down", pid)
			}
		}
		st, err := Status(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st {
			if c.Running {
				t.Errorf("status says %s runs", c.Name)
			}
		}
	})
}

// labPids lists the postmasters, their children and PgBouncer.
func labPids(info *Info) []int {
	parents := map[int]bool{}
	var pids []int
	for _, d := range []string{info.Blue.DataDir, info.Green.DataDir} {
		if pid := ServerPID(d); pid != 0 {
			parents[pid] = true
			pids = append(pids, pid)
		}
	}
	for _, b := range info.Bouncers() {
		if pid := bouncerPID(b); pid != 0 {
			pids = append(pids, pid)
		}
	}
	if pid := sshdPID(&info.SSHD); info.SSHD.PidFile != "" && pid != 0 {
		pids = append(pids, pid)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); parents[ppid] {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// TestUpInterruptedStopsWhatItStarted cancels `lab up` (as Ctrl+C does) right
// after its first server started: nothing may be left running.
func TestUpInterruptedStopsWhatItStarted(t *testing.T) {
	requireLab(t)
	dir := labDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := cancelOnLine{match: "started on port", cancel: cancel}
	_, err := Up(ctx, UpParams{Dir: dir, Log: &log})
	if err == nil {
		t.Fatal("lab up finished although it was interrupted")
	}
	for _, d := range dataDirs(dir) {
		if pid := ServerPID(d); pid != 0 {
			t.Errorf("%s still runs (pid %d) after an interrupted up", d, pid)
		}
	}
	if info, err := ReadInfo(dir); err == nil && bouncerPID(&info.PgBouncer) != 0 {
		t.Error("PgBouncer still runs after an interrupted up")
	}
}

type cancelOnLine struct {
	match  string
	cancel func()
}

func (c *cancelOnLine) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.match) {
		c.cancel()
	}
	return len(p), nil
}

// replicateToGreen does by hand what the copy strategy's steps do: replica
// identity, publication, schema copied with green's pg_dump, subscription.
func replicateToGreen(t *testing.T, ctx context.Context, info *Info) {
	t.Helper()
	blue := mustConnect(t, ctx, info.Blue.Conninfo, pgx.QueryExecModeExec)
	for _, q := range []string{"ALTER TABLE public.events_log REPLICA IDENTITY FULL", "CREATE PUBLICATION lab_test FOR ALL TABLES"} {
		if _, err := blue.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	dump, err := exec.CommandContext(ctx, filepath.Join(info.Green.BinDir, "pg_dump"), "--schema-only",
		"--no-publications", "--no-subscriptions", "-d", info.Blue.Conninfo).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	green := mustConnect(t, ctx, info.Green.Conninfo, pgx.QueryExecModeExec)
	if _, err := green.Exec(ctx, string(dump)); err != nil {
		t.Fatalf("restoring the schema on green: %v", err)
	}
	pw := readPgpassPassword(info.Pgpass, ReplicationRole)
	src := fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s password=%s", info.Blue.Port, AppDB, ReplicationRole, pw)
	for _, q := range []string{"SET log_statement = 'none'", "CREATE SUBSCRIPTION lab_test CONNECTION '" + src + "' PUBLICATION lab_test"} {
		if _, err := green.Exec(ctx, q); err != nil {
			t.Fatalf("subscribing green: %v", err)
		}
	}
}
