package steps

import (
	"context"
	"strings"
	"testing"
)

// TestRolePasswordFoundBeforeThePause: an application role whose stored
// password on green is not blue's (set again by hand there, with another
// salt) is found by the cutover's rehearsal, named, before anything is
// paused; copy-roles, found not done by its check, makes it blue's, and
// the rehearsal passes.
func TestRolePasswordFoundBeforeThePause(t *testing.T) {
	le, _ := startLab(t, "copy")
	ctx := context.Background()
	if _, err := le.Blue.Exec(ctx, "CREATE ROLE app2 LOGIN PASSWORD 'blue-password'"); err != nil {
		t.Fatal(err)
	}
	le.Config.AppRoles = append(le.Config.AppRoles, "app2")
	if err := le.Runner.Through(ctx, "copy-unlogged", RunParams{Confirmed: true}); err != nil {
		t.Fatal(err)
	}
	// copy-roles made app2 on green with blue's stored password: equal.
	var same bool
	if err := le.Green.QueryRow(ctx, "SELECT rolpassword = $1 FROM pg_authid WHERE rolname = 'app2'",
		queryOne[string](t, le.Blue, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app2'")).Scan(&same); err != nil || !same {
		t.Fatalf("copy-roles did not give app2 blue's stored password on green: %v %v", same, err)
	}
	// The same password set again on green: another salt, another verifier.
	if _, err := le.Green.Exec(ctx, "ALTER ROLE app2 PASSWORD 'blue-password'"); err != nil {
		t.Fatal(err)
	}
	_, err := le.Runner.Run(ctx, "cutover", RunParams{Check: true})
	if err == nil || !IsRefused(err) || !strings.Contains(err.Error(), "app2 has another stored password on green") {
		t.Fatalf("cutover --check with app2's password set again on green: %v, want a refusal naming app2", err)
	}
	if a := le.Store.Snapshot().Attempts; len(a) != 0 {
		t.Fatalf("the refusal started an attempt: %+v", a)
	}
	res, err := copyRoles().CheckAll(ctx, le.Runner.Env("copy-roles"))
	if err != nil || res.Done || !strings.Contains(res.Detail, "app2") {
		t.Fatalf("copy-roles' check with app2 differing: %+v %v, want not done, naming app2", res, err)
	}
	// Recorded done, copy-roles asks the servers again and runs.
	if out, err := le.Runner.Run(ctx, "copy-roles", RunParams{}); err != nil || out != OutcomeRan {
		t.Fatalf("copy-roles once app2 differs: %s %v, want it run again", out, err)
	}
	if out, err := le.Runner.Run(ctx, "cutover", RunParams{Check: true}); err != nil || out != OutcomeChecked {
		t.Fatalf("cutover --check once copy-roles ran again: %s %v", out, err)
	}
}
