package pg

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestCopyLargeObjects copies the lab's large objects to an empty green
// (its large object of 300 kB with a comment, owned by app; one empty; one
// with a privilege granted; one of 20 MB, larger than a chunk), checks that
// green has them with the same OID, owner, privileges, comment and md5,
// then follows blue's changes: one added (LargeObjectsChanged sees it, a
// second copy copies it alone), one removed (removed on green), one given
// to another owner (fixed without copying), one rewritten in place (only
// the statistics can tell, and the copy's comparison of contents finds).
// The program's peak RSS during the copy of the 20 MB object is logged.
func TestCopyLargeObjects(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	lo := l.info.LargeObject
	var empty, granted, big uint32
	blueWrite(t, l, &empty, "SELECT lo_from_bytea(0, ''::bytea)")
	blueWrite(t, l, &granted, "SELECT lo_from_bytea(0, 'granted'::bytea)")
	blueWrite(t, l, nil, "GRANT SELECT ON LARGE OBJECT "+u32(granted)+" TO pgbg_repl WITH GRANT OPTION")
	blueWrite(t, l, nil, "GRANT UPDATE ON LARGE OBJECT "+u32(granted)+" TO PUBLIC")
	// 20 MB: 655,360 sha256 digests, made on the server.
	mb := 20
	if v, err := strconv.Atoi(os.Getenv("PGBG_LO_MB")); err == nil {
		mb = v
	}
	blueWrite(t, l, &big, "SELECT lo_from_bytea(0, (SELECT string_agg(sha256(i::text::bytea), ''::bytea ORDER BY i) FROM generate_series(1, $1) i))", mb<<15)
	blueWrite(t, l, nil, "ALTER LARGE OBJECT "+u32(big)+" OWNER TO app")

	before := peakRSS(t, true)
	start := time.Now()
	var chunks int
	res, err := CopyLargeObjectsParams{Progress: func(p LargeObjectsProgress) {
		if p.Current != 0 {
			chunks++
		}
	}}.Exec(ctx, l.blue, l.green)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	after := peakRSS(t, false)
	t.Logf("first copy: %+v in %s; %d chunk progress calls; peak RSS %d kB before (reset), %d kB during the copy of %s",
		res.LargeObjectsProgress, took.Round(time.Millisecond), chunks, before, after, Bytes(res.CopiedBytes))
	if res.Copied != 4 || res.Total != 4 || res.Removed != 0 || res.Compared != 0 || res.Digest.Count != 4 || res.Digest.Content == "" {
		t.Errorf("first copy: %+v", res)
	}
	for _, oid := range []uint32{lo.OID, empty, granted, big} {
		sameLargeObject(t, l, oid)
	}
	if got := md5OnGreen(t, l, lo.OID); got != lo.MD5 {
		t.Errorf("the lab's large object on green: md5 %s, lab.json says %s", got, lo.MD5)
	}

	// Nothing changed: cheap reading agrees, a second copy copies nothing.
	ch, err := LargeObjectsChanged(ctx, l.blue, res.Digest)
	if err != nil || ch.Changed {
		t.Fatalf("nothing changed, LargeObjectsChanged says %+v, %v", ch, err)
	}
	green, err := LargeObjectsShape(ctx, l.green)
	if err != nil || green.Shape != res.Digest.Shape || green.Count != 4 {
		t.Fatalf("green's shape %+v (%v), blue's digest %+v", green, err, res.Digest)
	}
	again := mustCopy(t, l, CopyLargeObjectsParams{})
	if again.Copied != 0 || again.Compared != 4 || again.Digest.Content != res.Digest.Content {
		t.Errorf("second copy with nothing changed: %+v", again)
	}

	// One added, one removed, one given to another owner.
	var added uint32
	blueWrite(t, l, &added, "SELECT lo_from_bytea(0, 'added after the first copy'::bytea)")
	blueWrite(t, l, nil, "SELECT lo_unlink($1)", empty)
	blueWrite(t, l, nil, "ALTER LARGE OBJECT "+u32(granted)+" OWNER TO app")
	ch, err = LargeObjectsChanged(ctx, l.blue, again.Digest)
	if err != nil || !ch.Changed || ch.WritesOnly {
		t.Fatalf("after an add, a remove and an owner change: %+v, %v", ch, err)
	}
	t.Logf("changed: %s", ch.Why)
	third := mustCopy(t, l, CopyLargeObjectsParams{})
	if third.Copied != 1 || third.Removed != 1 || third.Fixed != 1 {
		t.Errorf("third copy: %+v", third)
	}
	sameLargeObject(t, l, added)
	sameLargeObject(t, l, granted)
	var n int
	scan(t, l.green, &n, "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = $1", empty)
	if n != 0 {
		t.Errorf("large object %d removed on blue is still on green", empty)
	}

	// Rewritten in place, same size: only the statistics say so.
	mustExec(t, l.blue, "SELECT lo_put($1, 0, 'ADDED'::bytea)", added)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ch, err = LargeObjectsChanged(ctx, l.blue, third.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Changed || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !ch.Changed || !ch.WritesOnly {
		t.Fatalf("rewrite in place: %+v", ch)
	}
	t.Logf("changed: %s", ch.Why)
	if full := mustCopy(t, l, CopyLargeObjectsParams{}); full.Copied != 1 || full.Compared == 0 {
		t.Errorf("the copy finds the rewrite in place by comparing contents: %+v", full)
	}
	sameLargeObject(t, l, added)
}

func mustCopy(t *testing.T, l *testLab, p CopyLargeObjectsParams) LargeObjectsCopied {
	t.Helper()
	start := time.Now()
	res, err := p.Exec(context.Background(), l.blue, l.green)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("copy: %+v in %s", res.LargeObjectsProgress, time.Since(start).Round(time.Millisecond))
	return res
}

// sameLargeObject compares one object on both servers: owner, privileges,
// comment, size and md5.
func sameLargeObject(t *testing.T, l *testLab, oid uint32) {
	t.Helper()
	const q = `SELECT pg_get_userbyid(lomowner)::text, coalesce(array(SELECT x::text FROM unnest(lomacl) x ORDER BY 1)::text, ''),
       coalesce(obj_description(oid, 'pg_largeobject'), ''),
       length(lo_get(oid)), md5(lo_get(oid)) FROM pg_largeobject_metadata WHERE oid = $1`
	read := func(pool *pgxpool.Pool) string {
		var owner, acl, comment, sum string
		var size int64
		if err := pool.QueryRow(context.Background(), q, oid).Scan(&owner, &acl, &comment, &size, &sum); err != nil {
			t.Fatalf("large object %d: %v", oid, err)
		}
		return strings.Join([]string{owner, acl, comment, strconv.FormatInt(size, 10), sum}, " | ")
	}
	if b, g := read(l.blue), read(l.green); b != g {
		t.Errorf("large object %d: blue %s, green %s", oid, b, g)
	}
}

func md5OnGreen(t *testing.T, l *testLab, oid uint32) string {
	t.Helper()
	var s string
	scan(t, l.green, &s, "SELECT md5(lo_get($1))", oid)
	return s
}

// blueWrite runs a write on blue and has its session report its
// statistics at once (pg_stat_force_next_flush, PostgreSQL 15+), so the
// count LargeObjectsChanged reads includes it; dest, when not nil, takes
// the one value it returns.
func blueWrite(t *testing.T, l *testLab, dest any, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	c, err := l.blue.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if dest != nil {
		err = c.QueryRow(ctx, sql, args...).Scan(dest)
	} else {
		_, err = c.Exec(ctx, sql, args...)
	}
	if err == nil {
		_, err = c.Exec(ctx, "SELECT pg_stat_force_next_flush()")
	}
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func scan(t *testing.T, pool *pgxpool.Pool, dest any, sql string, args ...any) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(dest); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func u32(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// peakRSS reads the process's peak resident set (VmHWM, kB); with reset,
// it first resets the peak to the current RSS (clear_refs 5, Linux 4.0+).
func peakRSS(t *testing.T, reset bool) int64 {
	t.Helper()
	if reset {
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			t.Logf("cannot reset the peak RSS: %v", err)
		}
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
