package main

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
)

// TestKillDuringSnapshotCopy stops copy-data (copy: snapshot) half way,
// under a live load, after its first table is in: SIGHUP ends the step
// with an error, and it drops the slot it made; SIGKILL leaves the slot
// and the tables copied so far. The next run drops that slot, empties
// those tables, copies again from a new snapshot and goes on through
// wait-catch-up; the ledger shows no acknowledged write lost or
// duplicated, and every table equal.
func TestKillDuringSnapshotCopy(t *testing.T) {
	labtest.Require(t)
	k := &killLab{info: labtest.Start(t, labtest.StartParams{Strategy: "copy"}), bin: binary(t)}
	k.state = filepath.Join(k.info.Dir, "pgbluegreen.state.json")
	snapshotCopy(t, k.info.Config)
	blue, green := labPool(t, k.info.Blue.Conninfo), labPool(t, k.info.Green.Conninfo)
	ctx := context.Background()
	// A table above the size whose indexes are built after its data: the
	// copy holds once it is in, its indexes dropped on green and recorded.
	if _, err := blue.Exec(ctx, `CREATE TABLE public.kill_big (id bigint PRIMARY KEY, pad text NOT NULL);
CREATE INDEX kill_big_pad ON public.kill_big (left(pad, 4));
INSERT INTO public.kill_big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 450000) g`); err != nil {
		t.Fatal(err)
	}
	stopLoad := labtest.StartLoad(t, k.info.Dir, labtest.LoadParams{Rate: 200, Clients: 4})
	k.must(t, "run", "--through", "compare-schema", "--yes")
	// indexes says what green lacks of kill_big's indexes, and what the
	// copy left recorded.
	indexes := func() (missing int, left string) {
		t.Helper()
		var err error
		if err = green.QueryRow(ctx, "SELECT 2 - count(*) FROM pg_indexes WHERE tablename = 'kill_big'").Scan(&missing); err != nil {
			t.Fatal(err)
		}
		if left, err = pg.DeferredLeft(ctx, green); err != nil {
			t.Fatal(err)
		}
		return missing, left
	}
	slot := func() (exists, active bool) {
		t.Helper()
		if err := blue.QueryRow(ctx, "SELECT count(*) > 0, coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = 'pgbg_all'").Scan(&exists, &active); err != nil {
			t.Fatal(err)
		}
		return exists, active
	}
	copyDataStatus := func() state.Status {
		t.Helper()
		for _, s := range k.status(t).Steps {
			if s.ID == "copy-data" {
				return s.Status
			}
		}
		t.Fatal("no copy-data step in status")
		return ""
	}
	// rowsOnGreen counts the rows of every table on green: the copy takes
	// the largest table first, and which one that is depends on how long
	// the load has run.
	rowsOnGreen := func() int64 {
		t.Helper()
		var q string
		if err := green.QueryRow(ctx, `SELECT string_agg(format('SELECT count(*) FROM %I.%I', schemaname, tablename), ' UNION ALL ')
FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pgbluegreen')`).Scan(&q); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := green.QueryRow(ctx, "SELECT sum(count)::bigint FROM ("+q+") t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("SIGHUP", func(t *testing.T) {
		h, out := k.held(t, "copy-data", steps.CopyDataHold, true)
		if exists, _ := slot(); !exists {
			t.Fatalf("held after a table: no slot on blue\n%s", out.String())
		}
		if err := h.signal(syscall.SIGHUP); err == nil {
			t.Fatalf("copy-data ended well after SIGHUP:\n%s", out.String())
		}
		if exists, _ := slot(); exists {
			t.Errorf("the slot of a copy ended by SIGHUP is still on blue: it would hold blue's WAL\n%s", out.String())
		}
		if st := copyDataStatus(); st == state.Done {
			t.Errorf("copy-data is %s after SIGHUP", st)
		}
		if missing, left := indexes(); missing != 0 || left != "" {
			t.Errorf("after SIGHUP, %d of kill_big's indexes missing on green, %q recorded: the failed copy builds them again", missing, left)
		}
	})
	t.Run("SIGKILL, then the run again", func(t *testing.T) {
		h, out := k.held(t, "copy-data", steps.CopyDataHold, true)
		h.signal(syscall.SIGKILL)
		exists, active := slot()
		if !exists || active {
			t.Fatalf("after SIGKILL: slot exists %t, active %t; want left, inactive\n%s", exists, active, out.String())
		}
		if n := rowsOnGreen(); n == 0 {
			t.Errorf("after SIGKILL held past the first table: no row on green")
		}
		if st := copyDataStatus(); st == state.Done {
			t.Errorf("copy-data is %s after SIGKILL", st)
		}
		if missing, left := indexes(); missing != 2 || left != "public.kill_big_pad, public.kill_big_pkey" {
			t.Errorf("after SIGKILL, %d of kill_big's indexes missing on green, %q recorded; want both, recorded", missing, left)
		}
		if code, out := k.cli(t, nil, "run", "create-subscriptions", "--force", "out of order on purpose", "--yes"); code == 0 || !strings.Contains(out, "run copy-data") {
			t.Errorf("create-subscriptions with kill_big's indexes dropped on green: exit %d\n%s", code, out)
		}
		again := k.must(t, "run", "--through", "wait-catch-up", "--yes")
		if missing, left := indexes(); missing != 0 || left != "" {
			t.Errorf("after the run again, %d of kill_big's indexes missing on green, %q recorded", missing, left)
		}
		for _, want := range []string{"left by an interrupted copy", "hold an earlier copy's rows: emptied first", "copy_data = false"} {
			if !strings.Contains(again, want) {
				t.Errorf("the run after the kill does not say %q:\n%s", want, again)
			}
		}
	})
	res := stopLoad()
	t.Logf("load: %+v", res)
	k.drained(t, "blue", "pgbg_all")
	v, err := lab.Verify(ctx, k.info.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ledger: %+v", v)
	if !v.OK() || v.LedgerEntries == 0 || v.TablesCompared == 0 {
		t.Errorf("after the copy was stopped twice: %+v", v)
	}
}

// snapshotCopy sets copy: snapshot on the lab's one publication.
func snapshotCopy(t *testing.T, config string) {
	t.Helper()
	editConfig(t, config, "  - name: pgbg_all\n", "  - name: pgbg_all\n    copy: snapshot\n")
}

// labPool is a small pool on a lab server, closed at the test's end.
func labPool(t *testing.T, conninfo string) *pgxpool.Pool {
	t.Helper()
	p, err := pg.NewPool(pg.PoolParams{Conninfo: conninfo, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
