package steps

import (
	"context"
	"testing"
	"time"
)

// TestEverySchemaByDefault: with `schemas` omitted, a database with a
// schema whose name needs quoting ("Sales Dept", holding a mixed-case
// table and a table with no primary key) replicates every schema: the run
// through verify-data resolves the schemas from blue, and green ends with
// the same rows in each, including writes made after the initial copy.
func TestEverySchemaByDefault(t *testing.T) {
	le, _ := startLab(t, "copy")
	ctx := context.Background()
	for _, s := range []string{
		`CREATE SCHEMA "Sales Dept"`,
		`CREATE TABLE "Sales Dept"."Orders" (id int PRIMARY KEY, amount numeric NOT NULL)`,
		`CREATE TABLE "Sales Dept".notes (body text)`,
		`INSERT INTO "Sales Dept"."Orders" SELECT i, i * 1.5 FROM generate_series(1, 500) i`,
		`INSERT INTO "Sales Dept".notes SELECT 'note ' || i FROM generate_series(1, 50) i`,
	} {
		if _, err := le.Blue.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	le.Config.Schemas = nil // omitted: every schema of blue
	start := time.Now()
	if err := le.Runner.Through(ctx, "wait-catch-up", RunParams{Confirmed: true}); err != nil {
		t.Fatalf("run --through wait-catch-up with schemas omitted: %v", err)
	}
	t.Logf("through wait-catch-up in %s", time.Since(start).Round(time.Millisecond))
	if v, _ := le.Store.Snapshot().Get("replica_identity_full_tables"); v != `"Sales Dept"."notes", "public"."events_log"` {
		t.Errorf("replica_identity_full_tables = %q, want both tables without a primary key", v)
	}
	// Writes after the initial copy arrive too, in every schema.
	for _, s := range []string{
		`UPDATE "Sales Dept"."Orders" SET amount = amount + 1 WHERE id <= 100`,
		`DELETE FROM "Sales Dept".notes WHERE body = 'note 7'`,
		`INSERT INTO "Sales Dept"."Orders" VALUES (501, 1)`,
	} {
		if _, err := le.Blue.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	const sum = `SELECT count(*)::text || ' ' || sum(amount)::text FROM "Sales Dept"."Orders"`
	want := queryOne[string](t, le.Blue, sum)
	deadline := time.Now().Add(30 * time.Second)
	for queryOne[string](t, le.Green, sum) != want || queryOne[int64](t, le.Green, `SELECT count(*) FROM "Sales Dept".notes`) != 49 {
		if time.Now().After(deadline) {
			t.Fatalf("green's \"Sales Dept\" did not catch up: %s vs blue's %s", queryOne[string](t, le.Green, sum), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := le.Runner.Through(ctx, "verify-data", RunParams{Confirmed: true}); err != nil {
		t.Fatalf("verify-data over every schema: %v", err)
	}
}
