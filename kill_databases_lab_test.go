package main

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps"
)

// TestKillBetweenDatabases stops a step that acts in each database after
// it is done in app and before it starts in billing, under a live load on
// both: SIGHUP ends the run interrupted, SIGKILL where it stands. Each
// time, the next run passes over app (its check finds the work there) and
// does billing; the run goes on to the catch-up, and each database's
// ledger shows no acknowledged write lost or duplicated.
func TestKillBetweenDatabases(t *testing.T) {
	labtest.Require(t)
	k := &killLab{info: labtest.Start(t, labtest.StartParams{Strategy: "copy"}), bin: binary(t)}
	k.state = filepath.Join(k.info.Dir, "pgbluegreen.state.json")
	// By table sync: create-slots makes the slot of each database.
	editConfig(t, k.info.Config, "  - name: pgbg_all\n", "  - name: pgbg_all\n    copy: tablesync\n")
	stopLoad := labtest.StartLoad(t, k.info.Dir, labtest.LoadParams{Rate: 200, Clients: 4, Databases: []string{lab.AppDB, lab.BillingDB}})
	k.must(t, "run", "--through", "create-publications", "--yes")
	blue := labPool(t, k.info.Blue.Conninfo)
	ctx := context.Background()
	slots := func() string {
		t.Helper()
		var s string
		if err := blue.QueryRow(ctx, "SELECT coalesce(string_agg(slot_name::text, ',' ORDER BY slot_name), '') FROM pg_replication_slots").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	status := func(id string) state.StepRecord {
		t.Helper()
		for _, s := range k.status(t).Steps {
			if s.ID == id {
				return s.StepRecord
			}
		}
		t.Fatalf("no step %s in status", id)
		return state.StepRecord{}
	}
	point := steps.DatabaseHold("create-slots", lab.BillingDB)

	h, out := k.held(t, "create-slots", point, true)
	if got := slots(); got != "pgbg_all" {
		t.Fatalf("held before billing: slots %q, want app's alone\n%s", got, out.String())
	}
	if rec := status("create-slots"); rec.Status != state.Running || rec.Database != "" && !strings.HasPrefix(rec.Database, "app") {
		t.Errorf("held before billing, create-slots is %s in %q", rec.Status, rec.Database)
	}
	if err := h.signal(syscall.SIGHUP); err == nil {
		t.Fatalf("create-slots ended well after SIGHUP:\n%s", out.String())
	}
	if rec := status("create-slots"); rec.Status == state.Done {
		t.Errorf("create-slots is done after SIGHUP before billing")
	}

	h, out = k.held(t, "create-slots", point, true)
	h.signal(syscall.SIGKILL)
	if got := slots(); got != "pgbg_all" {
		t.Fatalf("after SIGKILL before billing: slots %q\n%s", got, out.String())
	}
	again := k.must(t, "run", "--through", "wait-catch-up", "--yes")
	for _, want := range []string{"already done in app", "slot pgbg_all_billing created"} {
		if !strings.Contains(again, want) {
			t.Errorf("the run after the kill does not say %q:\n%s", want, again)
		}
	}
	if got := slots(); got != "pgbg_all,pgbg_all_billing" {
		t.Errorf("after the run: slots %q", got)
	}
	res := stopLoad()
	t.Logf("load: %+v", res)
	k.drained(t, "blue", "pgbg_all")
	k.drained(t, "blue", "pgbg_all_billing")
	v, err := lab.Verify(ctx, k.info.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range v.Databases {
		t.Logf("%s: %d ledger entries, %d lost, %d duplicated, %d tables compared", d.Database, d.LedgerEntries, d.Lost, d.Duplicated, d.TablesCompared)
	}
	if !v.OK() || len(v.Databases) != 2 {
		t.Errorf("after the kills: %+v", v)
	}
}
