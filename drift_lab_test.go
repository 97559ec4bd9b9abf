package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// Schema drift: an ALTER TABLE ... ADD COLUMN on blue while replication
// runs shows in `status` (text and JSON) with the column, and the cutover
// refuses, naming it, before any attempt starts; the same change on green
// ends the drift.
func TestDriftLab(t *testing.T) {
	info := labtest.Start(t, labtest.StartParams{Strategy: "copy"})
	args := func(a ...string) []string {
		return append(a, "--config", info.Config, "--state", filepath.Join(info.Dir, "pgbluegreen.state.json"))
	}
	if code, out, errs := cli(t, args("run", "--through", "verify-data", "--yes")...); code != exitOK {
		t.Fatalf("run --through verify-data: exit %d\n%s%s", code, out, errs)
	}
	status := func() statusDoc {
		t.Helper()
		code, out, errs := cli(t, args("status", "--json")...)
		if code != exitOK {
			t.Fatalf("status --json: exit %d: %s", code, errs)
		}
		var doc statusDoc
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Drift == nil || !doc.Drift.Compared {
			t.Fatalf("status --json did not compare the schemas: %+v", doc.Drift)
		}
		return doc
	}
	if d := status().Drift; d.Drifted() {
		t.Fatalf("drift before any DDL: %+v", d)
	}
	ddl := func(conninfo string) {
		t.Helper()
		c, err := pgx.Connect(context.Background(), conninfo)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "ALTER TABLE public.accounts ADD COLUMN note text"); err != nil {
			t.Fatal(err)
		}
	}
	ddl(info.Blue.Conninfo)
	d := status().Drift
	if !d.Drifted() || !strings.Contains(strings.Join(d.Differences, "\n"), "only on blue: column public.accounts.note text null") {
		t.Fatalf("status --json drift after the DDL: %+v", d)
	}
	_, text, _ := cli(t, args("status")...)
	t.Logf("status after the DDL on blue:\n%s", strings.Join(strings.Split(text, "\n")[:4], "\n"))
	if !strings.Contains(text, "⚠ SCHEMA DRIFT: 1 object(s) differ") {
		t.Errorf("status text lacks the drift:\n%s", text)
	}
	code, out, errs := cli(t, args("run", "cutover", "--yes")...)
	t.Logf("run cutover: exit %d: %s", code, strings.TrimSpace(errs))
	if code != exitFailed || !strings.Contains(errs, "schema drift") || !strings.Contains(errs, "column public.accounts.note") {
		t.Fatalf("the cutover did not refuse naming the column: exit %d\n%s%s", code, out, errs)
	}
	if n := len(status().Attempts); n != 0 {
		t.Errorf("a refused cutover recorded %d attempt(s)", n)
	}
	ddl(info.Green.Conninfo)
	if d := status().Drift; d.Drifted() {
		t.Errorf("drift after the same change on green: %+v", d)
	}
}
