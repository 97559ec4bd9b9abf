// Package monitor reads what the screen and `watch` show while a run goes
// on: the lag of every slot, the initial sync's progress, who is
// connected, schema drift between blue and green, where traffic goes, and
// the alerts raised from them. It reads and never changes a server; its
// pools are borrowed and its reads are not journaled.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
	"github.com/pgbluegreen/pgbluegreen/steps/cutover"
)

// LagSample, SlotLag and Subscription are what the lag gauge shows; they are
// pg's types, named here so that the screen (ui) needs no import of pg.
type (
	// LagSample is one poll of blue's logical slots.
	LagSample = pg.LagSample
	// SlotLag is one logical slot on blue.
	SlotLag = pg.SlotLag
	// Subscription is one subscription on green.
	Subscription = pg.Subscription
	// SyncProgress is the initial sync and the catch-up: phase, tables and
	// bytes against the total, rate, ETA, tables in flight, lag in bytes
	// and time, table-sync slots under their subscription.
	SyncProgress = pg.SyncProgress
	// Traffic is where the application's writes go, read from the servers.
	Traffic = cutover.Traffic
)

// Bytes says a size as pg_size_pretty does: one convention for the
// screen, the log and the alerts.
func Bytes(n int64) string { return pg.Bytes(n) }

// Monitor reads the live replication state the screen shows: blue's slots,
// green's subscriptions and both servers' versions. It borrows pools built
// by main.go; they should not be the runner's, whose statements are
// journaled, or the journal would fill with one poll a second.
type Monitor struct {
	blue, green *pgxpool.Pool
	cfg         *config.Config
	timeout     time.Duration
	sources     pg.SyncSources

	mu      sync.Mutex
	tracker pg.SyncTracker
	// dbs are the databases that move, read once with their pools;
	// closeDBs closes those pools.
	dbs      []DatabasePools
	closeDBs func()
}

// databases are the databases that move, read and opened on first use.
func (m *Monitor) databases(ctx context.Context) ([]DatabasePools, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dbs != nil {
		return m.dbs, nil
	}
	dbs, closeDBs, err := OpenDatabases(ctx, m.cfg, m.blue, m.green)
	if err != nil {
		return nil, err
	}
	m.dbs, m.closeDBs = dbs, closeDBs
	return dbs, nil
}

// Close closes the pools the monitor opened for databases other than
// blue.conninfo's.
func (m *Monitor) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closeDBs != nil {
		m.closeDBs()
	}
	m.dbs, m.closeDBs = nil, nil
}

// errNoPool is returned when a database has no pool (not configured).
var errNoPool = errors.New("no connection configured")

// NewMonitor builds a monitor on the pools (either may be nil). Every read is
// bounded by the configuration's connect timeout plus two seconds, so a
// server that does not answer costs a poll, never the screen.
func NewMonitor(blue, green *pgxpool.Pool, c *config.Config) *Monitor {
	return &Monitor{blue: blue, green: green, cfg: c, timeout: c.Timeouts.Connect.Duration + 2*time.Second, sources: c.SyncSources()}
}

// SyncProgress reads the initial sync and the catch-up once (green, then
// blue), with the rate and ETA over the samples read so far.
func (m *Monitor) SyncProgress(ctx context.Context) (SyncProgress, error) {
	if m.green == nil {
		return SyncProgress{}, errNoPool
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	dbs, err := m.databases(ctx)
	if err != nil {
		return SyncProgress{}, err
	}
	// One sample of every database's subscriptions: the bar and the ETA
	// are the whole run's.
	var s pg.SyncSample
	for _, d := range dbs {
		src := m.sources
		if d.Name != m.cfg.PrimaryDatabase() {
			src = m.cfg.ForDatabase(d.Name).SyncSources()
		}
		one, err := pg.ReadSyncSample(ctx, d.Green, d.Blue, src)
		if pg.IsMissingDatabase(err) {
			continue // green's copy of it is made later (create-databases)
		}
		if err != nil {
			if len(dbs) > 1 {
				err = fmt.Errorf("database %s: %w", d.Name, err)
			}
			return SyncProgress{}, err
		}
		s.At = one.At
		s.Subscriptions = append(s.Subscriptions, one.Subscriptions...)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tracker.Add(s), nil
}

// Lag polls the logical slots of blue (the forward feed) and of green (the
// reverse feed a cutover starts) once: after a cutover the gauge follows
// green's slot, and blue's is idle. Green unreachable only costs its slots.
func (m *Monitor) Lag(ctx context.Context) (LagSample, error) {
	return ReadBothLags(ctx, m.blue, m.green, m.timeout)
}

// ReadBothLags reads blue's slots, then green's (best effort), into one
// sample, each slot with its direction.
func ReadBothLags(ctx context.Context, blue, green *pgxpool.Pool, timeout time.Duration) (LagSample, error) {
	if blue == nil {
		return LagSample{}, errNoPool
	}
	s, err := pg.ReadLag(ctx, blue, "blue", timeout)
	if err != nil || green == nil {
		return s, err
	}
	if g, gerr := pg.ReadLag(ctx, green, "green", timeout); gerr == nil {
		s.Slots = append(s.Slots, g.Slots...)
		s.Took += g.Took
	}
	return s, nil
}

// Subscriptions reads green's subscriptions once, in every database that
// moves (a subscription's tables are its database's): a database green
// has no copy of yet has none.
func (m *Monitor) Subscriptions(ctx context.Context) ([]Subscription, error) {
	if m.green == nil {
		return nil, errNoPool
	}
	dbs, err := m.databases(ctx)
	if err != nil {
		return nil, err
	}
	var out []Subscription
	for _, d := range dbs {
		subs, err := pg.ReadSubscriptions(ctx, d.Green, m.timeout)
		if pg.IsMissingDatabase(err) {
			continue
		}
		if err != nil {
			if len(dbs) > 1 {
				err = fmt.Errorf("database %s: %w", d.Name, err)
			}
			return nil, err
		}
		out = append(out, subs...)
	}
	return out, nil
}

// BlueVersion reads blue's server version ("15.14").
func (m *Monitor) BlueVersion(ctx context.Context) (string, error) {
	if m.blue == nil {
		return "", errNoPool
	}
	return pg.ServerVersion(ctx, m.blue, m.timeout)
}

// GreenVersion reads green's server version ("17.5").
func (m *Monitor) GreenVersion(ctx context.Context) (string, error) {
	if m.green == nil {
		return "", errNoPool
	}
	return pg.ServerVersion(ctx, m.green, m.timeout)
}

// Traffic reads where the application's writes go (PgBouncer's SHOW
// DATABASES, the application roles' LOGIN on each side), bounded like
// every read of the monitor.
func (m *Monitor) Traffic(ctx context.Context) (Traffic, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	dbs, err := m.databases(ctx)
	if err != nil {
		return Traffic{Target: "unknown", How: state.Redact(err.Error()), ReadAt: time.Now().UTC()}, nil
	}
	return ReadTrafficOf(ctx, m.cfg, dbs), nil
}

// IsTableSyncSlot reports whether a slot of a LagSample is a table sync's
// (pg_<subscription oid>_sync_<table oid>_<system id>): it lives for one
// table's initial copy and belongs under its subscription
// (SyncProgress.Subscriptions[i].SyncSlots), not in the gauge as a lag.
func IsTableSyncSlot(slot string) bool {
	_, ok := pg.TableSyncSlotOf(slot)
	return ok
}
