package steps

import (
	"context"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

func removeDDLRecorder() *Step {
	return &Step{ID: removeDDLRecorderID, PerDatabase: true, Phase: PhaseCleanup, Target: Blue, Title: "Remove the DDL recorder (optional)",
		Why:    "Drops record-ddl's event trigger, function, log and schema " + pg.RecorderSchema + " from blue; nothing is left when it was never installed.",
		Source: "beyond the sources", Optional: true,
		Plan:  planRemoveDDLRecorder,
		Check: checkDDLRecorderGone,
		Run:   runRemoveDDLRecorder,
	}
}

func checkDDLRecorderGone(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBlue(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	parts, err := pg.DDLRecorderParts(ctx, e.Blue)
	if err != nil {
		return CheckResult{}, err
	}
	if len(parts) > 0 {
		return CheckResult{Detail: "on blue: " + strings.Join(parts, ", ")}, nil
	}
	return CheckResult{Done: true, Detail: "no DDL recorder on blue"}, nil
}

// removeRecorderOp is what remove-ddl-recorder does now: the drops when
// anything of the recorder is on blue (offline: always), else nothing.
func removeRecorderOp(ctx context.Context, e *Env) (*pg.DropDDLRecorderParams, error) {
	if e.Blue != nil {
		parts, err := pg.DDLRecorderParts(ctx, e.Blue)
		if err != nil || len(parts) == 0 {
			return nil, err
		}
	}
	return &pg.DropDDLRecorderParams{On: "blue"}, nil
}

func planRemoveDDLRecorder(ctx context.Context, e *Env) ([]Action, error) {
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	op, err := removeRecorderOp(ctx, e)
	if err != nil {
		return nil, err
	}
	if op == nil {
		return []Action{note(Blue, "no DDL recorder on blue: nothing to remove")}, nil
	}
	return stmts(op.Statements()...), nil
}

func runRemoveDDLRecorder(ctx context.Context, e *Env) error {
	if err := e.needBlue(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	op, err := removeRecorderOp(ctx, e)
	if err != nil || op == nil {
		return err
	}
	return op.Exec(ctx, e.Blue)
}
