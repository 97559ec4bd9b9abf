package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// green-start-lsn for the AWS strategies: aurora_volume_logical_start_lsn()
// on an Aurora clone, or the first `redo done at` of green's log files
// (+1 byte): a restored RDS instance's, and an Aurora clone's writer's on
// Aurora PostgreSQL 12.9 and older, which have no such function (runbook
// 000's get-start-lsn.sh greps the writer's logs for it).

func greenStartLSNAWS() *Step {
	return &Step{ID: "green-start-lsn", Phase: PhaseProvision, Target: Green, Title: "Record green's start LSN",
		Why:    "The exact point of blue's WAL green already holds: the subscription starts there. It must be greater than every slot LSN, or rows are lost.",
		Source: "000, 001 §7, 002", Needs: []string{"slot_lsn"}, Records: []string{"green_start_lsn"},
		// A wrong value (typed in the values panel) is read again from the
		// source; the origins are then advanced to it again.
		Reopens: []string{advanceOriginsID},
		Again:   againBeforeReplication,
		Plan:    planAWSGreenStartLSN,
		Check:   checkAWSGreenStartLSN,
		Run:     runAWSGreenStartLSN,
	}
}

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

// seedSource is where green's seed is read: Aurora's function, or the
// first `redo done at` in an instance's log files written since a time.
type seedSource struct {
	reads *awsReads
	// function is true when aurora_volume_logical_start_lsn() answers;
	// seed is its value (read for the run, and by a dry run).
	function bool
	seed     pg.LSN
	// logs: the instance whose log holds the line, and since when.
	instance string
	since    time.Time
	sinceWhy string
	// blueMajor, greenMajor are read on an Aurora clone (0 offline).
	blueMajor, greenMajor int
}

func (e *Env) seedSource(ctx context.Context) (*seedSource, error) {
	s := &seedSource{reads: e.awsReads()}
	a := e.Config.AWS
	if e.Config.Strategy == "aurora-clone" {
		if e.Blue != nil && e.Green != nil {
			qctx, cancel := e.bounded(ctx)
			defer cancel()
			blue, err := pg.ReadReplicationSettings(qctx, e.Blue)
			if err != nil {
				return nil, fmt.Errorf("read blue's version: %w", err)
			}
			green, err := pg.ReadReplicationSettings(qctx, e.Green)
			if err != nil {
				return nil, fmt.Errorf("read green's version: %w", err)
			}
			s.blueMajor, s.greenMajor = blue.VersionNum/10000, green.VersionNum/10000
			if s.blueMajor != s.greenMajor {
				return s, nil // refused by the run; no function read on an upgraded green
			}
			lsn, found, err := pg.AuroraStartLSN(qctx, e.Green)
			if err != nil {
				return nil, fmt.Errorf("on green (green.conninfo must point at the clone): %w", err)
			}
			if found {
				s.function, s.seed = true, lsn
				return s, nil
			}
		} else if e.Green == nil {
			s.function = true // offline: the plan shows the usual way, and the other
			return s, nil
		}
		cl, err := s.reads.cluster(ctx, a.GreenCluster, "the clone's creation time and writer, whose log holds its recovery")
		if err != nil {
			return nil, err
		}
		s.instance = or(cl.Writer(), e.Config.GreenWriterID())
		s.since, s.sinceWhy = cl.Created.Add(-time.Minute), "the clone's creation, less a minute"
		return s, nil
	}
	s.instance = a.GreenInstance
	if v, ok := e.Value("restore_time"); ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, fmt.Errorf("recorded restore_time %q: %w", v, err)
		}
		s.since, s.sinceWhy = t, "restore_time "+v
		return s, nil
	}
	if !s.reads.live() {
		s.sinceWhy = "restore_time, recorded by restore-green"
		return s, nil
	}
	// Without the restore's time, the snapshot's is a safe lower bound.
	sn, found, err := s.reads.findSnapshot(ctx, e.V("snapshot_id"), "restore_time is not recorded: the snapshot's time is the lower bound", true)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("neither restore_time nor snapshot %s: run restore-green first", e.V("snapshot_id"))
	}
	s.since, s.sinceWhy = sn.Created, "the snapshot's creation time"
	return s, nil
}

func runAWSGreenStartLSN(ctx context.Context, e *Env) error {
	src, err := e.seedSource(ctx)
	if err != nil {
		return err
	}
	var seed pg.LSN
	var evidence string
	switch {
	case src.blueMajor != src.greenMajor:
		return e.refuse("green runs PostgreSQL %d and blue %d: green was upgraded, which resets WAL positions, so aurora_volume_logical_start_lsn() no longer tells where the clone started; the seed had to be read before upgrade-green: delete green's cluster and clone again", src.greenMajor, src.blueMajor)
	case src.function:
		if err := e.needBoth(); err != nil {
			return err
		}
		seed, evidence = src.seed, fmt.Sprintf("aurora_volume_logical_start_lsn() = %s on green (PostgreSQL %d, before the upgrade)", src.seed, src.greenMajor)
	default:
		if seed, evidence, err = e.redoDoneSeed(ctx, src); err != nil {
			return err
		}
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

// redoDoneSeed reads green's log files written since the restore (or the
// clone): the first `redo done at X/Y` is where recovery ended; the seed is
// X/Y + 1 byte (RUNBOOK "The seed LSN, exactly").
func (e *Env) redoDoneSeed(ctx context.Context, src *seedSource) (pg.LSN, string, error) {
	c, err := e.needAWS()
	if err != nil {
		return 0, "", err
	}
	res, err := c.FindRedoDone(ctx, aws.FindRedoDoneParams{InstanceID: src.instance, Since: src.since})
	if err != nil {
		return 0, "", err
	}
	if !res.Found {
		return 0, "", fmt.Errorf("no `redo done at` in the %d log files of %s written since %s: is log export on and the restore finished? (aws rds describe-db-log-files --db-instance-identifier %s)", res.FilesRead, src.instance, src.since.Format(time.RFC3339), src.instance)
	}
	if err := e.Record("green_redo_done", res.LSN.String()+" in "+res.File); err != nil {
		return 0, "", err
	}
	return res.SeedLSN, fmt.Sprintf("first `redo done at %s` in %s of %s (%d files read)", res.LSN, res.File, src.instance, res.FilesRead), nil
}

func planAWSGreenStartLSN(ctx context.Context, e *Env) ([]Action, error) {
	src, err := e.seedSource(ctx)
	if err != nil {
		return nil, err
	}
	out, err := e.seedActions(ctx, src)
	if err != nil {
		return nil, err
	}
	return append(out,
		note(Blue, "each slot (read from pg_replication_slots): exists, inactive, not lost, confirmed_flush_lsn <= seed"),
		note(Green, "refused unless seed > every slot's creation LSN (slot_lsn = %s); recorded: green_start_lsn = %s", e.V("slot_lsn"), e.V("green_start_lsn"))), nil
}

// seedActions are the lines of how the seed is read.
func (e *Env) seedActions(ctx context.Context, src *seedSource) ([]Action, error) {
	live := e.Green != nil
	switch {
	case src.blueMajor != src.greenMajor:
		return []Action{note(BlueGreen, "REFUSED now: green runs PostgreSQL %d and blue %d; the function no longer tells where the clone started after upgrade-green", src.greenMajor, src.blueMajor)}, nil
	case src.function:
		out := []Action{
			note(BlueGreen, "refused unless green's major is blue's (read over SQL): after upgrade-green the function no longer tells where the clone started"),
			stmts(pg.AuroraStartLSNStmt("green", "the clone's start point, read before the upgrade"))[0],
		}
		if live {
			return append(out, note(Green, "it answers %s now", src.seed)), nil
		}
		return append(out, note(Green, "Aurora PostgreSQL 12.9 and older have no such function: then the first `redo done at X/Y` of the clone writer's log files, + 1 byte (runbook 000's get-start-lsn.sh)")), nil
	}
	out := append([]Action(nil), src.reads.acts...)
	if e.Config.Strategy == "aurora-clone" {
		out = append(out, note(Green, "green has no aurora_volume_logical_start_lsn() (Aurora PostgreSQL 12.9 and older): the seed is read from its writer's log, as runbook 000's get-start-lsn.sh does"))
	}
	r := e.awsReads()
	var files []aws.LogFile
	if src.since.IsZero() && !r.live() {
		// Offline, before restore-green: the time is not known yet.
		list := aws.PlannedCall{Call: "rds DescribeDBLogFiles", Params: []aws.Param{{Key: "DBInstanceIdentifier", Value: src.instance},
			{Key: "FileLastWritten", Value: "<" + src.sinceWhy + ", in ms>"}}}
		r.show([]aws.PlannedCall{list}, "every page; oldest first")
		files = []aws.LogFile{{Name: "<each file, oldest first, until the line is found>"}}
	} else {
		var err error
		if files, err = r.logFiles(ctx, aws.ListLogFilesParams{InstanceID: src.instance, Since: src.since}, "written since "+src.sinceWhy+"; every page, oldest first"); err != nil {
			return nil, err
		}
	}
	out = append(out, r.acts...)
	for _, f := range files {
		out = append(out, plannedNote(aws.DownloadLogParams{InstanceID: src.instance, File: f.Name}.Plan(), "stops at the first \"redo done at X/Y\" line")...)
	}
	if len(files) == 0 {
		out = append(out, note(AWSTarget, "no log file of %s written since %s yet: the run would fail; is the restore finished and log export on?", src.instance, src.sinceWhy))
	}
	return append(out, note(AWSTarget, "seed = X/Y + 1 byte, computed in Go; recorded: green_redo_done = %s", e.V("green_redo_done"))), nil
}

// awsSeedPlan is the offline form of how the AWS strategies read the seed,
// for callers that build green-start-lsn's plan themselves.
func awsSeedPlan(e *Env) []Action {
	off := e.Offline()
	src, err := off.seedSource(context.Background())
	if err != nil {
		return []Action{note(Green, "plan: %v", err)}
	}
	acts, err := off.seedActions(context.Background(), src)
	if err != nil {
		return []Action{note(Green, "plan: %v", err)}
	}
	return acts
}
