package pg_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// TestAnalyzeCoversPartitionedParents analyzes the lab's schemas on
// blue (15, which has the lab's schema) the way analyze-green does on green, on two connections: the
// partitioned parent is among the targets, every statement is journaled
// as it ran, and nothing is left unanalyzed, the parent included.
func TestAnalyzeCoversPartitionedParents(t *testing.T) {
	info := labtest.Start(t, labtest.StartParams{})
	ctx := context.Background()
	green, err := pg.NewPool(pg.PoolParams{Conninfo: info.Blue.Conninfo, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer green.Close()
	schemas := []string{"public", "inventory"}
	start, err := pg.ServerNow(ctx, green)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // last_analyze is strictly after start
	tables, err := pg.AnalyzeTargets(ctx, green, schemas)
	if err != nil {
		t.Fatal(err)
	}
	parent := pg.Rel{Schema: "public", Name: "measurements"}
	found := false
	for _, r := range tables {
		found = found || r == parent
	}
	if !found {
		t.Fatalf("the partitioned parent %s is not among the targets %v", parent, tables)
	}
	var mu sync.Mutex
	var ran []string
	jctx := pg.WithJournal(ctx, func(_ context.Context, x pg.Executed) {
		mu.Lock()
		ran = append(ran, x.Text)
		mu.Unlock()
	})
	op := pg.AnalyzeParams{On: "green", Tables: tables, Jobs: 2}
	analyzed := 0
	if err := op.Exec(jctx, green, func(done int, _ pg.Rel, _ time.Duration) { analyzed = max(analyzed, done) }); err != nil {
		t.Fatal(err)
	}
	if analyzed != len(tables) {
		t.Fatalf("%d of %d tables reported analyzed", analyzed, len(tables))
	}
	// Two connections: SET and RESET twice, one ANALYZE per table.
	if want := len(tables) + 4; len(ran) != want {
		t.Fatalf("%d statements journaled, want %d: %v", len(ran), want, ran)
	}
	left, err := pg.NotAnalyzedSince(ctx, green, schemas, start)
	if err != nil || len(left) != 0 {
		t.Fatalf("not analyzed since the start: %v, %v", left, err)
	}
}
