package pg

import (
	"context"
	"testing"
)

// TestRefreshMatviews lists blue's materialized views in the order they
// must be refreshed (one over the lab's account_tiers through a plain
// view comes after it; one never populated is refreshed plainly, then
// CONCURRENTLY once populated) and refreshes them.
func TestRefreshMatviews(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	mustExec(t, l.blue, "CREATE VIEW public.tiers_view AS SELECT * FROM public.account_tiers")
	mustExec(t, l.blue, "CREATE MATERIALIZED VIEW public.a_tier_totals AS SELECT count(*) AS tiers, sum(accounts) AS accounts FROM public.tiers_view WITH NO DATA")
	mustExec(t, l.blue, "CREATE UNIQUE INDEX a_tier_totals_tiers ON public.a_tier_totals (tiers)")
	mustExec(t, l.blue, "CREATE MATERIALIZED VIEW inventory.stock AS SELECT sum(stock) AS stock FROM inventory.items")
	views, err := Matviews(ctx, l.blue, []string{"public", "inventory"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range views {
		got = append(got, v.Rel.String())
	}
	want := []string{`"inventory"."stock"`, `"public"."account_tiers"`, `"public"."a_tier_totals"`}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("refresh order %v, want %v", got, want)
	}
	tiers, totals, stock := views[1], views[2], views[0]
	if !tiers.Concurrently() || totals.Populated || totals.Concurrently() || !totals.Unique || stock.Unique || stock.Concurrently() {
		t.Errorf("account_tiers %+v, a_tier_totals %+v, stock %+v", tiers, totals, stock)
	}
	if len(totals.After) != 1 || totals.After[0] != tiers.Rel {
		t.Errorf("a_tier_totals comes after %v, want account_tiers", totals.After)
	}
	var lines []MatviewRefreshed
	if err := (RefreshMatviewsParams{On: "blue", Views: views}).Exec(ctx, l.blue, func(r MatviewRefreshed) { lines = append(lines, r) }); err != nil {
		t.Fatal(err)
	}
	for _, r := range lines {
		t.Logf("%d/%d %s concurrently=%t %d rows in %s", r.Done, r.Of, r.Matview.Rel, r.Concurrently, r.Rows, r.Took)
	}
	if len(lines) != 3 || lines[2].Rows != 1 || lines[1].Rows != 3 || !lines[1].Concurrently || lines[2].Concurrently {
		t.Errorf("refreshed %+v", lines)
	}
	views, err = Matviews(ctx, l.blue, []string{"public"})
	if err != nil || len(views) != 2 || !views[1].Populated || !views[1].Concurrently() {
		t.Fatalf("after the refresh: %+v, %v", views, err)
	}
}
