package lab

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
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
	// Databases are the lab databases written to, each through every
	// PgBouncer and with a ledger of its own; nil = DefaultLoadDatabases.
	// With more than one, Clients is raised to one per PgBouncer and
	// database when lower.
	Databases []string
	Log       io.Writer // connection errors as they happen; nil = none
	// Committed, when set, counts the acknowledged writes as they happen:
	// a test waits until the ledger grows instead of sleeping.
	Committed *atomic.Int64
}

// ParseDatabases reads a comma-separated list of the lab's databases
// (`lab load --databases`), refusing a name the lab does not have.
func ParseDatabases(list string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, db := range strings.Split(list, ",") {
		db = strings.TrimSpace(db)
		if db == "" || seen[db] {
			continue
		}
		known := false
		for _, d := range Databases {
			known = known || d == db
		}
		if !known {
			return nil, fmt.Errorf("database %q is not one of the lab's (%s)", db, strings.Join(Databases, ", "))
		}
		seen[db] = true
		out = append(out, db)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no database named: use one or more of %s", strings.Join(Databases, ", "))
	}
	return out, nil
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
	// Databases are the acknowledged writes per database.
	Databases map[string]int64 `json:"databases"`
}

// loadTarget is one database through one PgBouncer.
type loadTarget struct {
	db       string
	conninfo string
	acks     chan ledgerEntry // the database's ledger
	writes   workload
}

// loadRun is the shared state of one Load.
type loadRun struct {
	// targets are every database through every PgBouncer: client c
	// writes to targets[c % len], so each pair carries part of the load.
	targets []loadTarget
	log     io.Writer
	tokens  chan struct{} // nil when unthrottled
	stop    chan struct{} // closed when the duration is over

	committed, errors atomic.Int64
	counter           *atomic.Int64 // LoadParams.Committed, may be nil
	mu                sync.Mutex
	perDB             map[string]int64
	latencies         []float64 // ms, one per commit
	maxStall          time.Duration
	lastErr           string
}

// Load writes through the lab's PgBouncers to each of p.Databases (each
// client to one database through one PgBouncer) at p.Rate transactions
// per second for p.Duration. Each transaction inserts a ledger row
// (identity id) and updates, inserts and deletes in the database's other
// tables; every acknowledged commit is appended to the database's ledger
// file (LedgerPath), fsync'd at least every 100 ms and before Load
// returns. A commit whose outcome is unknown (connection lost) is counted
// as an error and never re-sent: its (client, n) is not reused.
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
	dbs := p.Databases
	if dbs == nil {
		dbs = strings.Split(DefaultLoadDatabases, ",")
	}
	for _, db := range dbs {
		if !info.hasDatabase(db) {
			return LoadResult{}, fmt.Errorf("database %q is not one of this lab's (%s)", db, strings.Join(info.Databases, ", "))
		}
	}
	r := &loadRun{log: p.Log, stop: make(chan struct{}), counter: p.Committed, perDB: map[string]int64{}}
	acks := map[string]chan ledgerEntry{}
	for _, db := range dbs {
		acks[db] = make(chan ledgerEntry, 4096)
		r.perDB[db] = 0
	}
	for _, b := range info.Bouncers() {
		for _, db := range dbs {
			r.targets = append(r.targets, loadTarget{db: db, conninfo: tcpConninfo(b.Port, db, AppRole, info.Pgpass), acks: acks[db], writes: workloads[db]})
		}
	}
	if len(dbs) > 1 {
		p.Clients = max(p.Clients, len(r.targets))
	}

	first, err := r.firstClient(ctx, info, dbs)
	if err != nil {
		return LoadResult{}, err
	}
	ledgerDone := make(chan error, len(dbs))
	for _, db := range dbs {
		lw, err := openLedger(info.LedgerPath(db))
		if err != nil {
			for _, c := range acks {
				close(c)
			}
			return LoadResult{}, err
		}
		go func() { ledgerDone <- lw.run(acks[db]) }()
	}

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
		go func() { defer workers.Done(); r.client(ctx, first+c, r.targets[c%len(r.targets)]) }()
	}
	select {
	case <-time.After(p.Duration):
	case <-ctx.Done():
	}
	close(r.stop)
	workers.Wait()
	wg.Wait()
	elapsed := time.Since(start)
	var ledgerErr error
	for _, db := range dbs {
		close(acks[db])
	}
	for range dbs {
		if err := <-ledgerDone; err != nil && ledgerErr == nil {
			ledgerErr = err
		}
	}
	if ledgerErr != nil {
		return r.result(elapsed), fmt.Errorf("writing the ledger: %w", ledgerErr)
	}
	return r.result(elapsed), nil
}

// firstClient numbers this run's clients after every client number seen in
// the ledgers or the ledger tables of dbs, so (client, n) stays unique
// across runs even for rows whose commit outcome was unknown.
func (r *loadRun) firstClient(ctx context.Context, info *Info, dbs []string) (int, error) {
	maxClient := 0
	for _, db := range dbs {
		entries, err := readLedger(info.LedgerPath(db))
		if err != nil {
			return 0, err
		}
		for _, e := range entries {
			maxClient = max(maxClient, int(e.client))
		}
		for _, t := range r.targets {
			if t.db != db {
				continue
			}
			conn, err := connectThrough(ctx, t.conninfo)
			if err != nil {
				return 0, fmt.Errorf("connecting to database %s through PgBouncer: %w", db, err)
			}
			var dbMax int
			err = conn.QueryRow(ctx, "SELECT coalesce(max(client), 0) FROM public.ledger").Scan(&dbMax)
			conn.Close(context.Background())
			if err != nil {
				return 0, fmt.Errorf("reading database %s's ledger table: %w", db, err)
			}
			maxClient = max(maxClient, dbMax)
			break
		}
	}
	return maxClient + 1, nil
}

// connectThrough opens a connection through PgBouncer in exec mode:
// prepared statements do not survive transaction pooling (PgBouncer 1.18).
func connectThrough(ctx context.Context, conninfo string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(conninfo)
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

// client runs transactions on its own connection to t until stopped.
func (r *loadRun) client(ctx context.Context, id int, t loadTarget) {
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
	if c, err := connectThrough(ctx, t.conninfo); err == nil {
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
			c, err := connectThrough(ctx, t.conninfo)
			if err != nil {
				r.fail(fmt.Errorf("client %d (%s): connecting: %w", id, t.db, err))
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
		ledgerID, err := transaction(tctx, conn, t.writes, rng, id, n)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.fail(fmt.Errorf("client %d (%s) n %d: %w", id, t.db, n, err))
			if conn.IsClosed() || !pgconnOK(conn) {
				conn.Close(context.Background())
				conn = nil
			}
			continue
		}
		done := time.Now()
		t.acks <- ledgerEntry{client: int32(id), n: n, id: ledgerID}
		r.committed.Add(1)
		if r.counter != nil {
			r.counter.Add(1)
		}
		r.mu.Lock()
		r.perDB[t.db]++
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
		Databases:  map[string]int64{},
	}
	for db, n := range r.perDB {
		res.Databases[db] = n
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
