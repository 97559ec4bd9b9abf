package steps

import (
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// Preflight's words on what replication does not carry (preflight calls
// them with what it read on blue).
func TestPreflightWordsOnWhatIsNotReplicated(t *testing.T) {
	sessions := []pg.Rel{{Schema: "public", Name: "sessions"}}
	for _, c := range []struct {
		choice string
		fail   bool
		says   string
	}{
		{config.DefaultUnloggedTables, true, "set unlogged_tables in the configuration: copy"},
		{config.UnloggedCopy, false, "copy-unlogged copies their rows right before the cutover"},
		{config.UnloggedSkip, false, "unlogged_tables: skip"},
	} {
		fail, line := unloggedAdvice(&config.Config{UnloggedTables: c.choice}, sessions)
		if fail != c.fail || !strings.Contains(line, c.says) || !strings.Contains(line, `"public"."sessions"`) {
			t.Errorf("unlogged_tables %q: fail %t, %q", c.choice, fail, line)
		}
	}
	if fail, line := unloggedAdvice(&config.Config{}, nil); fail || line != "" {
		t.Errorf("no unlogged table: fail %t, %q", fail, line)
	}
	if s := matviewsAdvice([]pg.Rel{{Schema: "public", Name: "account_tiers"}}); !strings.Contains(s, "refresh-matviews refreshes them on green") {
		t.Errorf("matviews: %q", s)
	}
	super := pg.Privileges{User: "postgres", Superuser: true}
	if warn, line := largeObjectsAdvice(3, super, nil); warn || !strings.Contains(line, "3 large objects") {
		t.Errorf("large objects as a superuser: warn %t, %q", warn, line)
	}
	if warn, line := largeObjectsAdvice(3, super, &pg.Privileges{User: "admin"}); !warn || !strings.Contains(line, "on green, user admin is not a superuser") {
		t.Errorf("large objects, green not a superuser: warn %t, %q", warn, line)
	}
	if warn, line := largeObjectsAdvice(0, pg.Privileges{}, nil); warn || line != "" {
		t.Errorf("no large object: warn %t, %q", warn, line)
	}
}

// The values the three steps record are each database's own, and typed.
func TestNotReplicatedValues(t *testing.T) {
	for k, v := range map[string]string{
		MatviewsRefreshedKey:               "2026-12-07T17:26:12.687Z",
		UnloggedCopiedKey + "@billing":     "2026-12-07T17:26:12Z",
		LargeObjectsDigestKey:              "count=1 bytes=307200 shape=0123456789abcdef0123456789abcdef content=- writes=12",
		LargeObjectsDigestKey + "@billing": "count=0 bytes=0 shape=0123456789abcdef0123456789abcdef content=0123456789abcdef0123456789abcdef writes=-1",
	} {
		if err := ValidateValue(k, v); err != nil {
			t.Errorf("%s = %s: %v", k, v, err)
		}
	}
	if err := ValidateValue(LargeObjectsDigestKey, "3 objects"); err == nil {
		t.Errorf("a digest in another form is taken")
	}
	e := &Env{Config: &config.Config{Blue: config.Conn{Conninfo: "host=b dbname=app"}}, DB: "billing",
		Values: map[string]string{MatviewsRefreshedKey: "2026-12-07T17:26:12Z"}}
	if _, ok := e.ownValue(MatviewsRefreshedKey); ok {
		t.Errorf("billing reads app's %s as its own", MatviewsRefreshedKey)
	}
}
