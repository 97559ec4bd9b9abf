package pg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SlotLag is one logical slot, as the lag gauge shows it.
type SlotLag struct {
	Slot string `json:"slot"`
	// Server is where the slot is ("blue", or "green" for the reverse
	// feed after a cutover), Direction the feed it serves ("blue -> green").
	Server    string `json:"server"`
	Direction string `json:"direction"`
	Active    bool   `json:"active"`
	// BehindBytes is how far the slot's confirmed_flush_lsn is behind blue's
	// current WAL position: what green still has to apply.
	BehindBytes int64 `json:"behind_bytes"`
	// RetainedBytes is the WAL blue keeps for the slot (from restart_lsn).
	RetainedBytes int64 `json:"retained_bytes"`
	// WALStatus is pg_replication_slots.wal_status: reserved, extended,
	// unreserved (about to be invalidated) or lost.
	WALStatus string `json:"wal_status"`
	// SafeWALBytes is how much more WAL blue may write before the slot is
	// invalidated; -1 when max_slot_wal_keep_size is unlimited.
	SafeWALBytes int64  `json:"safe_wal_bytes"`
	ConfirmedLSN string `json:"confirmed_flush_lsn"`
	CurrentLSN   string `json:"current_lsn"`
}

// LagSample is one poll of blue's slots.
type LagSample struct {
	At    time.Time `json:"at"`
	Slots []SlotLag `json:"slots"`
	// Took is how long the query took.
	Took time.Duration `json:"took_ns"`
}

// lagQuery reads every logical slot in one statement. PG13+ (wal_status,
// safe_wal_size). Columns: slot, active, behind, retained, wal_status,
// safe_wal_size (NULL when unlimited), confirmed_flush_lsn, current lsn.
const lagQuery = `
SELECT slot_name::text,
       active,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint,
       coalesce(wal_status, ''),
       coalesce(safe_wal_size, -1)::bigint,
       coalesce(confirmed_flush_lsn::text, ''),
       pg_current_wal_lsn()::text
FROM pg_replication_slots
WHERE slot_type = 'logical'
ORDER BY slot_name`

// ReadLag polls one server's logical slots once, bounded by timeout;
// server names it ("blue" or "green") and the direction its slots feed.
func ReadLag(ctx context.Context, pool *pgxpool.Pool, server string, timeout time.Duration) (LagSample, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	rows, err := pool.Query(ctx, lagQuery, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return LagSample{}, fmt.Errorf("read replication slots: %w", err)
	}
	slots, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SlotLag, error) {
		var s SlotLag
		err := r.Scan(&s.Slot, &s.Active, &s.BehindBytes, &s.RetainedBytes, &s.WALStatus, &s.SafeWALBytes, &s.ConfirmedLSN, &s.CurrentLSN)
		s.Server, s.Direction = server, feedDirection(server)
		return s, err
	})
	if err != nil {
		return LagSample{}, fmt.Errorf("read replication slots: %w", err)
	}
	return LagSample{At: start, Slots: slots, Took: time.Since(start)}, nil
}

// feedDirection is the feed a server's slots serve.
func feedDirection(server string) string {
	if server == "green" {
		return "green -> blue"
	}
	return "blue -> green"
}
