package steps

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// TestAWSPlanGoldenFull: the markdown plan of each AWS strategy with every
// optional AWS setting in use (readers, the traffic switch's three parts,
// deletion of blue), and blue's defaults left to be read at run time.
func TestAWSPlanGoldenFull(t *testing.T) {
	extra := map[string]string{
		"aurora-clone": `  readers:
    - id: orders-green-reader-1
    - id: orders-green-reader-2
      class: db.r6g.xlarge
  delete_blue: true
  final_snapshot: orders-blue-final
`,
		"rds-snapshot": `  multi_az: true
  iam_auth: true
`,
	}
	for _, strategy := range []string{"aurora-clone", "rds-snapshot"} {
		t.Run(strategy, func(t *testing.T) {
			c := planConfig(t, strategy)
			y := strings.Replace(minimalConfig, "strategy: copy", "strategy: "+strategy, 1) + `aws:
  region: eu-west-1
  blue_cluster: orders-blue
  blue_instance: orders-blue-1
  green_cluster: orders-green
  green_instance: orders-green-1
  engine_version: "17.5"
  cluster_parameter_group: orders-pg17
  instance_parameter_group: orders-pg17-instance
  switch:
    secret_id: prod/DatabaseSecrets
    secret_value_from: arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-green-AbCdEf
    ssm_parameter: /orders/prod/databaseHost
    ssm_delete: [/orders/prod/databaseProxyEndpoint]
    route53:
      hosted_zone_id: Z0123456789
      record: db.orders.internal
      ttl: 30
` + extra[strategy]
			full, err := config.Parse([]byte(y))
			if err != nil {
				t.Fatal(err)
			}
			full.Publications, full.Schemas, full.AppRoles = c.Publications, c.Schemas, c.AppRoles
			var buf bytes.Buffer
			if err := WritePlan(&buf, PlanParams{Config: full, Format: "markdown"}); err != nil {
				t.Fatal(err)
			}
			golden(t, "plan-"+strategy+"-aws-full.md", buf.Bytes())
		})
	}
}
