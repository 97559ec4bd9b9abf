package lab

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestLabLoginsAndDatabases: every login over TCP asks for its password
// (blue, green, both PgBouncers, the console) and the passfile's gets in;
// PgBouncer's SCRAM pass-through still logs in once repointed to green; no
// password is written anywhere but DIR/pgpass; blue has database billing,
// and app a materialized view and a large object; a load into app and
// billing verifies per database with nothing lost or duplicated, and a
// write lost in billing is found.
func TestLabLoginsAndDatabases(t *testing.T) {
	requireLab(t)
	t.Setenv("PGPASSWORD", "") // the passfile alone may give a password
	ctx := context.Background()
	dir := labDir(t)
	info, err := Up(ctx, UpParams{Dir: dir})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	passwords := readPgpass(info.Pgpass)

	t.Run("every TCP login asks for its password", func(t *testing.T) {
		empty := filepath.Join(dir, "empty-pgpass")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		type login struct {
			name, conninfo, query string
			mode                  pgx.QueryExecMode
		}
		logins := []login{
			{"blue as postgres", info.Blue.Conninfo, "SELECT current_user", pgx.QueryExecModeCacheStatement},
			{"blue as app, database billing", tcpConninfo(info.Blue.Port, BillingDB, AppRole, info.Pgpass), "SELECT current_user", pgx.QueryExecModeCacheStatement},
			{"blue as pgbg_repl", tcpConninfo(info.Blue.Port, AppDB, ReplicationRole, info.Pgpass), "SELECT current_user", pgx.QueryExecModeCacheStatement},
			{"green as postgres", info.Green.Conninfo, "SELECT current_user", pgx.QueryExecModeCacheStatement},
			{"green as app", tcpConninfo(info.Green.Port, AppDB, AppRole, info.Pgpass), "SELECT current_user", pgx.QueryExecModeCacheStatement},
		}
		for _, b := range info.Bouncers() {
			for _, db := range Databases {
				logins = append(logins, login{"PgBouncer " + b.Name + " to " + db, tcpConninfo(b.Port, db, AppRole, info.Pgpass), "SELECT current_user", pgx.QueryExecModeExec})
			}
			logins = append(logins, login{"PgBouncer " + b.Name + "'s console", b.AdminConninfo, "SHOW VERSION", pgx.QueryExecModeSimpleProtocol})
		}
		if len(logins) != 11 {
			t.Fatalf("%d logins to try, want 11 (two PgBouncers)", len(logins))
		}
		for _, l := range logins {
			if !strings.Contains(l.conninfo, "passfile="+info.Pgpass) || strings.Contains(l.conninfo, "password") {
				t.Errorf("%s: conninfo %q", l.name, l.conninfo)
			}
			conn := mustConnect(t, ctx, l.conninfo, l.mode)
			if got := queryString(t, ctx, conn, l.query); got == "" {
				t.Errorf("%s: %s said nothing", l.name, l.query)
			}
			for _, bad := range []string{strings.Replace(l.conninfo, "passfile="+info.Pgpass, "passfile="+empty, 1), l.conninfo + " password=wrong"} {
				c, err := pgx.Connect(ctx, bad)
				if err == nil {
					c.Close(ctx)
					t.Errorf("%s: logged in with %q", l.name, bad)
					continue
				}
				if msg := strings.ToLower(err.Error()); !strings.Contains(msg, "auth") && !strings.Contains(msg, "password") {
					t.Errorf("%s: refused for another reason: %v", l.name, err)
				}
			}
		}
		blue := mustConnect(t, ctx, info.Blue.Conninfo, pgx.QueryExecModeExec)
		if n := queryString(t, ctx, blue, "SELECT count(*)::text FROM pg_hba_file_rules WHERE type LIKE 'host%' AND auth_method <> 'scram-sha-256'"); n != "0" {
			t.Errorf("%s host lines of blue's pg_hba.conf ask for no SCRAM", n)
		}
	})

	t.Run("passwords in DIR/pgpass only, verifiers the same everywhere", func(t *testing.T) {
		for _, l := range labLogins {
			if len(passwords[l]) < 32 {
				t.Fatalf("no password for %s in the passfile", l)
			}
		}
		files := []string{info.Pgpass, filepath.Join(dir, InfoFile), info.Config}
		for _, b := range info.Bouncers() {
			files = append(files, b.Ini, filepath.Join(filepath.Dir(b.Ini), userlistFile))
		}
		logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*"))
		for _, f := range append(files, logs...) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range labLogins {
				if strings.Contains(string(b), passwords[l]) != (f == info.Pgpass) {
					t.Errorf("%s's password in %s: %v", l, f, f != info.Pgpass)
				}
			}
		}
		for _, f := range []string{info.Pgpass, filepath.Join(filepath.Dir(info.PgBouncer.Ini), userlistFile)} {
			if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, %v; want 0600", f, st.Mode(), err)
			}
		}
		userlist := readUserlist(filepath.Join(filepath.Dir(info.PgBouncer.Ini), userlistFile))
		blue := mustConnect(t, ctx, info.Blue.Conninfo, pgx.QueryExecModeExec)
		green := mustConnect(t, ctx, info.Green.Conninfo, pgx.QueryExecModeExec)
		onBlue, err := roleVerifiers(ctx, blue)
		if err != nil {
			t.Fatal(err)
		}
		onGreen, err := roleVerifiers(ctx, green)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range serverRoles {
			if !verifierMatches(onBlue[r], passwords[r]) || onGreen[r] != onBlue[r] {
				t.Errorf("role %s: blue's verifier matches its password: %v; green's is blue's: %v", r, verifierMatches(onBlue[r], passwords[r]), onGreen[r] == onBlue[r])
			}
		}
		for _, u := range bouncerUsers {
			if !verifierMatches(userlist[u], passwords[u]) || (u != ConsoleUser && userlist[u] != onBlue[u]) {
				t.Errorf("PgBouncer's auth_file for %s is not the server's verifier", u)
			}
		}
		pgpassBefore, _ := os.ReadFile(info.Pgpass)
		if _, err := Up(ctx, UpParams{Dir: dir}); err != nil {
			t.Fatalf("second lab up: %v", err)
		}
		pgpassAfter, _ := os.ReadFile(info.Pgpass)
		again, _ := roleVerifiers(ctx, blue)
		if string(pgpassAfter) != string(pgpassBefore) || again[AppRole] != onBlue[AppRole] || readUserlist(filepath.Join(filepath.Dir(info.PgBouncer.Ini), userlistFile))[ConsoleUser] != userlist[ConsoleUser] {
			t.Error("a second lab up changed a password or a verifier")
		}
	})

	t.Run("SCRAM pass-through after a repoint to green", func(t *testing.T) {
		b := &info.PgBouncer
		ini, err := os.ReadFile(b.Ini)
		if err != nil {
			t.Fatal(err)
		}
		blueLine := "app = host=127.0.0.1 port=" + strconv.Itoa(info.Blue.Port) + " dbname=app"
		greenLine := "app = host=127.0.0.1 port=" + strconv.Itoa(info.Green.Port) + " dbname=app"
		if !strings.Contains(string(ini), blueLine) {
			t.Fatalf("no %q in the ini", blueLine)
		}
		console := mustConnect(t, ctx, b.AdminConninfo, pgx.QueryExecModeSimpleProtocol)
		repoint := func(to string) {
			t.Helper()
			if err := os.WriteFile(b.Ini, []byte(strings.Replace(string(ini), blueLine, to, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := console.Exec(ctx, "RELOAD"); err != nil {
				t.Fatalf("RELOAD: %v", err)
			}
		}
		repoint(greenLine)
		defer repoint(blueLine)
		// A fresh server connection: PgBouncer logs in to green with the
		// client's SCRAM proof, which green accepts only with blue's verifier.
		app := mustConnect(t, ctx, b.Conninfo, pgx.QueryExecModeExec)
		if port := queryString(t, ctx, app, "SELECT inet_server_port()::text"); port != strconv.Itoa(info.Green.Port) {
			t.Fatalf("through PgBouncer after the repoint: port %s, want green's %d", port, info.Green.Port)
		}
		if v := queryString(t, ctx, app, "SHOW server_version_num"); !strings.HasPrefix(v, "17") {
			t.Errorf("green is %s", v)
		}
	})

	t.Run("billing, a materialized view and a large object", func(t *testing.T) {
		billing := mustConnect(t, ctx, tcpConninfo(info.Blue.Port, BillingDB, AppRole, info.Pgpass), pgx.QueryExecModeExec)
		for q, want := range map[string]string{
			"SELECT count(*)::text FROM public.invoices":                                                                                                                                        "1000",
			"SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = current_database()":                                                                                          AppRole,
			"SELECT count(*)::text FROM pg_constraint WHERE conrelid = 'public.invoices'::regclass AND contype = 'p'":                                                                           "1",
			"SELECT count(*)::text FROM pg_class s WHERE relname = 'receipt_no' AND relkind = 'S' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = s.oid AND d.deptype IN ('a', 'i'))": "1",
		} {
			if got := queryString(t, ctx, billing, q); got != want {
				t.Errorf("billing: %s = %s, want %s", q, got, want)
			}
		}
		app := mustConnect(t, ctx, tcpConninfo(info.Blue.Port, AppDB, AppRole, info.Pgpass), pgx.QueryExecModeExec)
		if n := queryString(t, ctx, app, "SELECT count(*)::text FROM "+MatView); n != "3" {
			t.Errorf("%s has %s rows, want one per tier", MatView, n)
		}
		if _, err := app.Exec(ctx, "REFRESH MATERIALIZED VIEW CONCURRENTLY "+MatView); err != nil {
			t.Errorf("REFRESH ... CONCURRENTLY as app: %v", err)
		}
		lo := info.LargeObject
		again, err := ReadInfo(dir)
		if err != nil || again.LargeObject != lo || lo.OID == 0 || lo.Bytes < 200_000 || lo.Database != AppDB {
			t.Fatalf("lab.json's large object %+v (%v), Up said %+v", again.LargeObject, err, lo)
		}
		var owner, sum string
		var size int64
		if err := app.QueryRow(ctx, "SELECT pg_get_userbyid(lomowner)::text, md5(lo_get(oid)), length(lo_get(oid)) FROM pg_largeobject_metadata WHERE oid = $1", lo.OID).Scan(&owner, &sum, &size); err != nil {
			t.Fatal(err)
		}
		if owner != AppRole || sum != lo.MD5 || size != lo.Bytes {
			t.Errorf("large object %d: owner %s, md5 %s, %d bytes; lab.json says %+v", lo.OID, owner, sum, size, lo)
		}
		st, err := Status(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st {
			var names []string
			for _, d := range c.Databases {
				names = append(names, d.Name)
			}
			switch got := strings.Join(names, ","); {
			case c.Name == "blue" && got != "app,billing", c.Name == "green" && got != "app", strings.HasPrefix(c.Name, "pgbouncer") && got != "app,billing":
				t.Errorf("status: %s serves %q", c.Name, got)
			}
		}
	})

	t.Run("a load into app and billing verifies per database", func(t *testing.T) {
		res, err := Load(ctx, LoadParams{Dir: dir, Rate: 100, Duration: 2 * time.Second, Clients: 2, Databases: []string{AppDB, BillingDB}})
		if err != nil || res.Errors != 0 || res.Databases[AppDB] == 0 || res.Databases[BillingDB] == 0 || res.Databases[AppDB]+res.Databases[BillingDB] != res.Committed {
			t.Fatalf("load: %+v, %v", res, err)
		}
		v, err := Verify(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Databases) != 2 || !v.OK() || v.LedgerEntries != int(res.Committed) {
			t.Fatalf("verify after a load into both: %+v", v)
		}
		for _, d := range v.Databases {
			if d.Lost != 0 || d.Duplicated != 0 || int64(d.LedgerEntries) != res.Databases[d.Database] || !strings.Contains(d.Target, "port="+strconv.Itoa(info.Blue.Port)) {
				t.Errorf("verify of %s: %+v", d.Database, d)
			}
		}
		entries, err := readLedger(info.LedgerPath(BillingDB))
		if err != nil || len(entries) == 0 {
			t.Fatalf("billing's ledger: %d entries, %v", len(entries), err)
		}
		billing := mustConnect(t, ctx, tcpConninfo(info.Blue.Port, BillingDB, AdminRole, info.Pgpass), pgx.QueryExecModeExec)
		if _, err := billing.Exec(ctx, "DELETE FROM public.ledger WHERE id = $1", entries[0].id); err != nil {
			t.Fatal(err)
		}
		v, err = Verify(ctx, dir)
		if err != nil || v.Lost != 1 || v.Databases[0].Lost != 0 || v.Databases[1].Database != BillingDB || v.Databases[1].Lost != 1 {
			t.Fatalf("after deleting one of billing's acknowledged rows: %+v, %v", v, err)
		}
	})
}
