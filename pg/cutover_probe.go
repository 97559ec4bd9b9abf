package pg

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ProbeStats is what the stall probe saw: a client of PgBouncer doing a
// tiny write every few milliseconds through the switch.
type ProbeStats struct {
	Samples int `json:"samples"`
	Errors  int `json:"errors"`
	// MaxStallMs is the longest time from the start of an attempt to the
	// next success: what an application client waited at worst.
	MaxStallMs float64 `json:"max_stall_ms"`
	LastError  string  `json:"last_error,omitempty"`
}

type Prober struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	stats  ProbeStats
}

// StartProbe connects to conninfo (through PgBouncer) and writes every
// interval until stop. It returns nil when it cannot connect: the stall is
// then not measured, and the cutover goes on (the prechecks connected
// already).
func StartProbe(ctx context.Context, conninfo string, interval time.Duration) *Prober {
	if conninfo == "" || interval < 0 {
		return nil
	}
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return nil
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec // transaction pooling: no prepared statements
	cfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &Prober{cancel: cancel, done: make(chan struct{})}
	go p.loop(ctx, cfg, conn, interval)
	return p
}

// probeTimeout bounds one probe write (a pause longer than this shows as
// an error, and the stall goes on being measured).
const probeTimeout = 30 * time.Second

func (p *Prober) loop(ctx context.Context, cfg *pgx.ConnConfig, conn *pgx.Conn, interval time.Duration) {
	defer close(p.done)
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	var since time.Time
	for ctx.Err() == nil {
		if since.IsZero() {
			since = time.Now()
		}
		// Stopping never interrupts a write in flight: pgx answers an
		// interrupted query with a cancel request, and PgBouncer 1.18 was
		// seen to die on one ("bad client state" in disconnect_client).
		// Each write is bounded on its own instead; stop waits for it.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
		var err error
		if conn == nil || conn.IsClosed() {
			conn, err = pgx.ConnectConfig(qctx, cfg)
		}
		if err == nil {
			_, err = conn.Exec(qctx, probeSQL)
		}
		cancel()
		if ctx.Err() != nil {
			return // stopped mid-attempt: not a stall
		}
		p.mu.Lock()
		if err != nil {
			p.stats.Errors++
			p.stats.LastError = err.Error()
			if conn != nil && conn.PgConn().TxStatus() != 'I' {
				conn.Close(context.Background())
				conn = nil
			}
		} else {
			p.stats.Samples++
			p.stats.MaxStallMs = max(p.stats.MaxStallMs, float64(time.Since(since).Microseconds())/1000)
			since = time.Time{}
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// Stop ends the probe and returns its figures; nil-safe.
func (p *Prober) Stop() ProbeStats {
	if p == nil {
		return ProbeStats{}
	}
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}
