package steps

import (
	"context"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// The optional DDL recorder on blue (pg/ddl_recorder.go): record-ddl
// installs it right before the subscriptions exist, so every DDL statement
// run on blue while replication runs is logged with its time, user and
// text; the drift guard shows the newest ones (monitor_drift.go);
// remove-ddl-recorder takes it away at cleanup. Both steps live here, not
// in replicate.go and cleanup.go, because they are one feature and those
// files are at their size limit.

// The recorder's steps.
const (
	recordDDLID         = "record-ddl"
	removeDDLRecorderID = "remove-ddl-recorder"
)

func recordDDL() *Step {
	return &Step{ID: recordDDLID, PerDatabase: true, Phase: PhaseReplicate, Target: Blue, Title: "Record DDL on blue (optional)",
		Why: "Logical replication does not carry DDL. An event trigger on blue logs each DDL statement (time, user, object, text) in an UNLOGGED table of schema " +
			pg.RecorderSchema + ", never replicated, so the drift guard can say what ran and when. Needs a superuser (or rds_superuser); skip it otherwise.",
		Source: "beyond the sources", Optional: true,
		Plan:  planRecordDDL,
		Check: checkRecordDDL,
		Run:   runRecordDDL,
	}
}

func planRecordDDL(ctx context.Context, e *Env) ([]Action, error) {
	var out []Action
	if e.Blue != nil {
		ctx, cancel := e.bounded(ctx)
		defer cancel()
		r, err := pg.ReadEventTriggerRights(ctx, e.Blue)
		if err != nil {
			return nil, err
		}
		if why := eventTriggerDenied(r); why != "" {
			out = append(out, note(Blue, "%s: the step will refuse; skip it (`pgbluegreen skip %s --reason ...`)", why, recordDDLID))
		}
	}
	return append(out, stmts(pg.DDLRecorderParams{On: "blue"}.Statements()...)...), nil
}

// eventTriggerDenied says why blue refuses event triggers to r's user
// before trying: "" when it may allow them (a superuser, or rds_superuser,
// where the provider decides).
func eventTriggerDenied(r pg.EventTriggerRights) string {
	if r.Superuser || r.RDSSuperuser {
		return ""
	}
	return "blue does not allow event triggers for " + r.User + ": only a superuser (rds_superuser on RDS/Aurora) may create one"
}

func checkRecordDDL(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBlue(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	ok, err := pg.DDLRecorderInstalled(ctx, e.Blue)
	if err != nil {
		return CheckResult{}, err
	}
	if !ok {
		return CheckResult{Detail: "no event trigger " + pg.RecorderTrigger + " on blue"}, nil
	}
	return CheckResult{Done: true, Detail: "event trigger " + pg.RecorderTrigger + " records DDL on blue in " + pg.RecorderSchema + ".ddl_log"}, nil
}

// runRecordDDL installs the recorder, refusing in one line when blue does
// not allow event triggers to the configured user: the step is optional,
// and the refusal says to skip it.
func runRecordDDL(ctx context.Context, e *Env) error {
	if err := e.needBlue(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	r, err := pg.ReadEventTriggerRights(ctx, e.Blue)
	if err != nil {
		return err
	}
	skip := "; skip this optional step (`pgbluegreen skip " + recordDDLID + " --reason ...`)"
	if why := eventTriggerDenied(r); why != "" {
		return e.refuse("%s%s", why, skip)
	}
	if err := (pg.DDLRecorderParams{On: "blue"}).Exec(ctx, e.Blue); err != nil {
		// rds_superuser: the provider may still say no; nothing was left (one transaction).
		return e.refuse("blue does not allow event triggers for %s: %v%s", r.User, oneLine(err.Error()), skip)
	}
	e.Logf("on blue: DDL is now recorded in %s.ddl_log (event trigger %s)", pg.RecorderSchema, pg.RecorderTrigger)
	return nil
}

// oneLine keeps an error to one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
