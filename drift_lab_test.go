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
// ends the drift. With the optional DDL recorder installed (record-ddl),
// status also shows the statement, its time and user; the recorder's log
// never reaches green, and remove-ddl-recorder leaves nothing on blue.
func TestDriftLab(t *testing.T) {
	info := labtest.Start(t, labtest.StartParams{Strategy: "copy"})
	args := func(a ...string) []string {
		return append(a, "--config", info.Config, "--state", filepath.Join(info.Dir, "pgbluegreen.state.json"))
	}
	// The optional DDL recorder, in its place right before the subscriptions.
	for _, a := range [][]string{{"run", "--through", "compare-schema", "--yes"}, {"run", "record-ddl", "--yes"}, {"run", "--through", "verify-data", "--yes"}, {"run", "copy-unlogged", "--yes"}} {
		if code, out, errs := cli(t, args(a...)...); code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", a, code, out, errs)
		}
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
	if !d.Recording || len(d.Recorded) != 1 {
		t.Fatalf("status --json: the DDL recorder logged %d statement(s), recording %t, want the ALTER TABLE: %+v", len(d.Recorded), d.Recording, d.Recorded)
	}
	if r := d.Recorded[0]; r.CommandTag != "ALTER TABLE" || r.Object != "public.accounts" || r.Query != "ALTER TABLE public.accounts ADD COLUMN note text" || r.User == "" || r.At.IsZero() {
		t.Errorf("recorded: %+v", r)
	}
	_, text, _ := cli(t, args("status")...)
	var shown []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "DRIFT") || strings.Contains(l, "only on") || strings.Contains(l, "DDL") || strings.Contains(l, "ALTER") {
			shown = append(shown, l)
		}
	}
	t.Logf("status after the DDL on blue:\n%s", strings.Join(shown, "\n"))
	if !strings.Contains(text, "⚠ SCHEMA DRIFT: 1 object(s) differ") {
		t.Errorf("status text lacks the drift:\n%s", text)
	}
	if !strings.Contains(text, "DDL recorded on blue, newest first") || !strings.Contains(text, " ALTER TABLE public.accounts: ALTER TABLE public.accounts ADD COLUMN note text") {
		t.Errorf("status text lacks the recorded DDL:\n%s", text)
	}
	// The log is blue's alone: never published, never on green.
	if n := queryInt(t, info.Blue.Conninfo, "SELECT count(*) FROM pg_publication_tables WHERE schemaname = 'pgbluegreen'"); n != 0 {
		t.Errorf("%d publication table(s) in schema pgbluegreen on blue", n)
	}
	if n := queryInt(t, info.Green.Conninfo, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgbluegreen'"); n != 0 {
		t.Errorf("schema pgbluegreen on green")
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
	// Cleanup's remove-ddl-recorder leaves no trace (out of order here: --force).
	if code, out, errs := cli(t, args("run", "remove-ddl-recorder", "--yes", "--force", "test: remove the recorder")...); code != exitOK {
		t.Fatalf("run remove-ddl-recorder: exit %d\n%s%s", code, out, errs)
	}
	left := queryInt(t, info.Blue.Conninfo, `SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'pgbluegreen') +
  (SELECT count(*) FROM pg_event_trigger WHERE evtname = 'pgbg_ddl_log') + (SELECT count(*) FROM pg_proc WHERE proname = 'record_ddl')`)
	if left != 0 {
		t.Errorf("%d part(s) of the DDL recorder left on blue", left)
	}
	if d := status().Drift; d.Recording || len(d.Recorded) != 0 {
		t.Errorf("status still shows the recorder: %+v", d)
	}
}

// queryInt reads one integer from a fresh connection.
func queryInt(t *testing.T, conninfo, sql string) int64 {
	t.Helper()
	c, err := pgx.Connect(context.Background(), conninfo)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int64
	if err := c.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
