package steps

import (
	"context"
	"fmt"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// Helpers every step uses: bounded statements, refusals, the servers it
// needs, and how names of the configuration are split and quoted (by pg's
// one quoter, pg.Ident).

// bounded is ctx limited by the configured statement timeout: each step's
// short statements run under it; long waits (catch-up, ANALYZE, the schema
// copy) choose their own bounds.
func (e *Env) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	d := 30 * time.Second
	if e.Config != nil && e.Config.Timeouts.Statement.Duration > 0 {
		d = e.Config.Timeouts.Statement.Duration
	}
	return context.WithTimeout(ctx, d)
}

// refuse is a refusal: the step changed nothing and says why, with the fix.
func (e *Env) refuse(format string, args ...any) error {
	return &RefusedError{Step: e.step, Reason: fmt.Sprintf(format, args...)}
}

// needBlue and needGreen fail clearly when a pool is missing (offline).
func (e *Env) needBlue() error {
	if e.Blue == nil {
		return fmt.Errorf("no connection to blue: check blue.conninfo in the configuration")
	}
	return nil
}

func (e *Env) needGreen() error {
	if e.Green == nil {
		return fmt.Errorf("no connection to green: check green.conninfo in the configuration")
	}
	return nil
}

func (e *Env) needBoth() error {
	if err := e.needBlue(); err != nil {
		return err
	}
	return e.needGreen()
}

// tableIdent quotes a table name from the configuration: schema.table,
// where either part may be double-quoted as in SQL (public."OrderItems").
func tableIdent(qualified string) string { return pg.Ident(config.SplitQualified(qualified)...) }

func note(t Target, text string, args ...any) Action {
	return Action{Target: t, Kind: "note", Text: fmt.Sprintf(text, args...)}
}

func orPlaceholder(v, what string) string {
	if v == "" {
		return "<" + what + ">"
	}
	return v
}
