package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
)

// TestKillDuringSnapshotCopy stops copy-data (copy: snapshot) half way,
// under a live load, after its largest table (kill_big) is in and before
// its indexes are built: SIGKILL leaves the slot, the snapshot held by its
// holder process, the rows copied and their records; a run again goes on
// in that snapshot, and SIGHUP ends it with an error that keeps all that
// too. The run after copies what is left, builds kill_big's indexes and
// goes on through wait-catch-up: kill_big was read once on blue over the
// three runs, the holder is gone, the ledger shows no acknowledged write
// lost or duplicated, and every table is equal.
func TestKillDuringSnapshotCopy(t *testing.T) {
	labtest.Require(t)
	k := &killLab{info: labtest.Start(t, labtest.StartParams{Strategy: "copy"}), bin: binary(t)}
	k.state = filepath.Join(k.info.Dir, "pgbluegreen.state.json")
	snapshotCopy(t, k.info.Config)
	// One session: the kill comes while every other table waits its turn.
	editConfig(t, k.info.Config, "publications:\n", "sync:\n  copy_jobs: 1\npublications:\n")
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

	holdFile := filepath.Join(k.info.Dir, "pgbluegreen.snapshot.pgbg_all.json")
	holder := func() (pid int) {
		t.Helper()
		h, ok, err := steps.ReadSnapshotHold(holdFile)
		if err != nil || !ok {
			log, _ := os.ReadFile(filepath.Join(k.info.Dir, "pgbluegreen.holder.log"))
			t.Fatalf("no hold file %s (%v); the holder's log:\n%s", holdFile, err, log)
		}
		return h.PID
	}
	// copiesOf counts, in the journal, the COPYs that read kill_big on blue.
	copiesOf := func() int {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(k.info.Dir, "pgbluegreen.state.journal.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), `\"kill_big\" (\"id\", \"pad\") TO STDOUT`)
	}

	t.Run("SIGKILL", func(t *testing.T) {
		h, out := k.held(t, "copy-data", steps.CopyDataHold, true)
		h.signal(syscall.SIGKILL)
		exists, active := slot()
		if !exists || active {
			t.Fatalf("after SIGKILL: slot exists %t, active %t; want left, inactive\n%s", exists, active, out.String())
		}
		if pid := holder(); syscall.Kill(pid, 0) != nil {
			t.Errorf("after SIGKILL the snapshot's holder (pid %d) is gone", pid)
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
	})
	t.Run("SIGHUP in the run that goes on", func(t *testing.T) {
		h, out := k.held(t, "copy-data", steps.CopyDataHold, true)
		if err := h.signal(syscall.SIGHUP); err == nil {
			t.Fatalf("copy-data ended well after SIGHUP:\n%s", out.String())
		}
		for _, want := range []string{"going on with the copy of pgbg_all in snapshot", "stays held for 15m0s: run copy-data again within that time to go on from there"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("the run stopped by SIGHUP does not say %q:\n%s", want, out.String())
			}
		}
		if exists, _ := slot(); !exists {
			t.Errorf("after SIGHUP the slot is gone: nothing can go on\n%s", out.String())
		}
		if st := copyDataStatus(); st == state.Done {
			t.Errorf("copy-data is %s after SIGHUP", st)
		}
	})
	t.Run("the run again goes on", func(t *testing.T) {
		pid := holder()
		again := k.must(t, "run", "--through", "wait-catch-up", "--yes")
		if missing, left := indexes(); missing != 0 || left != "" {
			t.Errorf("after the run again, %d of kill_big's indexes missing on green, %q recorded", missing, left)
		}
		for _, l := range strings.Split(again, "\n") {
			if strings.Contains(l, "going on with the copy") || strings.Contains(l, "copied ") {
				t.Logf("the run again: %s", strings.TrimSpace(l))
			}
		}
		for _, want := range []string{"going on with the copy of pgbg_all in snapshot", "copy_data = false"} {
			if !strings.Contains(again, want) {
				t.Errorf("the run after the kill does not say %q:\n%s", want, again)
			}
		}
		for _, not := range []string{"emptied first", "left by an interrupted copy"} {
			if strings.Contains(again, not) {
				t.Errorf("the run after the kill says %q: it started over\n%s", not, again)
			}
		}
		if n := copiesOf(); n != 1 {
			t.Errorf("kill_big was read %d times on blue over the three runs, want once: the run again copied it again", n)
		}
		if _, err := os.Stat(holdFile); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("hold file left after the copy: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("the holder (pid %d) still runs 10 s after the copy", pid)
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
