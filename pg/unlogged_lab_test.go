package pg

import (
	"context"
	"testing"
)

// TestCopyUnlogged copies blue's unlogged tables (one with a generated
// column) into green, emptying what green had, in one transaction.
func TestCopyUnlogged(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	mustExec(t, l.blue, "CREATE UNLOGGED TABLE public.sessions (id int PRIMARY KEY, token text, twice int GENERATED ALWAYS AS (id * 2) STORED)")
	mustExec(t, l.blue, "INSERT INTO public.sessions (id, token) SELECT i, md5(i::text) FROM generate_series(1, 5000) i")
	mustExec(t, l.blue, "CREATE UNLOGGED TABLE inventory.cache (k text)")
	l.schemaToGreen(t)
	mustExec(t, l.green, "INSERT INTO public.sessions (id, token) VALUES (-1, 'stale')")
	tables, err := UnloggedTables(ctx, l.blue, []string{"public", "inventory"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 || tables[0].Rel != (Rel{"public", "sessions"}) || len(tables[0].Columns) != 2 {
		t.Fatalf("unlogged tables %+v", tables)
	}
	var copied []UnloggedCopied
	if err := (CopyUnloggedParams{Tables: tables}).Exec(ctx, l.blue, l.green, func(c UnloggedCopied) { copied = append(copied, c) }); err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", copied)
	if len(copied) != 2 || copied[0].Rows != 5000 || copied[1].Rows != 0 {
		t.Errorf("copied %+v", copied)
	}
	var n, twice int64
	var sum string
	if err := l.green.QueryRow(ctx, "SELECT count(*), sum(twice), md5(string_agg(token, '' ORDER BY id)) FROM public.sessions").Scan(&n, &twice, &sum); err != nil {
		t.Fatal(err)
	}
	var want string
	if err := l.blue.QueryRow(ctx, "SELECT md5(string_agg(token, '' ORDER BY id)) FROM public.sessions").Scan(&want); err != nil {
		t.Fatal(err)
	}
	if n != 5000 || twice != 5000*5001 || sum != want {
		t.Errorf("green's sessions: %d rows, sum(twice) %d, md5 %s; blue's md5 %s", n, twice, sum, want)
	}
}
