package steps

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// copy-data and create-subscriptions refuse what would double or lose
// rows, each saying what to do: rows on green that no copy of ours left;
// a table sync over a publication copy-data copied (its copy: setting
// changed since); a copy whose slot is gone, which only --again copies
// anew. Done right, the data ends equal on both sides.
func TestSnapshotCopyRefusals(t *testing.T) {
	le, _ := startLab(t, "copy")
	le.Config.Publications[0].Copy = config.CopySnapshot
	ctx := context.Background()
	if err := le.Runner.Through(ctx, "compare-schema", RunParams{Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	exec := func(pool *pgxpool.Pool, sql string) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// Preflight's word: nothing on the lab as it is; a publication above
	// the size where a restart costs much, and a green without a free
	// connection for each session, are each said.
	e := le.Runner.Env("preflight")
	if w, err := e.snapshotCopyAdvice(ctx); err != nil || len(w) != 0 {
		t.Fatalf("copy-data advice on the lab: %q %v", w, err)
	}
	defer func(b int64) { snapshotCopyRestartBytes = b }(snapshotCopyRestartBytes)
	snapshotCopyRestartBytes = 1
	e.Config.Sync.CopyJobs = 32
	hog, err := pgxpool.New(ctx, le.Info.Green.Conninfo+" pool_max_conns=80")
	if err != nil {
		t.Fatal(err)
	}
	var held []*pgxpool.Conn
	for range 80 {
		c, err := hog.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	w, err := e.snapshotCopyAdvice(ctx)
	for _, c := range held {
		c.Release()
	}
	hog.Close()
	e.Config.Sync.CopyJobs = 0
	snapshotCopyRestartBytes = 10 << 30
	if err != nil || len(w) != 2 || !strings.Contains(w[0], "copy-data opens 32 sessions on green, which has") ||
		!strings.Contains(w[1], "publication pgbg_all (copy: snapshot) holds") {
		t.Fatalf("copy-data advice with green's connections taken and a small size bound: %q %v", w, err)
	}
	t.Logf("preflight would say:\n%s", strings.Join(w, "\n"))
	flow, slow, err := e.copyFlowAdvice(ctx)
	if err != nil || len(flow) != 1 || slow[0] || !strings.Contains(flow[0], "copy: snapshot) by snapshot: every byte passes through this machine (blue -> here -> green), read from blue here at ") ||
		!strings.Contains(flow[0], " again, under a minute at that rate") {
		t.Errorf("where the snapshot copy's bytes flow: %q %v %v", flow, slow, err)
	}
	t.Logf("and: %s", strings.Join(flow, "\n"))

	refused := func(id string, p RunParams, want string) {
		t.Helper()
		p.Confirmed = true
		_, err := le.Runner.Run(ctx, id, p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v; want a refusal saying %q", id, err, want)
		}
	}

	exec(le.Green, `INSERT INTO inventory.items (name) VALUES ('loaded by hand')`)
	refused("copy-data", RunParams{}, `"inventory"."items" on green hold rows, and no copy of pgbg_all is half way (no slot pgbg_all on blue)`)
	if n := queryOne[int64](t, le.Green, "SELECT count(*) FROM inventory.items"); n != 1 {
		t.Fatalf("a refused copy-data changed green: %d rows in inventory.items", n)
	}
	exec(le.Green, `TRUNCATE inventory.items`)
	mustRun(t, le, "copy-data")

	le.Config.Publications[0].Copy = config.CopyTableSync
	refused("create-subscriptions", RunParams{}, "was copied in its slot's snapshot by copy-data")
	le.Config.Publications[0].Copy = config.CopySnapshot

	exec(le.Blue, `SELECT pg_drop_replication_slot('pgbg_all')`)
	refused("create-subscriptions", RunParams{}, "run copy-data --again REASON")
	if _, err := le.Runner.Run(ctx, "copy-data", RunParams{Confirmed: true, Again: "the slot was dropped"}); err != nil {
		t.Fatalf("copy-data --again: %v", err)
	}
	if err := le.Runner.Through(ctx, "wait-catch-up", RunParams{Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	v, err := lab.Verify(ctx, le.Info.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || v.TablesCompared == 0 {
		t.Errorf("after copying again: %+v", v)
	}
	refused("copy-data", RunParams{Again: "once more"}, "the copy stands")
}
