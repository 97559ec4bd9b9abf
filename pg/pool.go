// Package pg is everything pgbluegreen says to PostgreSQL and PgBouncer,
// through pgx. It knows nothing of steps: it takes pools built by main.go and
// plain parameters, and returns plain results.
package pg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolParams configures one pool.
type PoolParams struct {
	// Conninfo is a libpq connection string or URL; PG* variables and the
	// passfile apply as in libpq.
	Conninfo       string
	ConnectTimeout time.Duration
	MaxConns       int32
	// ReadOnly sessions (a dry run's) start with default_transaction_read_only
	// on: a statement that would write fails instead.
	ReadOnly bool
	// OnQuery, when set, is told of every statement with its duration and
	// error, for the journal.
	OnQuery func(ctx context.Context, sql string, d time.Duration, err error)
}

// NewPool builds a pool without connecting: a server that is down shows up
// on first use, not at start-up.
func NewPool(p PoolParams) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(p.Conninfo)
	if err != nil {
		return nil, fmt.Errorf("parse connection string: %w", err)
	}
	if p.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = p.ConnectTimeout
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "pgbluegreen"
	}
	if p.ReadOnly {
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	// A cutover holds two sessions on each side and reads and sets the
	// sequences on two more: eight leaves room for a check meanwhile.
	cfg.MaxConns = 8
	if p.MaxConns > 0 {
		cfg.MaxConns = p.MaxConns
	}
	if p.OnQuery != nil {
		cfg.ConnConfig.Tracer = &tracer{onQuery: p.OnQuery}
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	return pool, nil
}

type traceKey struct{}

type traceStart struct {
	sql   string
	start time.Time
}

// tracer reports every statement once it ends.
type tracer struct {
	onQuery func(ctx context.Context, sql string, d time.Duration, err error)
}

func (t *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{sql: data.SQL, start: time.Now()})
}

func (t *tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if s, ok := ctx.Value(traceKey{}).(traceStart); ok {
		t.onQuery(ctx, s.sql, time.Since(s.start), data.Err)
	}
}

// PoolOn is a new pool like p (the same server, role, settings, TLS and
// journal hook) on database db: a run that moves several databases opens
// one per database on each side.
func PoolOn(p *pgxpool.Pool, db string) (*pgxpool.Pool, error) {
	cfg := p.Config().Copy()
	cfg.ConnConfig.Database = db
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool on database %s: %w", db, err)
	}
	return pool, nil
}
