package cutover

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// onSubStep runs f once, before the sub-step named name.
type onSubStep struct {
	NoHooks
	name string
	f    func()
	done bool
}

func (h *onSubStep) BeforeSubStep(_ context.Context, name string) {
	if name == h.name && !h.done {
		h.done = true
		h.f()
	}
}

// TestLargeObjectsMoveWithTheCutover: blue's large objects, copied as
// copy-large-objects copies them and then changed three ways (one made
// after the copy, one rewritten in place with the same size, which only
// the statistics' count of writes tells, and one made between the first
// pass and the pause), are green's after the cutover, content equal; the
// last is copied inside the pause. The rollback brings back green's
// changes since the cutover, a rewrite in place included, by the reading
// the cutover reported.
func TestLargeObjectsMoveWithTheCutover(t *testing.T) {
	l := newLab(t)
	sub := l.replicate(t)
	p := l.params(MethodPgBouncer, sub)
	p.Databases[0].Reverse = DefaultReverseName
	ctx := context.Background()
	res, err := pg.CopyLargeObjectsParams{}.Exec(ctx, l.blue, l.green)
	if err != nil || res.Copied != 1 {
		t.Fatalf("copy-large-objects's copy: %+v, %v", res, err)
	}
	p.Databases[0].LargeObjects = res.Digest.String()
	oid := l.info.LargeObject.OID
	loWrite(t, l.blue, "SELECT lo_from_bytea(0, 'made after the copy')")
	loWrite(t, l.blue, "SELECT lo_put($1, 0, 'REWRITTEN')", oid)
	late := &onSubStep{name: "lag gate", f: func() { loWrite(t, l.blue, "SELECT lo_from_bytea(0, 'made after the first pass')") }}
	p.Hooks = late

	rep, err := Cutover(ctx, p)
	logSubSteps(t, rep)
	if err != nil {
		t.Fatal(err)
	}
	if !late.done {
		t.Fatal("the hook never ran")
	}
	first, pause := subStepDetail(rep, "large objects, first pass"), subStepDetail(rep, "large objects")
	t.Logf("first pass: %s\ninside the pause: %s", first, pause)
	if !strings.Contains(first, "2 copied") || !strings.Contains(first, "compared by md5") {
		t.Errorf("the first pass: %q, want the object made and the one rewritten in place copied, contents compared", first)
	}
	if !strings.Contains(pause, "1 copied") {
		t.Errorf("inside the pause: %q, want the object made after the first pass copied", pause)
	}
	if d := rep.Databases[0]; d.LargeObjectsCopied != 3 || d.LargeObjectsAfter == "" {
		t.Errorf("report: %d large objects copied, after %q", d.LargeObjectsCopied, d.LargeObjectsAfter)
	}
	sameLargeObjects(t, l, 3)

	// Written on green since the cutover: the rollback brings it back.
	p.Hooks = NoHooks{}
	p.Databases[0].LargeObjects = rep.Databases[0].LargeObjectsAfter
	p.Fences = rep.Fences
	waitSlotDrained(t, l, l.green, DefaultReverseName)
	loWrite(t, l.green, "SELECT lo_put($1, 0, 'GREEN')", oid)
	if rep, err = Rollback(ctx, p); err != nil {
		logSubSteps(t, rep)
		t.Fatal(err)
	}
	logSubSteps(t, rep)
	if first := subStepDetail(rep, "large objects, first pass"); !strings.Contains(first, "1 copied") {
		t.Errorf("the rollback's first pass: %q, want green's rewrite in place copied", first)
	}
	sameLargeObjects(t, l, 3)
}

// loWrite runs a write of large objects on pool and has its session
// report its statistics at once (pg_stat_force_next_flush, PostgreSQL
// 15+), as a session does by itself within seconds.
func loWrite(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	c, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if _, err := c.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
		t.Fatal(err)
	}
}

func subStepDetail(rep *Report, name string) string {
	if k := slices.IndexFunc(rep.SubSteps, func(s SubStep) bool { return s.Name == name }); k >= 0 {
		return rep.SubSteps[k].Detail
	}
	return ""
}

// sameLargeObjects checks blue and green hold the same n large objects,
// each with the same content.
func sameLargeObjects(t *testing.T, l *testLab, n int) {
	t.Helper()
	read := func(pool *pgxpool.Pool) map[uint32]string {
		rows, err := pool.Query(context.Background(), "SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata")
		if err != nil {
			t.Fatal(err)
		}
		out := map[uint32]string{}
		for rows.Next() {
			var oid uint32
			var sum string
			if err := rows.Scan(&oid, &sum); err != nil {
				t.Fatal(err)
			}
			out[oid] = sum
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	blue, green := read(l.blue), read(l.green)
	if len(blue) != n || !maps.Equal(blue, green) {
		t.Errorf("large objects: blue %v, green %v, want the same %d", blue, green, n)
	}
}
