package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
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
func tableIdent(qualified string) string { return pg.Ident(SplitQualified(qualified)...) }

// SplitQualified splits a possibly quoted, possibly schema-qualified name
// into its unquoted parts: `public."Order.Items"` -> [public Order.Items].
func SplitQualified(name string) []string {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(name); i++ {
		ch := name[i]
		switch {
		case ch == '"' && quoted && i+1 < len(name) && name[i+1] == '"':
			cur.WriteByte('"')
			i++
		case ch == '"':
			quoted = !quoted
		case ch == '.' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(ch)
		}
	}
	return append(parts, cur.String())
}

func note(t Target, text string, args ...any) Action {
	return Action{Target: t, Kind: "note", Text: fmt.Sprintf(text, args...)}
}

func orPlaceholder(v, what string) string {
	if v == "" {
		return "<" + what + ">"
	}
	return v
}

func (c *Config) isAWS() bool {
	for _, s := range awsStrategies {
		if c.Strategy == s {
			return true
		}
	}
	return false
}

func (p PasswordSource) describe() string {
	switch {
	case p.Env != "":
		return "$" + p.Env
	case p.SecretARN != "":
		return p.SecretARN
	case p.PgpassFile != "":
		return "passfile " + p.PgpassFile
	default:
		return "~/.pgpass"
	}
}
