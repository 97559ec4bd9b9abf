package pg

import (
	"strings"
	"testing"
)

// TestSeedProblems: each way a seed can be wrong against blue's slots is
// reported (trap 5), and a sound seed passes.
func TestSeedProblems(t *testing.T) {
	l := func(s string) LSN {
		v, err := ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ok := SlotInfo{Name: "s", ConfirmedFlushLSN: "0/1000", WALStatus: "reserved"}
	created := map[string]LSN{"s": l("0/1000")}
	for _, c := range []struct {
		name    string
		seed    string
		slot    SlotInfo
		created map[string]LSN
		want    string
	}{
		{"sound", "0/2001", ok, created, ""},
		{"seed equal to the slot LSN", "0/1000", ok, created, "the clone predates the slot"},
		{"seed below the slot LSN", "0/FFF", ok, created, "the clone predates the slot"},
		{"slot active", "0/2001", SlotInfo{Name: "s", Active: true, ConfirmedFlushLSN: "0/1000"}, created, "is active"},
		{"slot lost", "0/2001", SlotInfo{Name: "s", WALStatus: "lost", ConfirmedFlushLSN: "0/1000"}, created, "is lost"},
		{"confirmed beyond the seed", "0/2001", SlotInfo{Name: "s", ConfirmedFlushLSN: "0/3000"}, created, "beyond the seed"},
		{"creation not recorded", "0/2001", ok, map[string]LSN{}, "not recorded"},
		{"slot missing", "0/2001", SlotInfo{Name: "other"}, created, "does not exist"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := SeedProblems(l(c.seed), []string{"s"}, []SlotInfo{c.slot}, c.created)
			if c.want == "" {
				if len(got) != 0 {
					t.Fatalf("sound seed refused: %v", got)
				}
				return
			}
			if !strings.Contains(strings.Join(got, "; "), c.want) {
				t.Fatalf("problems %v do not say %q", got, c.want)
			}
		})
	}
}
