package steps

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// The cutover and rollback steps: pg.Cutover / pg.Rollback with the
// configuration's settings, their reports written as JSON and Markdown.

func cutover() *Step {
	return &Step{ID: "cutover", Phase: PhaseCutover, Target: PgBouncer, Title: "Cut over to green",
		Why:    "Writes pause, green drains to blue's last LSN, sequences are synced, reverse replication is set up, traffic moves to green.",
		Source: "000, 001 §10-12, 002", Destructive: true, Records: []string{CutoverReportKey, CutoverDoneAtKey},
		Plan:  offline(cutoverPlan),
		Check: checkCutover,
		Run:   runCutover,
	}
}

func rollback() *Step {
	return &Step{ID: "rollback", Phase: PhaseCutover, Target: PgBouncer, Title: "Roll back to blue",
		Why:    "The cutover in reverse through the reverse replication, sequences included.",
		Source: "001 ROLLBACK", Destructive: true, Optional: true, Needs: []string{CutoverDoneAtKey},
		Records: []string{RollbackReportKey, RollbackDoneAtKey},
		Plan:    offline(rollbackPlan),
		Check:   checkRollback,
		Run:     runRollback,
	}
}

// Values recorded by the cutover and the rollback.
const (
	CutoverReportKey   = "cutover_report"
	CutoverDoneAtKey   = "cutover_done_at"
	RollbackReportKey  = "rollback_report"
	RollbackDoneAtKey  = "rollback_done_at"
	reportTimeLayout   = "20060102T150405Z"
	cutoverStepID      = "cutover"
	rollbackStepID     = "rollback"
	reverseReplication = pg.DefaultReverseName
)

// cutoverState reads the recorded times: the cutover counts as in force
// when it is recorded and no rollback is recorded after it.
func cutoverState(e *Env) (cutAt, rolledAt time.Time, inForce bool) {
	if v, ok := e.Value(CutoverDoneAtKey); ok {
		cutAt, _ = time.Parse(time.RFC3339Nano, v)
	}
	if v, ok := e.Value(RollbackDoneAtKey); ok {
		rolledAt, _ = time.Parse(time.RFC3339Nano, v)
	}
	return cutAt, rolledAt, !cutAt.IsZero() && !rolledAt.After(cutAt)
}

// checkCutover finds the cutover done when it is recorded, or when blue's
// reverse subscription is enabled (a crash after the switch, before the
// record): it is never run twice by accident.
func checkCutover(ctx context.Context, e *Env) (CheckResult, error) {
	cutAt, _, inForce := cutoverState(e)
	if inForce {
		return CheckResult{Done: true, Detail: fmt.Sprintf("cut over to green at %s; report %s", cutAt.Format(time.RFC3339), e.V(CutoverReportKey))}, nil
	}
	if !cutAt.IsZero() || e.Blue == nil {
		return CheckResult{}, nil
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	var enabled bool
	err := e.Blue.QueryRow(ctx, "SELECT coalesce(bool_or(subenabled), false) FROM pg_subscription WHERE subname = $1", reverseReplication).Scan(&enabled)
	if err != nil {
		return CheckResult{}, fmt.Errorf("look for the reverse subscription on blue: %w", err)
	}
	if !enabled {
		return CheckResult{}, nil
	}
	// Blue's reverse subscription is enabled inside the pause: the switch
	// itself may not have happened (a crash between the two).
	if why := e.switchIncomplete(ctx); why != "" {
		return CheckResult{}, fmt.Errorf("a cutover was interrupted: blue's reverse subscription %s is on but %s; inspect (PgBouncer may still be paused: SHOW DATABASES, RESUME), then finish by hand or roll back", reverseReplication, why)
	}
	return CheckResult{Done: true, Detail: "blue's reverse subscription " + reverseReplication + " is enabled and traffic goes to green: the cutover went through (its record was lost)"}, nil
}

// switchIncomplete says what of the switch to green is missing, "" if
// nothing: every PgBouncer's ini entry pointing at green (pgbouncer), or
// the application roles able to log in to green.
func (e *Env) switchIncomplete(ctx context.Context) string {
	if e.Config.Cutover.Method == "pgbouncer" {
		green, err := pg.EndpointOf(e.Config.Green.Conninfo)
		if err != nil {
			return "green's endpoint is unreadable: " + err.Error()
		}
		for _, b := range e.Config.Cutover.PgBouncer {
			entry, err := pg.ReadBouncerEntry(b.Ini, b.Database)
			if err != nil {
				return err.Error()
			}
			if entry.Get("host") != green.Host || entry.Get("port") != fmt.Sprint(green.Port) {
				return fmt.Sprintf("PgBouncer %s's ini still points %s at %s:%s", orPlaceholder(b.Name, b.Ini), b.Database, entry.Get("host"), entry.Get("port"))
			}
		}
		return ""
	}
	if len(e.Config.AppRoles) == 0 || e.Green == nil {
		return ""
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	var blocked []string
	rows, err := e.Green.Query(ctx, "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) AND NOT rolcanlogin", e.Config.AppRoles)
	if err == nil {
		for rows.Next() {
			var r string
			if rows.Scan(&r) == nil {
				blocked = append(blocked, r)
			}
		}
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		return "green's roles could not be read: " + err.Error()
	}
	if len(blocked) > 0 {
		return "application roles cannot log in to green yet: " + strings.Join(blocked, ", ")
	}
	return ""
}

func checkRollback(_ context.Context, e *Env) (CheckResult, error) {
	cutAt, rolledAt, _ := cutoverState(e)
	if !rolledAt.IsZero() && rolledAt.After(cutAt) {
		return CheckResult{Done: true, Detail: fmt.Sprintf("rolled back to blue at %s; report %s", rolledAt.Format(time.RFC3339), e.V(RollbackReportKey))}, nil
	}
	return CheckResult{}, nil
}

func runCutover(ctx context.Context, e *Env) error {
	if cutAt, _, inForce := cutoverState(e); inForce {
		return e.refuse("the cutover already ran at %s; a second cutover is refused (run rollback first)", cutAt.Format(time.RFC3339))
	}
	return e.switchover(ctx, false)
}

func runRollback(ctx context.Context, e *Env) error {
	if _, _, inForce := cutoverState(e); !inForce {
		return e.refuse("no cutover in force to roll back (value %s is not recorded, or a rollback came after it)", CutoverDoneAtKey)
	}
	return e.switchover(ctx, true)
}

// switchover runs the cutover or the rollback and records its report.
func (e *Env) switchover(ctx context.Context, rollback bool) error {
	if err := e.needBoth(); err != nil {
		return err
	}
	p, err := e.cutoverParams()
	if err != nil {
		return err
	}
	name, reportKey, doneKey := cutoverStepID, CutoverReportKey, CutoverDoneAtKey
	run := pg.Cutover
	if rollback {
		name, reportKey, doneKey, run = rollbackStepID, RollbackReportKey, RollbackDoneAtKey, pg.Rollback
	}
	e.Logf("%s with method %s: prechecks, then the sub-steps, each timed", name, p.Method)
	p.OnPrecheck = func(c pg.Check) {
		if c.OK {
			e.Logf("precheck ok: %s: %s", c.Name, c.Detail)
		} else {
			e.Warnf("precheck FAILED: %s: %s", c.Name, c.Detail)
		}
	}
	rep, runErr := run(ctx, p)
	base := filepath.Join(e.reportDir(), fmt.Sprintf("%s-%s", name, rep.StartedAt.UTC().Format(reportTimeLayout)))
	if err := rep.WriteFiles(base); err != nil {
		e.Warnf("the report could not be written: %v", err)
	} else if err := e.Record(reportKey, base+".json"); err != nil {
		return err
	}
	e.Logf("report: %s.json and %s.md", base, base)
	var pe *pg.PrecheckError
	if errors.As(runErr, &pe) {
		return e.refuse("%s", pe.Error())
	}
	if runErr != nil && rep.FinalTarget == "" {
		return runErr
	}
	// Traffic moved: record it even when a later check failed, so the
	// cutover is never run twice.
	if err := e.Record(doneKey, rep.FinishedAt.UTC().Format(time.RFC3339Nano)); err != nil {
		return err
	}
	e.Logf("writes go to %s; paused %.1f ms, longest probe stall %.1f ms, %d sequences synced in %.1f ms",
		rep.FinalTarget, rep.PausedMs, rep.Probe.MaxStallMs, rep.Sequences, rep.SeqSyncMs)
	for _, w := range rep.Warnings {
		e.Warnf("%s", w)
	}
	return runErr
}

// onSubStep streams each sub-step to the log pane and the journal.
func (e *Env) onSubStep(s pg.SubStep) {
	ms := float64(s.Duration.Microseconds()) / 1000
	if s.Error != "" {
		e.Warnf("%-34s %8.1f ms  [%s] FAILED: %s", s.Name, ms, s.Target, s.Error)
		return
	}
	e.Logf("%-34s %8.1f ms  [%s] %s", s.Name, ms, s.Target, s.Detail)
}

// reportDir is where reports go: next to the state file; without one (a
// test's bare Env), next to the configuration file; else the working folder.
func (e *Env) reportDir() string {
	if e.StateDir != "" {
		return e.StateDir
	}
	if e.Config != nil && e.Config.Path != "" {
		return filepath.Dir(e.Config.Path)
	}
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "."
}

// cutoverParams maps the configuration onto pg.CutoverParams.
func (e *Env) cutoverParams() (pg.CutoverParams, error) {
	c := e.Config
	blueConninfo := c.Blue.Conninfo
	if c.Replication.BlueConninfo != "" {
		blueConninfo = c.Replication.BlueConninfo
	}
	blue, err := pg.EndpointOf(blueConninfo)
	if err != nil {
		return pg.CutoverParams{}, fmt.Errorf("blue's endpoint: %w", err)
	}
	green, err := pg.EndpointOf(c.Green.Conninfo)
	if err != nil {
		return pg.CutoverParams{}, fmt.Errorf("green's endpoint: %w", err)
	}
	pw, err := c.ReplicationPassword()
	if err != nil {
		return pg.CutoverParams{}, err
	}
	p := pg.CutoverParams{
		Method: c.Cutover.Method, Blue: e.Blue, Green: e.Green,
		BlueEndpoint: blue, GreenEndpoint: green,
		Subscriptions:   c.publicationNames(),
		ReplicationRole: c.Replication.Role, ReplicationPassword: pw,
		AppRoles:    c.AppRoles,
		MaxLagBytes: c.Cutover.MaxLagBytes, DrainTimeout: c.Cutover.DrainTimeout.Duration,
		SequenceMargin: c.Cutover.SequenceMargin, StatementTimeout: c.Timeouts.Statement.Duration,
		OnSubStep: e.onSubStep,
	}
	if c.Cutover.Method == "pgbouncer" {
		for _, b := range c.Cutover.PgBouncer {
			client, err := bouncerClientConninfo(b.AdminConninfo, b.Database, c.AppRoles)
			if err != nil {
				return pg.CutoverParams{}, fmt.Errorf("cutover.pgbouncer %s: %w", b.Name, err)
			}
			p.Bouncers = append(p.Bouncers, pg.BouncerParams{Name: orPlaceholder(b.Name, b.Ini), AdminConninfo: b.AdminConninfo,
				Ini: b.Ini, Database: b.Database, ClientConninfo: client})
		}
	}
	return p, nil
}

// bouncerClientConninfo connects through PgBouncer as an application does:
// the admin console's host and port, the served database, the first
// application role (password from PGPASSWORD or the passfile, as libpq).
// Later keywords win in a libpq string, so they are appended.
func bouncerClientConninfo(admin, db string, appRoles []string) (string, error) {
	if len(appRoles) == 0 {
		return "", fmt.Errorf("app_roles is empty: the version check and the probes connect through PgBouncer as the first application role")
	}
	if _, err := pgconn.ParseConfig(admin); err != nil {
		return "", fmt.Errorf("admin_conninfo: %w", err)
	}
	if u, err := url.Parse(admin); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + db
		u.User = url.User(appRoles[0])
		return u.String(), nil
	}
	return admin + " dbname=" + pg.QuoteConninfoValue(db) + " user=" + pg.QuoteConninfoValue(appRoles[0]), nil
}
