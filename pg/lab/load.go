package lab

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// LoadParams are the inputs of Load.
type LoadParams struct {
	Dir      string
	Rate     int           // transactions per second over all clients; <= 0: as fast as they go
	Duration time.Duration // how long to write
	Clients  int           // concurrent connections, spread over the PgBouncers; default 4
	Log      io.Writer     // connection errors as they happen; nil = none
	// Committed, when set, counts the acknowledged writes as they happen:
	// a test waits until the ledger grows instead of sleeping.
	Committed *atomic.Int64
}

// LoadResult is what `lab load` prints as one JSON line.
type LoadResult struct {
	Committed  int64   `json:"committed"`
	Errors     int64   `json:"errors"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	MaxStallMs float64 `json:"max_stall_ms"`
	Rate       float64 `json:"rate"`
	DurationS  float64 `json:"duration_s"`
	LastError  string  `json:"last_error,omitempty"`
}

// loadRun is the shared state of one Load.
type loadRun struct {
	// conninfos are the lab's PgBouncers: client k writes through
	// conninfos[k % len], so every PgBouncer carries part of the load.
	conninfos []string
	log       io.Writer
	tokens    chan struct{} // nil when unthrottled
	stop      chan struct{} // closed when the duration is over
	acks      chan ledgerEntry

	committed, errors atomic.Int64
	counter           *atomic.Int64 // LoadParams.Committed, may be nil
	mu                sync.Mutex
	latencies         []float64 // ms, one per commit
	maxStall          time.Duration
	lastErr           string
}

// Load writes through the lab's PgBouncers (each client through one, in
// turn) at p.Rate transactions per second for
// p.Duration. Each transaction inserts a ledger row (identity id) and
// updates, inserts and deletes in the other tables; every acknowledged
// commit is appended to DIR/ledger, fsync'd at least every 100 ms and before
// Load returns. A commit whose outcome is unknown (connection lost) is
// counted as an error and never re-sent: its (client, n) is not reused.
// Cancelling ctx stops early and still returns the figures so far.
func Load(ctx context.Context, p LoadParams) (LoadResult, error) {
	info, err := ReadInfo(p.Dir)
	if err != nil {
		return LoadResult{}, err
	}
	if p.Clients <= 0 {
		p.Clients = 4
	}
	if p.Duration <= 0 {
		return LoadResult{}, fmt.Errorf("load needs a positive duration")
	}
	if p.Log == nil {
		p.Log = io.Discard
	}
	var through []string
	for _, b := range info.Bouncers() {
		through = append(through, b.Conninfo)
	}
	r := &loadRun{conninfos: through, log: p.Log, stop: make(chan struct{}), acks: make(chan ledgerEntry, 4096), counter: p.Committed}

	first, err := r.firstClient(ctx, info.Ledger)
	if err != nil {
		return LoadResult{}, err
	}
	lw, err := openLedger(info.Ledger)
	if err != nil {
		return LoadResult{}, err
	}
	ledgerDone := make(chan error, 1)
	go func() { ledgerDone <- lw.run(r.acks) }()

	start := time.Now()
	var wg sync.WaitGroup
	if p.Rate > 0 {
		// Up to half a second of work may queue while every client is busy
		// (a stall, a slow machine), as requests queue in front of a real
		// application; beyond that, tokens are dropped rather than burst.
		r.tokens = make(chan struct{}, max(p.Clients, p.Rate/2))
		wg.Add(1)
		go func() { defer wg.Done(); r.dispatch(ctx, p.Rate, start) }()
	}
	var workers sync.WaitGroup
	for c := 0; c < p.Clients; c++ {
		workers.Add(1)
		go func() { defer workers.Done(); r.client(ctx, first+c) }()
	}
	select {
	case <-time.After(p.Duration):
	case <-ctx.Done():
	}
	close(r.stop)
	workers.Wait()
	wg.Wait()
	elapsed := time.Since(start)
	close(r.acks)
	if err := <-ledgerDone; err != nil {
		return r.result(elapsed), fmt.Errorf("writing the ledger: %w", err)
	}
	return r.result(elapsed), nil
}

// firstClient numbers this run's clients after every client number seen in
// the ledger or the table, so (client, n) stays unique across runs even for
// rows whose commit outcome was unknown.
func (r *loadRun) firstClient(ctx context.Context, ledgerPath string) (int, error) {
	entries, err := readLedger(ledgerPath)
	if err != nil {
		return 0, err
	}
	maxClient := 0
	for _, e := range entries {
		maxClient = max(maxClient, int(e.client))
	}
	conn, err := r.connect(ctx, 0)
	if err != nil {
		return 0, fmt.Errorf("connecting through PgBouncer: %w", err)
	}
	defer conn.Close(context.Background())
	var dbMax int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(client), 0) FROM public.ledger").Scan(&dbMax); err != nil {
		return 0, fmt.Errorf("reading the ledger table: %w", err)
	}
	return max(maxClient, dbMax) + 1, nil
}

// connect opens a connection through PgBouncer in exec mode: prepared
// statements do not survive transaction pooling (PgBouncer 1.18).
func (r *loadRun) connect(ctx context.Context, client int) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(r.conninfos[client%len(r.conninfos)])
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	cfg.ConnectTimeout = 5 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}

// dispatch hands out one token per 1/rate seconds. Tokens that do not fit
// the queue are dropped: after a long stall the clients do not burst for
// more than the queue holds.
func (r *loadRun) dispatch(ctx context.Context, rate int, start time.Time) {
	interval := max(time.Second/time.Duration(rate), time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	sent := int64(0)
	for {
		select {
		case <-r.stop:
			return
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := int64(now.Sub(start).Seconds()*float64(rate)) - sent
			for ; due > 0; due-- {
				sent++
				select {
				case r.tokens <- struct{}{}:
				default:
				}
			}
		}
	}
}

// client runs transactions on its own connection until stopped.
func (r *loadRun) client(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	var n int64
	var waitingSince time.Time // start of the first attempt since the last commit
	// The first connection is made before any transaction is timed: a
	// stall is a wait in the middle of the run, not the warm-up.
	if c, err := r.connect(ctx, id); err == nil {
		conn = c
	}
	for {
		if r.tokens != nil {
			select {
			case <-r.stop:
				return
			case <-ctx.Done():
				return
			case <-r.tokens:
			}
		} else {
			select {
			case <-r.stop:
				return
			case <-ctx.Done():
				return
			default:
			}
		}
		if waitingSince.IsZero() {
			waitingSince = time.Now()
		}
		if conn == nil || conn.IsClosed() {
			c, err := r.connect(ctx, id)
			if err != nil {
				r.fail(fmt.Errorf("client %d: connecting: %w", id, err))
				pause(ctx, r.stop, 100*time.Millisecond)
				continue
			}
			conn = c
		}
		n++ // never reused, even when the outcome of the commit is unknown
		t0 := time.Now()
		// Stopping the load never interrupts a transaction in flight: pgx
		// answers an interrupted query with a cancel request, and PgBouncer
		// 1.18 was seen to die on one. Each transaction is bounded alone.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), transactionTimeout)
		ledgerID, err := r.transaction(tctx, conn, rng, id, n)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.fail(fmt.Errorf("client %d n %d: %w", id, n, err))
			if conn.IsClosed() || !pgconnOK(conn) {
				conn.Close(context.Background())
				conn = nil
			}
			continue
		}
		done := time.Now()
		r.acks <- ledgerEntry{client: int32(id), n: n, id: ledgerID}
		r.committed.Add(1)
		if r.counter != nil {
			r.counter.Add(1)
		}
		r.mu.Lock()
		r.latencies = append(r.latencies, float64(done.Sub(t0).Microseconds())/1000)
		r.maxStall = max(r.maxStall, done.Sub(waitingSince))
		r.mu.Unlock()
		waitingSince = time.Time{}
	}
}

// transactionTimeout bounds one transaction of the workload: longer than
// any pause a cutover makes, shorter than PgBouncer's query_wait_timeout.
const transactionTimeout = 60 * time.Second

// pgconnOK reports whether the connection can take another transaction.
func pgconnOK(conn *pgx.Conn) bool {
	return conn.PgConn().TxStatus() == 'I'
}

func pause(ctx context.Context, stop chan struct{}, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-stop:
	case <-time.After(d):
	}
}

// transaction is one unit of the workload; the body goes in one round trip.
func (r *loadRun) transaction(ctx context.Context, conn *pgx.Conn, rng *rand.Rand, client int, n int64) (int64, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	b := &pgx.Batch{}
	var id int64
	b.Queue("INSERT INTO public.ledger (client, n, payload) VALUES ($1, $2, $3) RETURNING id",
		client, n, fmt.Sprintf("c%d-n%d-%x", client, n, rng.Uint32())).QueryRow(func(row pgx.Row) error { return row.Scan(&id) })
	b.Queue("UPDATE public.accounts SET balance = balance + 1, attrs = jsonb_set(attrs, '{last}', to_jsonb($2::bigint)) WHERE id = $1",
		1+rng.IntN(3000), n)
	b.Queue("INSERT INTO public.events_log (kind, body) VALUES ($1, jsonb_build_object('client', $2::int, 'n', $3::bigint))",
		fmt.Sprintf("load-%d", client%16), client, n)
	// events_log has no key: delete by ctid, skipping rows another client holds.
	b.Queue("DELETE FROM public.events_log WHERE ctid = ANY (ARRAY(SELECT ctid FROM public.events_log LIMIT 1 FOR UPDATE SKIP LOCKED))")
	if n%4 == 0 {
		b.Queue("INSERT INTO public.measurements (taken_on, value) VALUES (current_date, $1)", rng.Float64()*100)
	}
	if n%8 == 0 {
		b.Queue(`UPDATE public."OrderItems" SET qty = qty + 1 WHERE id = $1`, 1+rng.IntN(1500))
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit (outcome unknown): %w", err)
	}
	return id, nil
}

func (r *loadRun) fail(err error) {
	r.errors.Add(1)
	r.mu.Lock()
	r.lastErr = err.Error()
	r.mu.Unlock()
	fmt.Fprintln(r.log, err)
}

func (r *loadRun) result(elapsed time.Duration) LoadResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := append([]float64(nil), r.latencies...)
	sort.Float64s(lat)
	res := LoadResult{
		Committed:  r.committed.Load(),
		Errors:     r.errors.Load(),
		P50Ms:      round2(percentile(lat, 0.50)),
		P99Ms:      round2(percentile(lat, 0.99)),
		MaxStallMs: round2(float64(r.maxStall.Microseconds()) / 1000),
		DurationS:  round2(elapsed.Seconds()),
		LastError:  r.lastErr,
	}
	if elapsed > 0 {
		res.Rate = round2(float64(res.Committed) / elapsed.Seconds())
	}
	return res
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[k]
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
