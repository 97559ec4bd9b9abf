package cutover

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// The harness of the tests that move several databases: a second
// database replicated as the first is (its own publication, slot and
// subscription, named as steps/config names them), and a database that
// stays on blue.

// labDB is one more database of the lab, replicated blue -> green.
type labDB struct {
	name, sub   string
	blue, green *pgxpool.Pool
}

// database is the engine's view of it.
func (d labDB) database() Database {
	return Database{Name: d.name, Blue: d.blue, Green: d.green, Subscriptions: []string{d.sub},
		Reverse: config.QualifiedName(DefaultReverseName, d.name)}
}

// replicateDB sets up blue -> green for database db (not app) as the copy
// strategy does: publication and slot on blue named for db
// (config.QualifiedName), the database made on green (owned by app) with
// blue's schema (green's pg_dump), a subscription with the initial copy;
// then waits until every table is ready and the lag is small.
func (l *testLab) replicateDB(tb testing.TB, db string) labDB {
	tb.Helper()
	d := labDB{name: db, sub: config.QualifiedName("pgbg_all", db)}
	d.blue = mustPool(tb, pg.WithDatabase(l.info.Blue.Conninfo, db))
	mustExec(tb, d.blue, "CREATE PUBLICATION "+pg.Ident(d.sub)+" FOR ALL TABLES")
	mustExec(tb, d.blue, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", d.sub)
	mustExec(tb, l.green, "CREATE DATABASE "+pg.Ident(db)+" OWNER "+pg.Ident(lab.AppRole))
	d.green = mustPool(tb, pg.WithDatabase(l.info.Green.Conninfo, db))

	dump := filepath.Join(l.info.Dir, "schema-"+db+".sql")
	cmd := exec.Command(filepath.Join(l.info.Green.BinDir, "pg_dump"), "--schema-only", "--no-publications", "--no-subscriptions", "-f", dump, "-d", pg.WithDatabase(l.info.Blue.Conninfo, db))
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("pg_dump %s: %v\n%s", db, err, out)
	}
	cmd = exec.Command(filepath.Join(l.info.Green.BinDir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", dump, "-d", pg.WithDatabase(l.info.Green.Conninfo, db))
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("psql < schema of %s: %v\n%s", db, err, out)
	}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s password=%s", l.info.Blue.Port, db, lab.ReplicationRole, pg.QuoteConninfoValue(l.password))
	ctx := context.Background()
	if err := pg.CreateSubscription(ctx, d.green, pg.SubscriptionParams{Name: d.sub, Publication: d.sub, Slot: d.sub, Conninfo: conninfo, CopyData: true}); err != nil {
		tb.Fatal(err)
	}
	mustExec(tb, d.green, "ALTER SUBSCRIPTION "+pg.Ident(d.sub)+" ENABLE")
	l.waitCaughtUpIn(tb, d.green, d.sub)
	return d
}

// waitCaughtUpIn is waitCaughtUp for a subscription of another database
// (pg_subscription_rel is each database's own).
func (l *testLab) waitCaughtUpIn(tb testing.TB, green *pgxpool.Pool, sub string) {
	tb.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var notReady int
		var lag int64
		err := green.QueryRow(ctx, `SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1 AND r.srsubstate <> 'r'`, sub).Scan(&notReady)
		if err == nil {
			err = l.blue.QueryRow(ctx, `SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 1e9)::bigint FROM pg_replication_slots WHERE slot_name = $1 AND active`, sub).Scan(&lag)
		}
		if err != nil {
			tb.Fatal(err)
		}
		if notReady == 0 && lag < 64<<10 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("green did not catch up on %s: %d tables not ready, lag %d", sub, notReady, lag)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stayingDB makes a database on blue that does not move, owned by app,
// with a table and a row: the fence must leave it to app.
func (l *testLab) stayingDB(tb testing.TB, db string) {
	tb.Helper()
	mustExec(tb, l.blue, "CREATE DATABASE "+pg.Ident(db)+" OWNER "+pg.Ident(lab.AppRole))
	pool := mustPool(tb, pg.WithDatabase(l.info.Blue.Conninfo, db))
	mustExec(tb, pool, "CREATE TABLE public.notes (id int PRIMARY KEY, body text NOT NULL)")
	mustExec(tb, pool, "ALTER TABLE public.notes OWNER TO "+pg.Ident(lab.AppRole))
	mustExec(tb, pool, "INSERT INTO public.notes VALUES (1, 'stays on blue')")
	pool.Close()
}

// appConninfo is a login as app on a server of the lab, to database db.
func (l *testLab) appConninfo(server lab.Server, db string) string {
	return pg.WithDatabase(strings.Replace(server.Conninfo, "user="+lab.AdminRole, "user="+lab.AppRole, 1), db)
}

// tryConnect logs in with conninfo and runs a read; its error, if any.
func tryConnect(conninfo, query string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	var x any
	return c.QueryRow(ctx, query).Scan(&x)
}

// connectACL is a database's CONNECT grants as "grantee=grantor*" words,
// sorted (its default ACL when it has none): what a fence and an open
// must leave as they found it.
func connectACL(tb testing.TB, pool *pgxpool.Pool, db string) []string {
	tb.Helper()
	var out []string
	err := pool.QueryRow(context.Background(), `
SELECT coalesce(array_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
                          || CASE WHEN a.is_grantable THEN '*' ELSE '' END), '{}')
FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
WHERE d.datname = $1 AND a.privilege_type = 'CONNECT'`, db).Scan(&out)
	if err != nil {
		tb.Fatal(err)
	}
	slices.Sort(out)
	return out
}
