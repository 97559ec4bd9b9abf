package steps

import (
	"context"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest/awslab"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/pg/lab"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// The AWS strategies on a lab: the stand-in of aws/awstest with the lab's
// real servers behind it (awslab): an Aurora clone or an RDS restore is a
// real clone of blue made with pg_basebackup and upgraded with pg_upgrade,
// on the port green.conninfo names, so every step, the SQL ones included,
// runs for real.

// awsLabEnv is a clone lab run as an AWS strategy.
type awsLabEnv struct {
	*labEnv
	srv *awstest.Server
	log *apiLog
}

// awsLabParams tune startAWSLab.
type awsLabParams struct {
	// NoStartFunction makes the clone an Aurora PostgreSQL 12.9 one, with no
	// aurora_volume_logical_start_lsn().
	NoStartFunction bool
	// Poll is the client's poll interval (default 1 ms).
	Poll time.Duration
}

// startAWSLab brings a clone lab up and configures strategy (aurora-clone
// or rds-snapshot) on the stand-in: blue (15) in the model, green's
// parameter groups for 17.5 with rds.logical_replication = 1, the role
// rds_replication on blue (RDS has it built in), and a runner whose AWS
// client journals into the run's journal and into log.
func startAWSLab(t *testing.T, strategy string, p awsLabParams) *awsLabEnv {
	t.Helper()
	le, _ := startLab(t, "clone")
	srv := awstest.New(t)
	c := le.Config
	c.Strategy = strategy
	ap := awslab.Params{Clone: le.Runner.Env("").cloneParams(), Relics: map[string][]string{lab.AppDB: {"pgbg_all"}, lab.BillingDB: {"pgbg_all_billing"}}, NoStartFunction: p.NoStartFunction}
	if strategy == "aurora-clone" {
		seedAuroraBlue(srv)
		srv.Backend = awslab.Aurora(ap)
		c.AWS = config.AWS{Region: awstest.Region, BlueCluster: "blue", GreenCluster: "green", EngineVersion: "17.5",
			ClusterParameterGroup: "green-cluster-pg17", InstanceParameterGroup: "green-pg17"}
	} else {
		seedRDSBlue(srv)
		srv.Backend = awslab.RDS(ap)
		rdsConfig(c)
	}
	if probs := c.Validate(); len(probs) > 0 {
		t.Fatalf("config: %v", probs)
	}
	if _, err := le.Blue.Exec(context.Background(), "CREATE ROLE rds_replication"); err != nil {
		t.Fatal(err)
	}
	poll := p.Poll
	if poll == 0 {
		poll = time.Millisecond
	}
	log := &apiLog{}
	r := le.Runner
	r.Steps = Strategy(strategy)
	r.AWS = newAWSClientJournal(t, srv, log, poll, r.Journal)
	return &awsLabEnv{labEnv: le, srv: srv, log: log}
}

// parseLSN canonicalises an LSN's text.
func parseLSN(s string) (string, error) {
	l, err := pg.ParseLSN(s)
	return l.String(), err
}
