package steps

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// What logical replication does not carry, carried by the steps of
// issue 23 on the lab: refresh-matviews, copy-large-objects and
// copy-unlogged, each run preceded by its dry run (every statement it
// executes must appear there).

// tierSummary is a materialized view over the lab's (lab.MatView), made
// by the tests on blue: refreshed after it, and plainly (no unique index).
const tierSummary = "public.tier_summary"

// TestNotReplicatedCopy runs the copy strategy through wait-catch-up under
// a light load, with a second materialized view over the lab's and an
// unlogged table with rows made on blue (after preflight), then: green's
// materialized views are unpopulated (pg_dump made them WITH NO DATA);
// refresh-matviews populates them, the lab's before the one over it, with
// the rows blue has; asked again, it refreshes the lab's CONCURRENTLY. The
// lab's large object is copied (same OID, owner, md5), one added on blue
// is found changed by the digest and copied, one removed on blue is
// removed on green. Unlogged tables: preflight's word and the step refuse
// while unlogged_tables is unset; skip copies nothing; copy copies them.
func TestNotReplicatedCopy(t *testing.T) {
	le, _ := startLab(t, "copy")
	ctx := context.Background()
	appAlone(le)
	stop := startLoad(t, le, 50)
	defer stop()
	if err := le.Runner.Through(ctx, "preflight", RunParams{Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	mustExecOn(t, le.Blue, "CREATE MATERIALIZED VIEW "+tierSummary+" AS SELECT count(*) AS tiers, sum(accounts) AS accounts FROM "+lab.MatView)
	mustExecOn(t, le.Blue, "CREATE UNLOGGED TABLE public.sessions (id int PRIMARY KEY, token text NOT NULL)")
	mustExecOn(t, le.Blue, "INSERT INTO public.sessions SELECT i, md5(i::text) FROM generate_series(1, 2000) i")
	if err := le.Runner.Through(ctx, "wait-catch-up", RunParams{Confirmed: true}); err != nil {
		t.Fatalf("through wait-catch-up: %v", err)
	}
	for _, mv := range []string{lab.MatView, tierSummary} {
		if queryOne[bool](t, le.Green, "SELECT relispopulated FROM pg_class WHERE oid = $1::regclass", mv) {
			t.Errorf("%s is populated on green before refresh-matviews: pg_dump --schema-only makes it WITH NO DATA", mv)
		}
	}
	stop()
	quiet(t, le)
	var offset int64
	var checks []dryRunCheck

	t.Run("materialized views", func(t *testing.T) {
		from := offset
		checks = append(checks, runComparingDryRun(t, le, refreshMatviewsID, &offset))
		if got := journaledLike(t, le, refreshMatviewsID, from, "REFRESH"); !equalStrings(got, []string{
			`REFRESH MATERIALIZED VIEW "public"."account_tiers"`, `REFRESH MATERIALIZED VIEW "public"."tier_summary"`}) {
			t.Errorf("refreshed %q: want account_tiers plainly (never populated), then tier_summary over it", got)
		}
		// Blue's own, refreshed now that writes have stopped, are what green's must hold.
		mustExecOn(t, le.Blue, "REFRESH MATERIALIZED VIEW "+lab.MatView)
		mustExecOn(t, le.Blue, "REFRESH MATERIALIZED VIEW "+tierSummary)
		for _, q := range []string{"SELECT * FROM " + lab.MatView + " ORDER BY tier", "SELECT * FROM " + tierSummary} {
			if b, g := rowsText(t, le.Blue, q), rowsText(t, le.Green, q); b != g || b == "" {
				t.Errorf("%s: blue %s, green %s", q, b, g)
			}
		}
		if _, ok := le.Store.Snapshot().Get(MatviewsRefreshedKey); !ok {
			t.Errorf("%s not recorded", MatviewsRefreshedKey)
		}
		if out := mustRun(t, le, refreshMatviewsID); out != OutcomeAlreadyDone {
			t.Errorf("refresh-matviews run again without --again: %s", out)
		}
		from = offset
		checks = append(checks, runAgainComparingDryRun(t, le, refreshMatviewsID, "fresher views before the cutover", &offset))
		if got := journaledLike(t, le, refreshMatviewsID, from, "REFRESH"); !equalStrings(got, []string{
			`REFRESH MATERIALIZED VIEW CONCURRENTLY "public"."account_tiers"`, `REFRESH MATERIALIZED VIEW "public"."tier_summary"`}) {
			t.Errorf("refreshed again %q: want account_tiers CONCURRENTLY (populated, unique index), tier_summary plainly", got)
		}
	})

	t.Run("large objects", func(t *testing.T) {
		lo := le.Info.LargeObject
		checks = append(checks, runComparingDryRun(t, le, copyLargeObjectsID, &offset))
		sameLargeObjectOn(t, le, lo.OID, "app", lo.MD5)
		digest := recordedDigest(t, le)
		if digest.Count != 1 || digest.Bytes != lo.Bytes || digest.Content == "" {
			t.Errorf("recorded digest %+v, want the lab's large object of %d bytes", digest, lo.Bytes)
		}
		if ch, err := pg.LargeObjectsChanged(ctx, le.Blue, digest); err != nil || ch.Changed {
			t.Fatalf("nothing written since the copy: %+v, %v", ch, err)
		}

		added := queryOne[uint32](t, le.Blue, "SELECT lo_from_bytea(0, convert_to(repeat('added after the copy ', 5000), 'UTF8'))")
		mustExecOn(t, le.Blue, "ALTER LARGE OBJECT "+u32s(added)+" OWNER TO app")
		ch, err := pg.LargeObjectsChanged(ctx, le.Blue, digest)
		if err != nil || !ch.Changed {
			t.Fatalf("a large object added on blue: LargeObjectsChanged says %+v, %v", ch, err)
		}
		t.Logf("changed since the copy: %s", ch.Why)
		if res := checkOf(t, le, copyLargeObjectsID); res.Done {
			t.Fatalf("copy-large-objects check after an add on blue: %+v", res)
		}
		checks = append(checks, runComparingDryRun(t, le, copyLargeObjectsID, &offset))
		sameLargeObjectOn(t, le, added, "app", queryOne[string](t, le.Blue, "SELECT md5(lo_get($1))", added))
		if d := recordedDigest(t, le); d.Count != 2 {
			t.Errorf("digest after the add: %+v", d)
		}

		mustExecOn(t, le.Blue, "SELECT lo_unlink($1)", added)
		checks = append(checks, runComparingDryRun(t, le, copyLargeObjectsID, &offset))
		if n := queryOne[int64](t, le.Green, "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = $1", added); n != 0 {
			t.Errorf("large object %d, removed on blue, is still on green", added)
		}
		if res := checkOf(t, le, copyLargeObjectsID); !res.Done {
			t.Errorf("copy-large-objects check after the copy: %+v", res)
		}
	})

	t.Run("unlogged tables", func(t *testing.T) {
		checks = append(checks, runComparingDryRun(t, le, "analyze-green", &offset))
		facts, err := pg.ReadBlue(ctx, le.Blue, pg.PreflightParams{Schemas: le.Config.Schemas, Role: le.Config.Replication.Role, LongTransaction: time.Minute, NearMax: 0.8})
		if err != nil {
			t.Fatal(err)
		}
		var unlogged []pg.Rel
		for _, tf := range facts.Tables {
			if tf.Persistence == "u" && tf.Kind == "r" {
				unlogged = append(unlogged, tf.Rel)
			}
		}
		le.Config.UnloggedTables = config.DefaultUnloggedTables
		if fail, line := unloggedAdvice(le.Config, unlogged); !fail || !strings.Contains(line, `"public"."sessions"`) || !strings.Contains(line, "unlogged_tables") {
			t.Errorf("preflight's word with unlogged_tables unset: fail %t, %q", fail, line)
		}
		_, err = le.Runner.Run(ctx, copyUnloggedID, RunParams{Confirmed: true})
		if !IsRefused(err) || !strings.Contains(err.Error(), "unlogged_tables") {
			t.Fatalf("copy-unlogged with unlogged_tables unset: %v, want a refusal naming the key", err)
		}
		t.Logf("refused: %v", err)

		le.Config.UnloggedTables = config.UnloggedSkip
		if fail, line := unloggedAdvice(le.Config, unlogged); fail || !strings.Contains(line, "skip") {
			t.Errorf("preflight's word with skip: fail %t, %q", fail, line)
		}
		if out := mustRun(t, le, copyUnloggedID); out != OutcomeFoundDone {
			t.Errorf("copy-unlogged with skip: %s, want found done", out)
		}
		if n := queryOne[int64](t, le.Green, "SELECT count(*) FROM public.sessions"); n != 0 {
			t.Errorf("skip copied %d rows", n)
		}

		le.Config.UnloggedTables = config.UnloggedCopy
		checks = append(checks, runAgainComparingDryRun(t, le, copyUnloggedID, "unlogged_tables is copy now", &offset))
		q := "SELECT count(*) || ' ' || md5(string_agg(id || token, ',' ORDER BY id)) FROM public.sessions"
		if b, g := queryOne[string](t, le.Blue, q), queryOne[string](t, le.Green, q); b != g {
			t.Errorf("sessions: blue %s, green %s", b, g)
		}
	})
	reportDryRunChecks(t, checks)
}

// TestNotReplicatedClone runs the clone strategy through wait-catch-up
// with an unlogged table with rows on blue (unlogged_tables: copy), then:
// rows added on blue after the clone leave green's materialized view
// stale, and refresh-matviews refreshes it CONCURRENTLY (the clone's is
// populated); the clone has the lab's large object, which
// copy-large-objects compares and does not copy; the clone's unlogged
// table is empty and copy-unlogged fills it.
func TestNotReplicatedClone(t *testing.T) {
	le, _ := startLab(t, "clone")
	ctx := context.Background()
	appAlone(le)
	le.Config.UnloggedTables = config.UnloggedCopy
	mustExecOn(t, le.Blue, "CREATE UNLOGGED TABLE public.sessions (id int PRIMARY KEY, token text NOT NULL)")
	mustExecOn(t, le.Blue, "INSERT INTO public.sessions SELECT i, md5(i::text) FROM generate_series(1, 2000) i")
	clonePreflight(t, le)
	if err := le.Runner.Through(ctx, "wait-catch-up", RunParams{Confirmed: true}); err != nil {
		t.Fatalf("through wait-catch-up: %v", err)
	}
	if n := queryOne[int64](t, le.Green, "SELECT count(*) FROM public.sessions"); n != 0 {
		t.Errorf("the clone's unlogged table has %d rows: pg_basebackup should have left it empty", n)
	}
	mustExecOn(t, le.Blue, `INSERT INTO public.accounts (owner, attrs) SELECT 'after the clone ' || i, '{"tier": 0}' FROM generate_series(1, 300) i`)
	drainInserted(t, le)
	stale := "SELECT (SELECT accounts FROM " + lab.MatView + " WHERE tier = 0) = (SELECT count(*) FROM public.accounts WHERE (attrs->>'tier')::int = 0)"
	if queryOne[bool](t, le.Green, stale) {
		t.Fatalf("green's %s already counts the rows added after the clone", lab.MatView)
	}
	var offset int64
	var checks []dryRunCheck
	from := offset
	checks = append(checks, runComparingDryRun(t, le, refreshMatviewsID, &offset))
	if got := journaledLike(t, le, refreshMatviewsID, from, "REFRESH"); !equalStrings(got, []string{`REFRESH MATERIALIZED VIEW CONCURRENTLY "public"."account_tiers"`}) {
		t.Errorf("refreshed %q: want the clone's populated view CONCURRENTLY", got)
	}
	if !queryOne[bool](t, le.Green, stale) {
		t.Errorf("green's %s is stale after refresh-matviews", lab.MatView)
	}

	from = offset
	checks = append(checks, runComparingDryRun(t, le, copyLargeObjectsID, &offset))
	if got := journaledLike(t, le, copyLargeObjectsID, from, "lo_"); len(got) != 0 {
		t.Errorf("the clone's large object was written again: %q", got)
	}
	lo := le.Info.LargeObject
	sameLargeObjectOn(t, le, lo.OID, "app", lo.MD5)
	if d := recordedDigest(t, le); d.Count != 1 || d.Content == "" {
		t.Errorf("digest %+v", d)
	}

	checks = append(checks, runComparingDryRun(t, le, "analyze-green", &offset))
	checks = append(checks, runComparingDryRun(t, le, copyUnloggedID, &offset))
	q := "SELECT count(*) || ' ' || md5(string_agg(id || token, ',' ORDER BY id)) FROM public.sessions"
	if b, g := queryOne[string](t, le.Blue, q), queryOne[string](t, le.Green, q); b != g {
		t.Errorf("sessions: blue %s, green %s", b, g)
	}
	reportDryRunChecks(t, checks)
}

// appAlone moves database app alone, billing staying: at this commit a
// run that moves both fails before these steps (copy-schema's check reads
// billing on green before it exists; billing's subscription on a clone
// connects to app).
func appAlone(le *labEnv) {
	le.Config.Databases = []string{lab.AppDB}
	le.Config.Stay = []config.StayingDatabase{{Name: lab.BillingDB, Reason: "this test moves app alone"}}
}

// quiet waits until no session of the application's role is in a
// statement or a transaction on blue (a load's client cancelled mid-commit
// leaves its COMMIT to finish through PgBouncer), then for the slots to
// drain.
func quiet(t *testing.T, le *labEnv) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for queryOne[int64](t, le.Blue, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state <> 'idle'", lab.AppRole) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions of %s still busy on blue after 30 s", lab.AppRole)
		}
		time.Sleep(50 * time.Millisecond)
	}
	drainInserted(t, le)
}

// drainInserted waits until every logical slot on blue has confirmed
// blue's WAL insert position: past every commit made so far, written out
// or not (the lab's blue commits with synchronous_commit = off, and
// pg_current_wal_lsn, the write position, can be short of a commit just
// acknowledged).
func drainInserted(t *testing.T, le *labEnv) {
	t.Helper()
	target := queryOne[string](t, le.Blue, "SELECT pg_current_wal_insert_lsn()::text")
	start := time.Now()
	for queryOne[int64](t, le.Blue, "SELECT count(*) FROM pg_replication_slots WHERE slot_type = 'logical' AND (confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < $1::pg_lsn)", target) > 0 {
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("slots still behind %s after 2 minutes", target)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("drained to %s in %s", target, time.Since(start).Round(time.Millisecond))
}

// runAgainComparingDryRun is runComparingDryRun for a done step run again
// on purpose (--again REASON).
func runAgainComparingDryRun(t *testing.T, le *labEnv, id, again string, offset *int64) dryRunCheck {
	t.Helper()
	dry := dryRunLines(t, le, id)
	_, *offset = journalEntries(t, le.JournalPath, 0)
	out, err := le.Runner.Run(context.Background(), id, RunParams{Confirmed: true, Again: again})
	if err != nil || out != OutcomeRan {
		t.Fatalf("run %s --again: %s, %v", id, out, err)
	}
	c := dryRunCheck{Step: id}
	c.Missing, c.Checked = notShown(t, le.JournalPath, *offset, id, dry)
	_, *offset = journalEntries(t, le.JournalPath, *offset)
	if len(c.Missing) > 0 {
		t.Logf("%s dry run:\n  %s", id, strings.Join(dry, "\n  "))
	}
	return c
}

// journaledLike returns the statements journaled for step id from offset
// on whose text holds s.
func journaledLike(t *testing.T, le *labEnv, id string, from int64, s string) []string {
	t.Helper()
	entries, _ := journalEntries(t, le.JournalPath, from)
	var out []string
	for _, e := range entries {
		if e.Step == id && e.Kind == "sql" && strings.Contains(e.Text, s) {
			out = append(out, e.Text)
		}
	}
	return out
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

func mustExecOn(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// rowsText renders a query's rows as one text, to compare two servers.
func rowsText(t *testing.T, pool *pgxpool.Pool, q string) string {
	t.Helper()
	return queryOne[string](t, pool, "SELECT coalesce(string_agg(r::text, '; '), '') FROM ("+q+") r")
}

// sameLargeObjectOn checks a large object on green: its owner and md5,
// and its privileges and comment as blue has them.
func sameLargeObjectOn(t *testing.T, le *labEnv, oid uint32, owner, md5 string) {
	t.Helper()
	const q = `SELECT pg_get_userbyid(lomowner)::text || ' ' || md5(lo_get(oid)) || ' ' || coalesce(lomacl::text, 'default') || ' ' || coalesce(obj_description(oid, 'pg_largeobject'), '')
FROM pg_largeobject_metadata WHERE oid = $1`
	want := queryOne[string](t, le.Blue, q, oid)
	if got := queryOne[string](t, le.Green, q, oid); got != want || !strings.HasPrefix(got, owner+" "+md5) {
		t.Errorf("large object %d on green: %s; on blue %s; want owner %s, md5 %s", oid, got, want, owner, md5)
	}
}

func recordedDigest(t *testing.T, le *labEnv) pg.LargeObjectsDigest {
	t.Helper()
	v, ok := le.Store.Snapshot().Get(LargeObjectsDigestKey)
	if !ok {
		t.Fatalf("%s not recorded", LargeObjectsDigestKey)
	}
	d, err := pg.ParseLargeObjectsDigest(v)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkOf is a step's check, in every database, as the runner asks it.
func checkOf(t *testing.T, le *labEnv, id string) CheckResult {
	t.Helper()
	s, _ := le.Runner.Find(id)
	env, err := le.Runner.Env(id).withSchemas(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.CheckAll(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func u32s(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
