package steps

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

var update = flag.Bool("update", false, "rewrite golden files")

// planConfig is a configuration of each strategy, as a team would write it.
func planConfig(t *testing.T, strategy string) *config.Config {
	t.Helper()
	y := minimalConfig + `
publications:
  - name: pgbg_all
  - name: pgbg_orders
    tables: [public.orders, public."OrderItems"]
schemas: [public, inventory]
app_roles: [app, "Reporting"]
clone:
  blue_bindir: /usr/lib/postgresql/15/bin
  green_bindir: /opt/pg17/bin
  data_dir: /srv/green
  port: 5434
aws:
  region: eu-west-1
  blue_cluster: orders-blue
  blue_instance: orders-blue-1
  blue_parameter_group: orders-pg15
  green_cluster: orders-green
  green_instance: orders-green-1
  engine_version: "17.5"
  cluster_parameter_group: orders-pg17
  instance_parameter_group: orders-pg17-instance
  subnet_group: private
  security_groups: [sg-0a1b2c]
  snapshot: orders-blue-pre-upgrade
`
	y = strings.Replace(y, "strategy: copy", "strategy: "+strategy, 1)
	if strategy == "copy" {
		// Its many small tables in one snapshot, as preflight advises.
		y = strings.Replace(y, "  - name: pgbg_all\n", "  - name: pgbg_all\n    copy: snapshot\n", 1)
	}
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./steps -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; if the change is intended, run with -update and review the diff.\n--- got ---\n%s", path, got)
	}
}

func TestPlanGolden(t *testing.T) {
	for _, strategy := range config.StrategyNames {
		for _, format := range []string{"text", "markdown"} {
			t.Run(strategy+"-"+format, func(t *testing.T) {
				var buf bytes.Buffer
				if err := WritePlan(&buf, PlanParams{Config: planConfig(t, strategy), Format: format}); err != nil {
					t.Fatal(err)
				}
				ext := map[string]string{"text": "txt", "markdown": "md"}[format]
				golden(t, "plan-"+strategy+"."+ext, buf.Bytes())
			})
		}
	}
}

func TestPlanRendersRecordedValues(t *testing.T) {
	st := &state.State{Values: map[string]state.Value{
		"slot_lsn":        {Key: "slot_lsn", Value: "0/1A2B3C4", RecordedBy: "create-slots", RecordedAt: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)},
		"green_start_lsn": {Key: "green_start_lsn", Value: "0/1A2B400", RecordedBy: "green-start-lsn", RecordedAt: time.Date(2026, 11, 21, 12, 5, 0, 0, time.UTC)},
	}}
	var buf bytes.Buffer
	if err := WritePlan(&buf, PlanParams{Config: planConfig(t, "clone"), State: st, Format: "markdown"}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"| slot_lsn | `0/1A2B3C4` | create-slots |", "'0/1A2B400'::pg_lsn)", "| extensions_upgraded | _pending_ |"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	if strings.Contains(out, "<green_start_lsn>") {
		t.Error("a recorded value still shows as a placeholder")
	}
}

func TestPlanNeverShowsPassword(t *testing.T) {
	c := planConfig(t, "copy")
	c.Replication.BlueConninfo = "host=10.0.0.5 port=5432 dbname=app password=hunter2"
	var buf bytes.Buffer
	if err := WritePlan(&buf, PlanParams{Config: c, Format: "text"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "hunter2") {
		t.Fatal("a password reached the plan")
	}
}
