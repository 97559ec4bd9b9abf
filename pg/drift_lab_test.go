package pg_test

import (
	"context"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab/labtest"
)

// BenchmarkSchemaFingerprint times the drift guard's poll (one fingerprint
// of the schema, one query) on the lab's blue with 400 extra tables of six
// columns, a primary key, an index and a check each: the "hundreds of
// tables" a slow tick must stay cheap for. Metric: objects covered.
func BenchmarkSchemaFingerprint(b *testing.B) {
	info := labtest.Start(b, labtest.StartParams{})
	ctx := context.Background()
	blue, err := pg.NewPool(pg.PoolParams{Conninfo: info.Blue.Conninfo, MaxConns: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer blue.Close()
	if _, err := blue.Exec(ctx, `DO $$ BEGIN FOR i IN 1..400 LOOP
  EXECUTE format('CREATE TABLE public.bench_t%s (id bigint PRIMARY KEY, a int NOT NULL CHECK (a > 0), b text, c timestamptz, d numeric(12,2), e jsonb)', i);
  EXECUTE format('CREATE INDEX ON public.bench_t%s (b)', i);
END LOOP; END $$`); err != nil {
		b.Fatal(err)
	}
	schemas := []string{"public", "inventory"}
	var objects int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, objects, err = pg.SchemaFingerprint(ctx, blue, schemas); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(objects), "objects")
}
