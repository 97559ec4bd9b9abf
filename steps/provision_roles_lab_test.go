package steps

import (
	"context"
	"testing"
)

// TestRolesAndDatabasesComeAlong: with the copy strategy, green gets
// blue's roles (a new one with its stored password and membership, role
// settings) and its databases as blue has them: billing made with its
// settings, its roles' settings in it and its privileges.
func TestRolesAndDatabasesComeAlong(t *testing.T) {
	le, _ := startLab(t, "copy")
	ctx := context.Background()
	for _, q := range []string{
		"CREATE ROLE auditor LOGIN PASSWORD 'audit-pw' CONNECTION LIMIT 7",
		"GRANT app TO auditor",
		"ALTER ROLE auditor SET work_mem = '8MB'",
		`ALTER DATABASE billing SET search_path TO "$user", public`,
		"ALTER ROLE app IN DATABASE billing SET statement_timeout = '5s'",
		"REVOKE CONNECT ON DATABASE billing FROM PUBLIC",
		"GRANT CONNECT ON DATABASE billing TO app, auditor",
	} {
		if _, err := le.Blue.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := le.Runner.Through(ctx, "copy-schema", RunParams{Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		// The role, its attributes, settings, membership and stored password.
		"SELECT rolcanlogin::text || ' ' || rolconnlimit || ' ' || array_to_string(coalesce((SELECT setconfig FROM pg_db_role_setting WHERE setrole = r.oid AND setdatabase = 0), '{}'), ',') FROM pg_authid r WHERE rolname = 'auditor'",
		"SELECT md5(rolpassword) FROM pg_authid WHERE rolname = 'auditor'",
		"SELECT string_agg(g.rolname, ',') FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = 'auditor'",
		// The database, its settings, its role's settings in it, its privileges.
		"SELECT pg_get_userbyid(datdba) || ' ' || pg_encoding_to_char(encoding) || ' ' || datcollate FROM pg_database WHERE datname = 'billing'",
		"SELECT array_to_string(setconfig, ';') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'billing' AND s.setrole = 0",
		"SELECT array_to_string(setconfig, ';') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'billing' AND s.setrole = 'app'::regrole",
		"SELECT has_database_privilege('auditor', 'billing', 'CONNECT')::text || ' ' || has_database_privilege('pgbg_repl', 'billing', 'CONNECT')::text",
	} {
		blue, green := queryOne[string](t, le.Blue, q), queryOne[string](t, le.Green, q)
		if blue != green {
			t.Errorf("%s\n  blue  %q\n  green %q", q, blue, green)
		}
	}
	// The application's roles are made NOLOGIN: green takes no writes yet.
	if got := queryOne[bool](t, le.Green, "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'auditor'"); !got {
		t.Error("auditor, not an application role, cannot log in on green")
	}
	res, err := createDatabases().CheckAll(ctx, le.Runner.Env("create-databases"))
	if err != nil || !res.Done {
		t.Errorf("create-databases' check after the run: %+v %v", res, err)
	}
	t.Logf("create-databases: %s", res.Detail)
}
