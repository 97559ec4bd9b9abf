package steps

import (
	"os"
	"testing"
)

// minimalConfig is the configuration package's smallest valid configuration.
var minimalConfig = func() string {
	b, err := os.ReadFile("config/testdata/minimal.yaml")
	if err != nil {
		panic(err)
	}
	return "\n" + string(b)
}()

func TestTableIdent(t *testing.T) {
	if got := tableIdent(`public."OrderItems"`); got != `"public"."OrderItems"` {
		t.Errorf("tableIdent = %s", got)
	}
}
