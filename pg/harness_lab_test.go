package pg

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// The lab harness of the cutover tests and benchmarks: a lab (blue 15,
// green 17, PgBouncer) with blue -> green replication set up with plain SQL,
// the way the copy strategy's steps do it.

// testLab is one lab with its pools.
type testLab struct {
	info        *lab.Info
	blue, green *pgxpool.Pool
	password    string
}

// newLab brings up a lab (blue 15, green 17, PgBouncer) with a pool on
// each server and the replication role's password.
func newLab(tb testing.TB) *testLab {
	tb.Helper()
	info := labtest.Start(tb, labtest.StartParams{})
	l := &testLab{info: info}
	l.blue = mustPool(tb, info.Blue.Conninfo)
	l.green = mustPool(tb, info.Green.Conninfo)
	l.password = labtest.ReplicationPassword(tb, info)
	return l
}

func mustPool(tb testing.TB, conninfo string) *pgxpool.Pool {
	tb.Helper()
	pool, err := NewPool(PoolParams{Conninfo: conninfo, MaxConns: 6})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

func mustExec(tb testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	tb.Helper()
	labtest.Exec(tb, pool, sql, args...)
}

// replicate sets up blue -> green as the copy strategy does: replica
// identity, publication and slot on blue, schema copied with green's
// pg_dump, a subscription with the initial copy, then waits until every
// table is ready and the lag is small. It returns the subscription's name.
func (l *testLab) replicate(tb testing.TB) string {
	tb.Helper()
	const name = "pgbg_all"
	labtest.Publish(tb, l.blue, name)
	l.schemaToGreen(tb)

	ctx := context.Background()
	conninfo := l.subscriptionConninfo()
	if err := CreateSubscription(ctx, l.green, SubscriptionParams{Name: name, Publication: name, Slot: name, Conninfo: conninfo, CopyData: true}); err != nil {
		tb.Fatal(err)
	}
	mustExec(tb, l.green, "ALTER SUBSCRIPTION "+name+" ENABLE")
	l.waitCaughtUp(tb, name)
	return name
}

// subscriptionConninfo is how green reaches blue as the replication role.
func (l *testLab) subscriptionConninfo() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s password=%s", l.info.Blue.Port, lab.AppDB, lab.ReplicationRole, QuoteConninfoValue(l.password))
}

// schemaToGreen copies blue's schema to green, as copy-schema does.
func (l *testLab) schemaToGreen(tb testing.TB) {
	tb.Helper()
	labtest.SchemaToGreen(tb, l.info, l.green)
}

// waitCaughtUp waits until every table of the subscription is ready and the
// slot is within 64 kB of blue's WAL.
func (l *testLab) waitCaughtUp(tb testing.TB, sub string) {
	tb.Helper()
	labtest.WaitCaughtUp(tb, l.blue, l.green, sub)
}

// waitSlotDrained waits until a slot on pool has confirmed everything
// written before the call; the lab's logs are shown if it is slow.
func waitSlotDrained(tb testing.TB, l *testLab, pool *pgxpool.Pool, slot string) {
	tb.Helper()
	labtest.WaitSlotDrained(tb, pool, slot, func() string { return labLogs(l) })
}

// labLogs is the end of blue's and green's server logs, for a failure.
func labLogs(l *testLab) string { return labtest.Logs(l.info) }

// writeAlong runs sql on pool over and over, $1 the number of the write,
// until the returned stop is called; stop fails tb on a write that failed
// and returns how many committed.
func writeAlong(tb testing.TB, pool *pgxpool.Pool, sql string) (stop func() int64) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var writes atomic.Int64
	writing := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if _, err := pool.Exec(ctx, sql, writes.Load()); err != nil && ctx.Err() == nil {
				writing <- err
				return
			}
			writes.Add(1)
		}
		writing <- nil
	}()
	return func() int64 {
		tb.Helper()
		cancel()
		if err := <-writing; err != nil {
			tb.Fatal(err)
		}
		return writes.Load()
	}
}

// sameRows fails tb unless table's rows on green are blue's (those blue
// holds where blueWhere says, "" for all): the same count and hash, and
// some.
func (l *testLab) sameRows(tb testing.TB, table, blueWhere string) {
	tb.Helper()
	ctx := context.Background()
	q := "SELECT count(*)::text || ' ' || coalesce(sum(hashtext(t::text)), 0)::text FROM " + table + " t"
	var b, g string
	if err := l.blue.QueryRow(ctx, q+blueWhere).Scan(&b); err != nil {
		tb.Fatal(err)
	}
	if err := l.green.QueryRow(ctx, q).Scan(&g); err != nil {
		tb.Fatal(err)
	}
	if b != g || strings.HasPrefix(b, "0 ") {
		tb.Errorf("%s: blue %s, green %s (count, hash)", table, b, g)
	}
}
