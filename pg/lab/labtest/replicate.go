package labtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
)

// The parts of setting up blue -> green by hand that the tests of the
// engine and of package pg share (each makes its subscription with
// package pg, which the tests of pg itself cannot be given from here).

// Exec runs one statement on pool within 30 s, or fails the test.
func Exec(tb testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pool.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// SchemaToGreen copies blue's schema of database app to green with green's
// pg_dump, as copy-schema does.
func SchemaToGreen(tb testing.TB, info *lab.Info, green *pgxpool.Pool) {
	tb.Helper()
	dump := filepath.Join(info.Dir, "schema.sql")
	cmd := exec.Command(filepath.Join(info.Green.BinDir, "pg_dump"), "--schema-only", "--no-publications", "--no-subscriptions", "-f", dump, "-d", info.Blue.Conninfo)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("pg_dump: %v\n%s", err, out)
	}
	cmd = exec.Command(filepath.Join(info.Green.BinDir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", dump, "-d", info.Green.Conninfo)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("psql < schema: %v\n%s", err, out)
	}
	// A table with REPLICA IDENTITY FULL and no index is scanned for each
	// replicated UPDATE/DELETE; green (PG16+) uses a plain index (LAB-NOTES).
	Exec(tb, green, "CREATE INDEX events_log_at ON public.events_log (at)")
}

// WaitCaughtUp waits until every table of green's subscription sub is
// ready and its slot on blue is within 64 kB of blue's WAL.
func WaitCaughtUp(tb testing.TB, blue, green *pgxpool.Pool, sub string) {
	tb.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var notReady int
		var lag int64
		err := green.QueryRow(ctx, `SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1 AND r.srsubstate <> 'r'`, sub).Scan(&notReady)
		if err == nil {
			err = blue.QueryRow(ctx, `SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 1e9)::bigint FROM pg_replication_slots WHERE slot_name = $1 AND active`, sub).Scan(&lag)
		}
		if err != nil {
			tb.Fatal(err)
		}
		if notReady == 0 && lag < 64<<10 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("green did not catch up: %d tables not ready, lag %d", notReady, lag)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Logs is the end of blue's and green's server logs, for a failure.
func Logs(info *lab.Info) string {
	var b strings.Builder
	for _, f := range []string{"blue.log", "green.log"} {
		data, _ := os.ReadFile(filepath.Join(info.Dir, "logs", f))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", f, data)
	}
	return b.String()
}

// Publish readies blue's app for a feed as the copy strategy does: the
// table without a key gets REPLICA IDENTITY FULL, a publication FOR ALL
// TABLES and a logical slot are named name.
func Publish(tb testing.TB, blue *pgxpool.Pool, name string) {
	tb.Helper()
	Exec(tb, blue, "ALTER TABLE public.events_log REPLICA IDENTITY FULL")
	Exec(tb, blue, "CREATE PUBLICATION "+name+" FOR ALL TABLES")
	Exec(tb, blue, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", name)
}

// ReplicationPassword is the replication role's password, the last field
// of the lab's pgpass.
func ReplicationPassword(tb testing.TB, info *lab.Info) string {
	tb.Helper()
	b, err := os.ReadFile(info.Pgpass)
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Split(strings.TrimSpace(string(b)), ":")
	return f[len(f)-1]
}
