package steps

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// The initial sync at size (issue 15): the copy strategy's `run --through
// wait-catch-up` against pgcopydb clone and pg_dump/pg_restore -j2, on the
// same blue and green, in one run; then analyze-green against vacuumdb
// --analyze-only -j2. PGBG_BENCH_SCALE is the pgbench scale (default 1,
// for CI's time; the figures in issue 15 are at 100 and 500);
// By default the lab's configuration as it is: one publication for every
// table, copy: auto. PGBG_BENCH_PUBS=one copies that publication by table
// sync; PGBG_BENCH_PUBS=split gives pgbench_accounts a publication of its
// own by table sync and copies the other tables in one snapshot (copy:
// snapshot); PGBG_BENCH_PUBS=tablesync copies those by table sync too;
// PGBG_BENCH_PUBS=snapshot copies every table in one snapshot,
// pgbench_accounts split. PGBG_BENCH_DATA=pgbench leaves out the
// small tables, partitions and sequences: the lab's data and pgbench's,
// most bytes in one table. PGBG_BENCH_JOBS sets sync.copy_jobs. Each tool copies into a database
// of its own on green, dropped afterwards.

// syncBenchScale is the pgbench scale of the benchmark's data.
func syncBenchScale() int {
	if n, err := strconv.Atoi(os.Getenv("PGBG_BENCH_SCALE")); err == nil && n > 0 {
		return n
	}
	return 1
}

// benchDataSQL adds the rest of issue 15's data to blue: 400 small tables
// (a primary key, a secondary index, 200 rows each), a table of 64 hash
// partitions and 2,000 sequences.
const benchDataSQL = `DO $$
BEGIN
  FOR i IN 1..400 LOOP
    EXECUTE format('CREATE TABLE public.bench_small_%s (id bigserial PRIMARY KEY, k int NOT NULL, v text)', i);
    EXECUTE format('INSERT INTO public.bench_small_%s (k, v) SELECT g, md5(g::text) FROM generate_series(1, 200) g', i);
    EXECUTE format('CREATE INDEX ON public.bench_small_%s (k)', i);
  END LOOP;
  CREATE TABLE public.bench_parts (id bigint PRIMARY KEY, k int NOT NULL, v text) PARTITION BY HASH (id);
  FOR i IN 0..63 LOOP
    EXECUTE format('CREATE TABLE public.bench_parts_%s PARTITION OF public.bench_parts FOR VALUES WITH (MODULUS 64, REMAINDER %s)', i, i);
  END LOOP;
  INSERT INTO public.bench_parts SELECT g, g % 1000, md5(g::text) FROM generate_series(1, 128000) g;
  FOR i IN 1..2000 LOOP
    EXECUTE format('CREATE SEQUENCE public.bench_seq_%s', i);
  END LOOP;
END $$`

// syncBench is one lab with the benchmark's data on blue.
type syncBench struct {
	info    *lab.Info
	runner  *Runner
	journal string
	lines   chan Line
}

func newSyncBench(b *testing.B, scale int) *syncBench {
	b.Helper()
	info := labtest.Start(b, labtest.StartParams{Strategy: "copy"})
	start := time.Now()
	pgbench := exec.Command(filepath.Join(info.Green.BinDir, "pgbench"), "-i", "-q", "-s", strconv.Itoa(scale), "-I", "dtGvp", info.Blue.Conninfo)
	if out, err := pgbench.CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v: %s", err, out)
	}
	ctx := context.Background()
	blue, err := pg.NewPool(pg.PoolParams{Conninfo: info.Blue.Conninfo})
	if err != nil {
		b.Fatal(err)
	}
	defer blue.Close()
	if os.Getenv("PGBG_BENCH_DATA") != "pgbench" {
		if _, err := blue.Exec(ctx, benchDataSQL); err != nil {
			b.Fatalf("benchmark data: %v", err)
		}
	}
	var size int64
	if _, err := blue.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatalf("vacuum: %v", err)
	}
	_ = blue.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size)
	fmt.Printf("sync bench: scale %d, blue's database %.2f GB, built in %s\n", scale, float64(size)/1e9, time.Since(start).Round(time.Second))

	cfg, err := config.Load(info.Config)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Timeouts.LagWait.Duration = 2 * time.Hour
	switch os.Getenv("PGBG_BENCH_PUBS") {
	case "one":
		// The lab's single FOR ALL TABLES publication, copied by table sync.
		cfg.Publications = []config.Publication{{Name: "pgbg_all", Copy: config.CopyTableSync}}
	case "snapshot":
		// Every table in one snapshot (copy-data), pgbench_accounts split
		// in ranges of its heap on every session.
		cfg.Publications = []config.Publication{{Name: "pgbg_all", Copy: config.CopySnapshot}}
	case "tablesync":
		// The largest table in a publication of its own, so its copy starts
		// first (its subscription is enabled first) instead of after the
		// 475 others in pg_subscription_rel's order; every table copied by
		// table sync.
		cfg.Publications = []config.Publication{{Name: "pgbg_big", Tables: []string{"public.pgbench_accounts"}}, {Name: "pgbg_all"}}
	case "split":
		// The largest table by table sync in a publication of its own, the
		// 475 others in one snapshot (copy-data).
		cfg.Publications = []config.Publication{{Name: "pgbg_big", Tables: []string{"public.pgbench_accounts"}}, {Name: "pgbg_all", Copy: config.CopySnapshot}}
	default:
		// The default configuration: copy: auto decides.
	}
	if n, err := strconv.Atoi(os.Getenv("PGBG_BENCH_JOBS")); err == nil && n > 0 {
		cfg.Sync.CopyJobs = n // sync.copy_jobs, as a file would set it
	}
	fmt.Printf("sync bench: publications %s, %d copy sessions\n", strings.Join(cfg.PublicationNames(), ", "), cfg.CopyJobs())
	store, err := state.Open(filepath.Join(info.Dir, "pgbluegreen.state.json"), state.OpenParams{})
	if err != nil {
		b.Fatal(err)
	}
	jpath := filepath.Join(info.Dir, "pgbluegreen.state.journal.jsonl")
	j, err := state.OpenJournal(jpath)
	if err != nil {
		b.Fatal(err)
	}
	rb, err := pg.NewPool(pg.PoolParams{Conninfo: cfg.Blue.Conninfo, OnQuery: QueryJournal(j, "blue")})
	if err != nil {
		b.Fatal(err)
	}
	rg, err := pg.NewPool(pg.PoolParams{Conninfo: cfg.Green.Conninfo, OnQuery: QueryJournal(j, "green")})
	if err != nil {
		b.Fatal(err)
	}
	r := NewRunner(cfg, store, j)
	r.Blue, r.Green = rb, rg
	sb := &syncBench{info: info, runner: r, journal: jpath, lines: make(chan Line, 1024)}
	r.Out = sb.lines
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l := range sb.lines {
			if l.Step == "wait-catch-up" || l.Step == "create-slots" || l.Step == "enable-subscriptions" || l.Step == copyDataID || l.Level != "info" {
				fmt.Printf("  %s %s %s: %s\n", l.Time.Format("15:04:05"), l.Level, l.Step, l.Text)
			}
		}
	}()
	b.Cleanup(func() {
		close(sb.lines)
		<-done
		rb.Close()
		rg.Close()
		j.Close()
		store.Close()
	})
	return sb
}

// timeCommand runs a program with PATH starting at green's bin folder (its
// pg_dump reads blue) and returns how long it took.
func (sb *syncBench) timeCommand(b *testing.B, name string, args ...string) time.Duration {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "PATH="+sb.info.Green.BinDir+":"+os.Getenv("PATH"))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, lastLines(string(out), 15))
	}
	return time.Since(start)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// greenDB is green's connection string to database db.
func (sb *syncBench) greenDB(db string) string {
	return strings.Replace(sb.info.Green.Conninfo, "dbname=app", "dbname="+db, 1)
}

// checkpoint writes out what blue and green hold dirty, so that no tool
// timed pays for the writes of the one before it.
func (sb *syncBench) checkpoint(b *testing.B) {
	b.Helper()
	sb.psqlGreen(b, "CHECKPOINT")
	sb.timeCommand(b, filepath.Join(sb.info.Green.BinDir, "psql"), "-X", "-q", "-c", "CHECKPOINT", sb.info.Blue.Conninfo)
}

func (sb *syncBench) psqlGreen(b *testing.B, sql string) {
	b.Helper()
	sb.timeCommand(b, filepath.Join(sb.info.Green.BinDir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql, sb.greenDB("postgres"))
}

// syncBenchResult is the benchmark's JSON line.
type syncBenchResult struct {
	Scale       int     `json:"scale"`
	CopySec     float64 `json:"copy_through_wait_catch_up_s"`
	PgcopydbSec float64 `json:"pgcopydb_clone_s"`
	// PgcopydbSplitSec is pgcopydb clone --split-tables-larger-than 64MB.
	PgcopydbSplitSec   float64 `json:"pgcopydb_clone_split_s"`
	RatioPgcopydbSplit float64 `json:"copy_over_pgcopydb_split"`
	DumpRestoreSec     float64 `json:"pg_dump_restore_j2_s"`
	RatioPgcopydb      float64 `json:"copy_over_pgcopydb"`
	RatioRestore       float64 `json:"copy_over_dump_restore"`
	AnalyzeSec         float64 `json:"analyze_green_s"`
	VacuumdbSec        float64 `json:"vacuumdb_analyze_only_j2_s"`
	JournalBytes       int64   `json:"journal_bytes"`
}

// BenchmarkInitialSync measures issue 15's initial sync once, whatever
// b.N: PGBG_BENCH_SCALE=100 make bench-sync.
func BenchmarkInitialSync(b *testing.B) {
	scale := syncBenchScale()
	sb := newSyncBench(b, scale)
	ctx := context.Background()
	res := syncBenchResult{Scale: scale}

	sb.checkpoint(b)
	// Every step up to analyze-green, timed; the sync is done at
	// wait-catch-up (refresh-matviews and copy-large-objects, between it
	// and analyze-green, are not part of it).
	start := time.Now()
	for _, s := range sb.runner.Steps {
		if s.ID == "analyze-green" {
			break
		}
		t := time.Now()
		if _, err := sb.runner.Run(ctx, s.ID, RunParams{Confirmed: true}); err != nil {
			b.Fatalf("%s: %v", s.ID, err)
		}
		fmt.Printf("  %-24s %8.1f s\n", s.ID, time.Since(t).Seconds())
		if s.ID == "wait-catch-up" {
			res.CopySec = time.Since(start).Seconds()
			if fi, err := os.Stat(sb.journal); err == nil {
				res.JournalBytes = fi.Size()
			}
		}
	}
	t := time.Now()
	if _, err := sb.runner.Run(ctx, "analyze-green", RunParams{Confirmed: true}); err != nil {
		b.Fatalf("analyze-green: %v", err)
	}
	res.AnalyzeSec = time.Since(t).Seconds()
	res.VacuumdbSec = sb.timeCommand(b, filepath.Join(sb.info.Green.BinDir, "vacuumdb"), "--analyze-only", "-j", "2", "-d", sb.greenDB("app")).Seconds()

	// pgcopydb clone, as issue 15 ran it: 2 table jobs, 2 index jobs; then
	// the same with tables of 64 MB or more split, as a snapshot copy does.
	pgcopydb := func(extra ...string) float64 {
		sb.psqlGreen(b, "CREATE DATABASE bench_pgcopydb")
		work := filepath.Join(sb.info.Dir, "pgcopydb")
		sb.checkpoint(b)
		args := append([]string{"clone", "--source", sb.info.Blue.Conninfo, "--target", sb.greenDB("bench_pgcopydb"),
			"--table-jobs", "2", "--index-jobs", "2", "--dir", work}, extra...)
		took := sb.timeCommand(b, "pgcopydb", args...).Seconds()
		sb.psqlGreen(b, "DROP DATABASE bench_pgcopydb")
		_ = os.RemoveAll(work)
		return took
	}
	res.PgcopydbSec = pgcopydb()
	res.PgcopydbSplitSec = pgcopydb("--split-tables-larger-than", "64MB")

	// pg_dump -Fd -j2, then pg_restore -j2 into a new database.
	dump := filepath.Join(sb.info.Dir, "bench.dump")
	sb.psqlGreen(b, "CREATE DATABASE bench_restore")
	sb.checkpoint(b)
	res.DumpRestoreSec = sb.timeCommand(b, filepath.Join(sb.info.Green.BinDir, "pg_dump"), "-Fd", "-j", "2", "-f", dump, sb.info.Blue.Conninfo).Seconds()
	res.DumpRestoreSec += sb.timeCommand(b, filepath.Join(sb.info.Green.BinDir, "pg_restore"), "-j", "2", "-d", sb.greenDB("bench_restore"), dump).Seconds()
	sb.psqlGreen(b, "DROP DATABASE bench_restore")
	_ = os.RemoveAll(dump)

	res.RatioPgcopydb = res.CopySec / res.PgcopydbSec
	res.RatioPgcopydbSplit = res.CopySec / res.PgcopydbSplitSec
	res.RatioRestore = res.CopySec / res.DumpRestoreSec
	fmt.Printf("initial sync at scale %d: copy strategy through wait-catch-up %.1f s, pgcopydb clone %.1f s (ratio %.2f), pgcopydb clone --split-tables-larger-than 64MB %.1f s (ratio %.2f), pg_dump/pg_restore -j2 %.1f s (ratio %.2f)\n",
		scale, res.CopySec, res.PgcopydbSec, res.RatioPgcopydb, res.PgcopydbSplitSec, res.RatioPgcopydbSplit, res.DumpRestoreSec, res.RatioRestore)
	fmt.Printf("statistics: analyze-green %.1f s, vacuumdb --analyze-only -j2 %.1f s; journal %d bytes\n", res.AnalyzeSec, res.VacuumdbSec, res.JournalBytes)
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	b.ReportMetric(res.RatioPgcopydb, "copy/pgcopydb")
	b.ReportMetric(res.CopySec, "copy_s")
}
