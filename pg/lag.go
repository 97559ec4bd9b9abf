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
	// Database is the database the slot decodes (its feed's).
	Database string `json:"database"`
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
	// LagSeconds is the feed's lag in time: pg_stat_replication.replay_lag
	// of the slot's walsender (0 once caught up and quiet). nil when it
	// cannot be known: no walsender (the slot is idle) or no privilege to
	// read it (pg_read_all_stats).
	LagSeconds *float64 `json:"lag_seconds"`
	// InactiveSince is when the slot's consumer went away (PostgreSQL 17's
	// pg_replication_slots.inactive_since); nil before 17 or while active.
	InactiveSince *time.Time `json:"inactive_since,omitempty"`
	// MaxKeepBytes is the server's max_slot_wal_keep_size in bytes, the WAL
	// a slot may hold before it is invalidated; -1 is unlimited (then the
	// disk is the bound).
	MaxKeepBytes int64 `json:"max_slot_wal_keep_bytes"`
}

// LagSample is one poll of blue's slots.
type LagSample struct {
	At    time.Time `json:"at"`
	Slots []SlotLag `json:"slots"`
	// Took is how long the query took.
	Took time.Duration `json:"took_ns"`
}

// lagQuery reads every logical slot in one statement. PG13+ (wal_status,
// safe_wal_size). Columns: slot, database, active, behind, retained, wal_status,
// safe_wal_size (NULL when unlimited), confirmed_flush_lsn, current lsn,
// lag in seconds (the walsender's replay_lag; NULL without a walsender or
// the privilege to read it, whose state then reads NULL), inactive_since
// (PG17+: read through to_jsonb so one text serves every major, NULL
// before), max_slot_wal_keep_size in bytes (the setting is in MB; -1 stays
// -1).
const lagQuery = `
SELECT s.slot_name::text,
       coalesce(s.database::text, ''),
       s.active,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn), 0)::bigint,
       coalesce(s.wal_status, ''),
       coalesce(s.safe_wal_size, -1)::bigint,
       coalesce(s.confirmed_flush_lsn::text, ''),
       pg_current_wal_lsn()::text,
       CASE WHEN r.state IS NULL THEN NULL ELSE coalesce(extract(epoch FROM r.replay_lag), 0) END::float8,
       (to_jsonb(s) ->> 'inactive_since')::timestamptz,
       (SELECT CASE WHEN setting::bigint < 0 THEN -1 ELSE setting::bigint * 1024 * 1024 END
          FROM pg_settings WHERE name = 'max_slot_wal_keep_size')
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_type = 'logical'
ORDER BY s.slot_name`

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
		err := r.Scan(&s.Slot, &s.Database, &s.Active, &s.BehindBytes, &s.RetainedBytes, &s.WALStatus, &s.SafeWALBytes, &s.ConfirmedLSN, &s.CurrentLSN,
			&s.LagSeconds, &s.InactiveSince, &s.MaxKeepBytes)
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
