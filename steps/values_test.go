package steps

import (
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// TestEveryValueHasAType: each value a step of any strategy needs or
// records has a type, so `value set` and the screen can check it.
func TestEveryValueHasAType(t *testing.T) {
	for _, name := range config.StrategyNames {
		for _, s := range Strategy(name) {
			for _, k := range append(append([]string{}, s.Needs...), s.Records...) {
				if _, ok := ValueTypeOf(k); !ok {
					t.Errorf("%s: value %s has no type", s.ID, k)
				}
			}
		}
	}
	if _, ok := ValueTypeOf("slot_lsn.pgbg_all"); !ok {
		t.Error("slot_lsn.<slot> has no type")
	}
	if _, ok := ValueTypeOf("slot_lsn."); ok {
		t.Error("slot_lsn. with no slot has a type")
	}
}

func TestValidateValue(t *testing.T) {
	for _, c := range []struct {
		key, value string
		ok         bool
	}{
		{"green_start_lsn", "0/3000060", true},
		{"green_start_lsn", "zz/notanlsn", false},
		{"green_start_lsn", " 0/3000060", false},
		{"slot_lsn.pgbg_orders", "16/B374D848", true},
		{"slot_lsn.pgbg_orders", "16/B374D848/1", false},
		{"green_redo_done", "0/3000148 in /srv/green/log/postgresql.log", true},
		{"green_redo_done", "0/3000148", false},
		{"green_endpoint", "orders-green.cluster-abc.eu-west-1.rds.amazonaws.com", true},
		{"green_endpoint", "127.0.0.1:5433", true},
		{"green_endpoint", "host:port", false},
		{"green_endpoint", "not a host", false},
		{"snapshot_id", "orders-blue-pre-upgrade", true},
		{"snapshot_id", "arn:aws:rds:eu-west-1:123456789012:snapshot:orders", true},
		{"snapshot_id", "1-starts-with-a-digit", false},
		{"snapshot_id", "double--hyphen", false},
		{"restore_time", "2025-06-01T12:00:00Z", true},
		{"restore_time", "2025-06-01 12:00", false},
		{"replica_identity_full_tables", `public.events_log, public."OrderItems"`, true},
		{"replica_identity_full_tables", "none", true},
		{"replica_identity_full_tables", `public."unbalanced`, false},
		{VerifyChecksumsKey, "on", true},
		{VerifyChecksumsKey, "yes", false},
		{"blue_version", "15.14", true},
		{"blue_version", "fifteen", false},
		{"no_such_key", "x", false},
	} {
		err := ValidateValue(c.key, c.value)
		if (err == nil) != c.ok {
			t.Errorf("%s = %q: %v, want ok %t", c.key, c.value, err, c.ok)
		}
		if err != nil && (!strings.HasPrefix(err.Error(), "value "+c.key+": ") || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%s = %q: %q is not one line naming the key", c.key, c.value, err)
		}
	}
}
