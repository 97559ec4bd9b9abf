package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// green-start-lsn for the AWS strategies: aurora_volume_logical_start_lsn()
// on an Aurora clone, the first `redo done at` of a restored RDS instance.

func greenStartLSNAWS() *Step {
	return &Step{ID: "green-start-lsn", Phase: PhaseProvision, Target: Green, Title: "Record green's start LSN",
		Why:    "The exact point of blue's WAL green already holds: the subscription starts there. It must be greater than every slot LSN, or rows are lost.",
		Source: "000, 001 §7, 002", Needs: []string{"slot_lsn"}, Records: []string{"green_start_lsn"},
		Plan:  offline(planGreenStartLSN),
		Check: checkAWSGreenStartLSN,
		Run:   runAWSGreenStartLSN,
	}
}

// auroraStartLSNQuery reads the clone's start point (Aurora PostgreSQL
// 12.10 and later); the text form parses as any pg_lsn.
const auroraStartLSNQuery = "SELECT aurora_volume_logical_start_lsn()::text"

func checkAWSGreenStartLSN(ctx context.Context, e *Env) (CheckResult, error) {
	rec, ok := e.Value("green_start_lsn")
	if !ok {
		return CheckResult{Detail: "green_start_lsn not recorded"}, nil
	}
	seed, err := pg.ParseLSN(rec)
	if err != nil {
		return CheckResult{}, fmt.Errorf("recorded green_start_lsn: %w", err)
	}
	return e.checkRecordedSeed(ctx, seed)
}

func runAWSGreenStartLSN(ctx context.Context, e *Env) error {
	var seed pg.LSN
	var evidence string
	var err error
	if e.Config.Strategy == "aurora-clone" {
		seed, evidence, err = e.auroraSeed(ctx)
	} else {
		seed, evidence, err = e.redoDoneSeed(ctx)
	}
	if err != nil {
		return err
	}
	problems, err := e.seedProblems(ctx, seed)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		again := "delete green's cluster and run clone-cluster again"
		if e.Config.Strategy == "rds-snapshot" {
			again = "delete green and its snapshot and run snapshot-blue again"
		}
		return e.refuse("seed %s: %s; %s (after create-slots; nothing may consume the slots until green subscribes)", seed, strings.Join(problems, "; "), again)
	}
	e.Logf("%s: seed %s; slot_lsn %s", evidence, seed, e.V("slot_lsn"))
	return e.Record("green_start_lsn", seed.String())
}

// auroraSeed reads aurora_volume_logical_start_lsn() on green, refused once
// green's major differs from blue's: the upgrade reset the WAL positions and
// the function no longer says where the clone started.
func (e *Env) auroraSeed(ctx context.Context) (pg.LSN, string, error) {
	if err := e.needBoth(); err != nil {
		return 0, "", err
	}
	qctx, cancel := e.bounded(ctx)
	defer cancel()
	blue, err := poolMajor(qctx, e.Blue)
	if err != nil {
		return 0, "", fmt.Errorf("read blue's version: %w", err)
	}
	green, err := poolMajor(qctx, e.Green)
	if err != nil {
		return 0, "", fmt.Errorf("read green's version: %w", err)
	}
	if blue != green {
		return 0, "", e.refuse("green runs PostgreSQL %d and blue %d: green was upgraded, which resets WAL positions, so aurora_volume_logical_start_lsn() no longer tells where the clone started; the seed had to be read before upgrade-green: delete green's cluster and clone again", green, blue)
	}
	var text string
	if err := e.Green.QueryRow(qctx, auroraStartLSNQuery).Scan(&text); err != nil {
		return 0, "", fmt.Errorf("read aurora_volume_logical_start_lsn() on green (Aurora PostgreSQL 12.10 or later; green.conninfo must point at the clone): %w", err)
	}
	seed, err := pg.ParseLSN(text)
	if err != nil {
		return 0, "", fmt.Errorf("aurora_volume_logical_start_lsn() on green: %w", err)
	}
	return seed, fmt.Sprintf("aurora_volume_logical_start_lsn() = %s on green (PostgreSQL %d, before the upgrade)", text, green), nil
}

func poolMajor(ctx context.Context, p *pgxpool.Pool) (int, error) {
	var v int
	err := p.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v)
	return v / 10000, err
}

// redoDoneSeed reads green's RDS logs written since the restore: the first
// `redo done at X/Y` is where recovery of the snapshot ended; the seed is
// X/Y + 1 byte (RUNBOOK "The seed LSN, exactly").
func (e *Env) redoDoneSeed(ctx context.Context) (pg.LSN, string, error) {
	c, err := e.needAWS()
	if err != nil {
		return 0, "", err
	}
	var since time.Time
	if v, ok := e.Value("restore_time"); ok {
		if since, err = time.Parse(time.RFC3339, v); err != nil {
			return 0, "", fmt.Errorf("recorded restore_time %q: %w", v, err)
		}
	} else {
		// Without the restore's time, the snapshot's is a safe lower bound.
		sn, err := c.DescribeSnapshot(ctx, aws.DescribeSnapshotParams{SnapshotID: e.V("snapshot_id")})
		if err != nil {
			return 0, "", err
		}
		since = sn.Created
	}
	green := e.Config.AWS.GreenInstance
	res, err := c.FindRedoDone(ctx, aws.FindRedoDoneParams{InstanceID: green, Since: since})
	if err != nil {
		return 0, "", err
	}
	if !res.Found {
		return 0, "", fmt.Errorf("no `redo done at` in the %d log files of %s written since %s: is log export on and the restore finished? (aws rds describe-db-log-files --db-instance-identifier %s)", res.FilesRead, green, since.Format(time.RFC3339), green)
	}
	seed := res.SeedLSN
	if err := e.Record("green_redo_done", res.LSN.String()+" in "+res.File); err != nil {
		return 0, "", err
	}
	return seed, fmt.Sprintf("first `redo done at %s` in %s of %s (%d files read)", res.LSN, res.File, green, res.FilesRead), nil
}

// awsSeedPlan is green-start-lsn's first line for the AWS strategies.
func awsSeedPlan(e *Env) []Action {
	if e.Config.Strategy == "aurora-clone" {
		return []Action{
			sql(BlueGreen, "SELECT current_setting('server_version_num')  -- refused unless green's major is blue's: after upgrade-green the function no longer tells where the clone started"),
			sql(Green, "%s  -- the clone's start point, read before the upgrade", auroraStartLSNQuery),
		}
	}
	g := e.Config.AWS.GreenInstance
	return []Action{
		api("rds DescribeDBLogFiles DBInstanceIdentifier=%s FileLastWritten=<restore_time %s>  -- every page, oldest first", g, e.V("restore_time")),
		api("rds DownloadDBLogFilePortion DBInstanceIdentifier=%s LogFileName=<each> Marker=0, then each Marker while AdditionalDataPending  -- stops at the first `redo done at X/Y`", g),
		note(AWSTarget, "seed = X/Y + 1 byte, computed in Go; recorded: green_redo_done = %s", e.V("green_redo_done")),
	}
}
