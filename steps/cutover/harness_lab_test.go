package cutover

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
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
	pool, err := pg.NewPool(pg.PoolParams{Conninfo: conninfo, MaxConns: 6})
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
	if err := pg.CreateSubscription(ctx, l.green, pg.SubscriptionParams{Name: name, Publication: name, Slot: name, Conninfo: conninfo, CopyData: true}); err != nil {
		tb.Fatal(err)
	}
	mustExec(tb, l.green, "ALTER SUBSCRIPTION "+name+" ENABLE")
	l.waitCaughtUp(tb, name)
	return name
}

// subscriptionConninfo is how green reaches blue as the replication role.
func (l *testLab) subscriptionConninfo() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s password=%s", l.info.Blue.Port, lab.AppDB, lab.ReplicationRole, pg.QuoteConninfoValue(l.password))
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

// params are the cutover's inputs for the lab.
func (l *testLab) params(method, sub string) Params {
	i := l.info
	return Params{
		Method:          method,
		Databases:       []Database{{Name: lab.AppDB, Blue: l.blue, Green: l.green, Subscriptions: []string{sub}}},
		BlueEndpoint:    pg.Endpoint{Host: "127.0.0.1", Port: i.Blue.Port, DBName: lab.AppDB},
		GreenEndpoint:   pg.Endpoint{Host: "127.0.0.1", Port: i.Green.Port, DBName: lab.AppDB},
		Bouncers:        l.bouncers(),
		ReplicationRole: lab.ReplicationRole, ReplicationPassword: l.password,
		AppRoles:    []string{lab.AppRole},
		MaxLagBytes: 16 << 20, StatementTimeout: 5 * time.Second, DrainTimeout: config.DefaultDrainTimeout,
		PauseTimeout: config.DefaultPauseTimeout, WayOutLagWait: config.DefaultWayOutLagWait,
	}
}

// bouncers are the lab's PgBouncers as the cutover drives them: the
// local one, and the one whose ini it reaches over the lab's sshd (the
// load writes through both).
func (l *testLab) bouncers() []pg.BouncerParams {
	i := l.info
	out := []pg.BouncerParams{{Name: "lab", AdminConninfo: i.PgBouncer.AdminConninfo, Ini: i.PgBouncer.Ini,
		Database: lab.AppDB, ClientConninfo: i.PgBouncer.Conninfo}}
	if b := i.PgBouncerSSH; b.Port > 0 {
		out = append(out, pg.BouncerParams{Name: b.Name, AdminConninfo: b.AdminConninfo, Ini: b.Ini, Database: lab.AppDB, ClientConninfo: b.Conninfo,
			SSH: &pg.SSHParams{Host: "127.0.0.1", Port: i.SSHD.Port, User: i.SSHD.User, Key: i.SSHD.Key, KnownHosts: i.SSHD.KnownHosts}})
	}
	return out
}

// pointBouncer moves every PgBouncer of the lab to a server the way an
// operator would after a nologin or readonly cutover (the traffic switch
// is theirs).
func (l *testLab) pointBouncer(tb testing.TB, to pg.Endpoint) {
	tb.Helper()
	for _, b := range l.info.Bouncers() {
		if _, err := pg.RepointIni(b.Ini, lab.AppDB, to); err != nil {
			tb.Fatal(err)
		}
		c, err := pg.ConnectConsole(context.Background(), b.Name, b.AdminConninfo, 5*time.Second)
		if err != nil {
			tb.Fatal(err)
		}
		if err := c.Reload(context.Background()); err != nil {
			c.Close()
			tb.Fatal(err)
		}
		// After logins refused by a nologin/readonly cutover, PgBouncer waits
		// server_login_retry (15 s) before trying a server again; an operator
		// switching traffic would lower it or RECONNECT. So does the test.
		if err := c.Set(context.Background(), "server_login_retry", "0"); err != nil {
			c.Close()
			tb.Fatal(err)
		}
		c.Close()
	}
}

func connect(tb testing.TB, conninfo string) *pgx.Conn {
	tb.Helper()
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("connect %s: %v", conninfo, err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func logSubSteps(tb testing.TB, rep *Report) {
	tb.Helper()
	for _, s := range rep.SubSteps {
		tb.Logf("  %-40s %8.1f ms  %s %s", s.Name, ms(s.Duration), s.Detail, s.Error)
	}
	tb.Logf("  paused %.1f ms, probe max stall %.1f ms (%d samples, %d errors), lag at pause %d, sequences %d in %.1f ms",
		rep.PausedMs, rep.Probe.MaxStallMs, rep.Probe.Samples, rep.Probe.Errors, rep.LagAtPause, rep.Sequences, rep.SeqSyncMs)
}

// labLogs is the end of blue's and green's server logs, for a failure.
func labLogs(l *testLab) string { return labtest.Logs(l.info) }
