package steps

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// The DDL recorder on a lab's blue: refused in one line to a role that may
// not create event triggers (plain, and rds_superuser as on RDS, where the
// server decides), leaving nothing; installed, it records DDL run by a role
// that has no right on its log, keeps a statement that may hold a password
// out of the log, records a DROP, never counts as the user's schema; removed,
// nothing is left, and removing again is a no-op.
func TestDDLRecorderLab(t *testing.T) {
	le, _ := startLab(t, "copy")
	ctx := context.Background()
	exec := func(pool interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}, sqls ...string) {
		t.Helper()
		for _, s := range sqls {
			if _, err := pool.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	exec(le.Blue, "CREATE ROLE pgbg_nosuper LOGIN PASSWORD 'nosuper'", "GRANT CREATE ON SCHEMA public TO pgbg_nosuper")
	cfg, err := pgconn.ParseConfig(le.Config.Blue.Conninfo)
	if err != nil {
		t.Fatal(err)
	}
	nosuper, err := pg.NewPool(pg.PoolParams{Conninfo: le.Config.Blue.Conninfo + " user=pgbg_nosuper password=nosuper"}) // the lab asks every TCP login for a password
	if err != nil {
		t.Fatal(err)
	}
	defer nosuper.Close()
	e := le.Runner.Env(recordDDLID)
	e.Blue = nosuper
	refused := func(want string) {
		t.Helper()
		err := runRecordDDL(ctx, e)
		if !IsRefused(err) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "skip this optional step") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("a role that may not create event triggers: %v", err)
		}
		t.Logf("refused: %v", err)
		if parts, err := pg.DDLRecorderParts(ctx, le.Blue); err != nil || len(parts) > 0 {
			t.Fatalf("left on blue after the refusal: %v %v", parts, err)
		}
	}
	refused("blue does not allow event triggers for pgbg_nosuper: only a superuser")
	// RDS's way: a member of rds_superuser may try; here the server says no.
	exec(le.Blue, "CREATE ROLE rds_superuser NOLOGIN", "GRANT rds_superuser TO pgbg_nosuper")
	refused("blue does not allow event triggers for pgbg_nosuper: ")

	if _, err := le.Runner.Run(ctx, recordDDLID, RunParams{Confirmed: true, Override: "test: the recorder alone"}); err != nil {
		t.Fatalf("run %s: %v", recordDDLID, err)
	}
	if res, err := checkRecordDDL(ctx, le.Runner.Env(recordDDLID)); err != nil || !res.Done {
		t.Fatalf("record-ddl's check after it ran: %+v %v", res, err)
	}
	exec(nosuper, "CREATE TABLE public.nosuper_t (id int)", "DROP TABLE public.nosuper_t")
	exec(le.Blue, "CREATE SUBSCRIPTION pgbg_secret CONNECTION 'host="+cfg.Host+" password=hunter2' PUBLICATION nothing WITH (connect = false)",
		"ALTER SUBSCRIPTION pgbg_secret SET (slot_name = NONE)", "DROP SUBSCRIPTION pgbg_secret")
	log, err := pg.ReadDDLLog(ctx, le.Blue, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range log {
		got = append(got, r.User+" | "+r.CommandTag+" | "+r.Object+" | "+r.Query)
		if strings.Contains(r.Query, "hunter2") {
			t.Errorf("a password in the DDL log: %+v", r)
		}
	}
	t.Logf("recorded, newest first:\n%s", strings.Join(got, "\n"))
	slices.Reverse(got)
	want := []string{
		"pgbg_nosuper | CREATE TABLE | public.nosuper_t | CREATE TABLE public.nosuper_t (id int)",
		"pgbg_nosuper | DROP TABLE |  | DROP TABLE public.nosuper_t",
		cfg.User + " | CREATE SUBSCRIPTION | pgbg_secret | (not recorded: it may hold a password)",
		cfg.User + " | ALTER SUBSCRIPTION | pgbg_secret | (not recorded: it may hold a password)",
		cfg.User + " | DROP SUBSCRIPTION |  | (not recorded: it may hold a password)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("recorded:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	schemas, err := pg.UserSchemas(ctx, le.Blue)
	if err != nil || slices.Contains(schemas, pg.RecorderSchema) {
		t.Errorf("user schemas with the recorder installed: %v %v", schemas, err)
	}

	if _, err := le.Runner.Run(ctx, removeDDLRecorderID, RunParams{Confirmed: true, Override: "test: the recorder alone"}); err != nil {
		t.Fatalf("run %s: %v", removeDDLRecorderID, err)
	}
	if parts, err := pg.DDLRecorderParts(ctx, le.Blue); err != nil || len(parts) > 0 {
		t.Fatalf("left on blue after remove-ddl-recorder: %v %v", parts, err)
	}
	if err := (pg.DropDDLRecorderParams{On: "blue"}).Exec(ctx, le.Blue); err != nil {
		t.Errorf("removing again: %v", err)
	}
	if log, err := pg.ReadDDLLog(ctx, le.Blue, 5); err != nil || log != nil {
		t.Errorf("the DDL log after removal: %v %v", log, err)
	}
}
