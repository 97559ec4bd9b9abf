package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestAWSConfigValidation: each problem of the AWS section is one line
// naming its key.
func TestAWSConfigValidation(t *testing.T) {
	aurora := strings.Replace(minimalConfig, "strategy: copy", "strategy: aurora-clone", 1) +
		"aws:\n  blue_cluster: b\n  green_cluster: g\n  engine_version: \"17.5\"\n"
	cases := []struct {
		name, yaml string
		want       string
	}{
		{"green is blue", strings.Replace(aurora, "green_cluster: g", "green_cluster: b", 1), `config: aws.green_cluster "b" is blue's cluster`},
		{"reader without id", aurora + "  readers:\n    - class: db.r6g.large\n", "config: aws.readers[0].id is missing"},
		{"reader twice", aurora + "  readers:\n    - id: r1\n    - id: r1\n", `config: aws.readers[1].id "r1" is used twice`},
		{"reader is the writer", aurora + "  readers:\n    - id: g-writer\n", `config: aws.readers[0].id "g-writer" is green's writer`},
		{"readers outside aurora", minimalConfig + "aws:\n  readers:\n    - id: r1\n", "config: aws.readers: only the aurora-clone strategy"},
		{"delete blue self-managed", minimalConfig + "aws:\n  delete_blue: true\n", "config: aws.delete_blue: only the AWS strategies"},
		{"secret without source", minimalConfig + "aws:\n  switch:\n    secret_id: app/db\n", "config: aws.switch.secret_id needs aws.switch.secret_value_from"},
		{"source without secret", minimalConfig + "aws:\n  switch:\n    secret_value_from: GREEN\n", "config: aws.switch.secret_value_from is set but aws.switch.secret_id"},
		{"value in the file", minimalConfig + "aws:\n  switch:\n    secret_id: app/db\n    secret_value_from: '{\"password\": \"x\"}'\n", "config: aws.switch.secret_value_from"},
		{"ssm value alone", minimalConfig + "aws:\n  switch:\n    ssm_value: h\n", "config: aws.switch.ssm_value is set but aws.switch.ssm_parameter is not"},
		{"delete the switched one", minimalConfig + "aws:\n  switch:\n    ssm_parameter: /a\n    ssm_delete: [/a]\n", `config: aws.switch.ssm_delete[0] "/a"`},
		{"zone without record", minimalConfig + "aws:\n  switch:\n    route53:\n      hosted_zone_id: Z1\n", "config: aws.switch.route53 needs both hosted_zone_id and record"},
		{"negative ttl", minimalConfig + "aws:\n  switch:\n    route53:\n      hosted_zone_id: Z1\n      record: db.x\n      ttl: -5\n", "config: aws.switch.route53.ttl -5"},
		{"bad poll", minimalConfig + "aws:\n  poll_interval: often\n", `"often" is not a duration`},
		{"unknown key", minimalConfig + "aws:\n  switch:\n    secret: x\n", `unknown key "aws.switch.secret"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want a Error, got %v", err)
			}
			found := false
			for _, p := range ce.Problems {
				if strings.Contains(p, "\n") {
					t.Errorf("a problem on two lines: %q", p)
				}
				found = found || strings.Contains(p, tc.want)
			}
			if !found {
				t.Errorf("problems %q lack %q", ce.Problems, tc.want)
			}
		})
	}
}

// TestAWSConfigDerived: the identifiers the steps use when the file leaves
// them out, and which configurations need an AWS client.
func TestAWSConfigDerived(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(minimalConfig, "strategy: copy", "strategy: rds-snapshot", 1) +
		"aws:\n  blue_instance: b1\n  green_instance: g1\n  engine_version: \"17.5\"\n  deletion_protection: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.SnapshotID() != "g1-from-blue" || c.FinalSnapshotID() != "b1-final-pgbg" || c.AWS.DeletionProtectionOn() ||
		c.AWS.PollInterval.Duration != 15*time.Second || !c.NeedsAWS() {
		t.Errorf("derived: snapshot %s final %s protection %v poll %s needs %v", c.SnapshotID(), c.FinalSnapshotID(), c.AWS.DeletionProtectionOn(), c.AWS.PollInterval, c.NeedsAWS())
	}
	copyCfg, _ := Parse([]byte(minimalConfig))
	if copyCfg.NeedsAWS() || !copyCfg.AWS.DeletionProtectionOn() {
		t.Error("a copy run without AWS settings needs no AWS client; the clone's protection defaults on")
	}
	a, _ := Parse([]byte(strings.Replace(minimalConfig, "strategy: copy", "strategy: aurora-clone", 1) +
		"aws:\n  blue_cluster: b\n  green_cluster: g\n  engine_version: \"17.5\"\n"))
	if a.GreenWriterID() != "g-writer" || a.FinalSnapshotID() != "b-final-pgbg" {
		t.Errorf("aurora: writer %s final %s", a.GreenWriterID(), a.FinalSnapshotID())
	}
}
