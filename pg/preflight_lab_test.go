package pg

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestPreflightReads runs preflight's reads on the lab and checks what
// they find: a transaction left open, a sequence close to its integer
// column's maximum, ownership, the replication role and what it lacks,
// green's extensions; and that only errors about connecting are
// classified as such (the hint about pg_hba.conf and the password is for
// them alone).
func TestPreflightReads(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	p := PreflightParams{Schemas: []string{"public", "inventory"}, Role: "pgbg_repl", LongTransaction: 0, NearMax: 0.8}

	// An open transaction, and a sequence whose integer column is nearly full.
	tx, err := l.blue.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT txid_current()"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, l.blue, "SELECT setval('public.accounts_id_seq', 2000000000)")
	mustExec(t, l.blue, "REVOKE SELECT ON inventory.items FROM pgbg_repl")
	time.Sleep(10 * time.Millisecond) // the transaction's age must exceed 0

	b, err := ReadBlue(ctx, l.blue, p)
	if err != nil {
		t.Fatal(err)
	}
	if b.Settings.VersionNum/10000 != 15 || b.Privileges.User != "postgres" || !b.Privileges.Superuser || b.Privileges.Database != "app" {
		t.Errorf("settings/privileges: %+v %+v", b.Settings, b.Privileges)
	}
	if len(b.LongTransactions) == 0 || b.LongTransactions[0].State != "idle in transaction" {
		t.Errorf("open transaction not listed: %+v", b.LongTransactions)
	}
	if len(b.NearMax) != 1 || b.NearMax[0].Name != "accounts_id_seq" || b.NearMax[0].Max != 2147483647 || b.NearMax[0].Used < 0.9 {
		t.Errorf("sequences near their maximum: %+v", b.NearMax)
	}
	if !b.Role.Exists || !b.Role.Replication || len(b.MissingGrants) != 1 || !strings.Contains(b.MissingGrants[0], "inventory") {
		t.Errorf("role %+v, missing grants %q", b.Role, b.MissingGrants)
	}
	found := map[string]TableFact{}
	for _, f := range b.Tables {
		found[f.Rel.String()] = f
	}
	if f := found[`"public"."events_log"`]; !f.NeedsIdentity() || !f.Owned {
		t.Errorf("events_log: %+v", f)
	}
	if f := found[`"public"."measurements_2025"`]; !f.Partition || f.NeedsIdentity() {
		t.Errorf("a partition: %+v", f)
	}
	if b.Extensions["pg_trgm"] == "" {
		t.Errorf("blue's extensions: %v", b.Extensions)
	}

	g, err := ReadGreen(ctx, l.green, p, []string{"default"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Settings.VersionNum/10000 != 17 || g.Available["pg_trgm"] == "" {
		t.Errorf("green: %+v, pg_trgm available %q", g.Settings, g.Available["pg_trgm"])
	}
	if _, ok := g.Collations["default"]; !ok {
		t.Errorf("green's default collation not read: %v", g.Collations)
	}

	// What the plan lists is what ReadBlue runs: the same SQL, in order.
	reads := p.BlueReads(b.Settings.VersionNum)
	if len(reads) != 10 || reads[0].SQL != SettingsQuery || !strings.Contains(reads[len(reads)-1].SQL, "pg_database_collation_actual_version") {
		t.Errorf("BlueReads: %d statements", len(reads))
	}

	// Errors: about connecting, or not.
	wrong := TryLogin(ctx, strings.Replace(l.info.Blue.Conninfo, "user=postgres", "user=pgbg_repl", 1)+" password=wrong", time.Second)
	if !IsAuthError(wrong) || !IsConnectError(wrong) {
		t.Errorf("a wrong password: %v (auth %t, connect %t)", wrong, IsAuthError(wrong), IsConnectError(wrong))
	}
	if err := TryLogin(ctx, strings.Replace(l.info.Blue.Conninfo, "user=postgres", "user=pgbg_repl", 1)+" password="+l.password, time.Second); err != nil {
		t.Errorf("the configured password: %v", err)
	}
	refused := TryLogin(ctx, "host=127.0.0.1 port=1 dbname=app user=x connect_timeout=1", time.Second)
	if IsAuthError(refused) || !IsConnectError(refused) {
		t.Errorf("a closed port: %v", refused)
	}
	// CREATE SUBSCRIPTION that cannot reach its publisher: 08006, a connect error.
	_, subErr := l.green.Exec(ctx, "CREATE SUBSCRIPTION nowhere CONNECTION 'host=127.0.0.1 port=1 dbname=app connect_timeout=1' PUBLICATION p")
	if !IsConnectError(subErr) {
		t.Errorf("CREATE SUBSCRIPTION to a closed port: %v is not a connect error", subErr)
	}
	// A missing schema is not about connecting.
	_, schemaErr := l.green.Exec(ctx, `CREATE TABLE "Sales Dept".x (id int)`)
	if schemaErr == nil || IsConnectError(schemaErr) {
		t.Errorf("a missing schema: %v classified as a connect error", schemaErr)
	}
}
