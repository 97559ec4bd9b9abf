package pg

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Progress of the initial sync and the catch-up after it, as a person
// follows it: bytes copied against each table's size on blue, tables done,
// the tables in flight; then the lag in bytes and in time.

// TableCopy is one table whose initial copy runs.
type TableCopy struct {
	Table string `json:"table"`
	// BytesDone is the table's size on green so far; BytesTotal its size on blue.
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
	// Rows is the rows COPY has written (pg_stat_progress_copy).
	Rows int64 `json:"rows"`
	// State is pg_subscription_rel.srsubstate: d (copying), f (copied), s (synced, catching up).
	State string `json:"state"`
	// Ranges is how many ranges of its heap a snapshot copy copies at
	// once (a COPY on green each); 1 for a table copied whole.
	Ranges int `json:"ranges,omitempty"`
}

// SubscriptionSync is one subscription's part.
type SubscriptionSync struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	// WorkerRunning says its apply worker runs; NotLaunched, when it does
	// not, says so with green's worker slots.
	WorkerRunning bool   `json:"worker_running"`
	NotLaunched   string `json:"not_launched,omitempty"`
	TablesDone    int    `json:"tables_done"`
	TablesTotal   int    `json:"tables_total"`
	BytesDone     int64  `json:"bytes_done"`
	BytesTotal    int64  `json:"bytes_total"`
	// InFlight are the tables copying now, largest first.
	InFlight []TableCopy `json:"in_flight,omitempty"`
	// SyncSlots are the table-sync slots on blue that belong to it: they
	// come and go with each table, and are no lag of their own.
	SyncSlots []string `json:"sync_slots,omitempty"`
	// Snapshot is a publication copy-data is copying in its slot's
	// snapshot: it has no subscription yet, and its figures come from the
	// copy's sessions on green and its tables' sizes on both servers.
	Snapshot bool `json:"snapshot,omitempty"`
	// LagBytes is how far its slot's confirmed_flush_lsn is behind blue's
	// current position; LagSeconds is pg_stat_replication's replay_lag of
	// its walsender on blue (-1 when blue does not say).
	LagBytes   int64   `json:"lag_bytes"`
	LagSeconds float64 `json:"lag_seconds"`
}

// SyncSample is one reading of both servers.
type SyncSample struct {
	At            time.Time          `json:"at"`
	Subscriptions []SubscriptionSync `json:"subscriptions"`
}

// TablesDone and the other totals sum the subscriptions.
func (s SyncSample) totals() (tablesDone, tablesTotal int, bytesDone, bytesTotal, lag int64, lagSec float64) {
	lagSec = -1
	for _, x := range s.Subscriptions {
		tablesDone += x.TablesDone
		tablesTotal += x.TablesTotal
		bytesDone += x.BytesDone
		bytesTotal += x.BytesTotal
		lag += x.LagBytes
		lagSec = max(lagSec, x.LagSeconds)
	}
	return
}

// syncTablesQuery lists, on green, every table of the named subscriptions
// with its state, and for the tables copying now their size so far and
// COPY's rows. Columns: subscription, oid, enabled, apply worker running,
// table, state, size on green, rows copied.
const syncTablesQuery = `
SELECT s.subname::text, s.oid, s.subenabled,
       EXISTS (SELECT 1 FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.relid IS NULL AND w.pid IS NOT NULL),
       CASE WHEN c.oid IS NULL THEN '' ELSE format('%I.%I', n.nspname, c.relname) END, coalesce(r.srsubstate::text, ''),
       CASE WHEN r.srsubstate IN ('d', 'f') THEN pg_table_size(c.oid) ELSE 0 END::bigint,
       coalesce(p.tuples_processed, 0)::bigint
FROM pg_subscription s
LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid
LEFT JOIN pg_class c ON c.oid = r.srrelid
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_progress_copy p ON p.relid = r.srrelid AND p.command = 'COPY FROM'
WHERE s.subname = ANY($1::text[]) AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY 1, 5`

// blueSizesQuery reads, on blue, the size of each named table, the lag of
// each named slot, and the walsenders' replay_lag and the table-sync slots.
const blueSizesQuery = `
SELECT t.name, coalesce(pg_table_size(to_regclass(t.name)), 0)::bigint
FROM unnest($1::text[]) t(name)`

const blueLagQuery = `
SELECT s.slot_name::text, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint,
       coalesce(extract(epoch FROM r.replay_lag), -1)::float8
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_type = 'logical'`

// tableSyncSlot matches the name PostgreSQL gives a table sync's slot:
// pg_<subscription oid>_sync_<table oid>_<system identifier>.
var tableSyncSlot = regexp.MustCompile(`^pg_([0-9]+)_sync_[0-9]+_[0-9]+$`)

// TableSyncSlotOf reports whether slot is a table sync's, and the oid on
// green of the subscription it belongs to.
func TableSyncSlotOf(slot string) (uint32, bool) {
	m := tableSyncSlot.FindStringSubmatch(slot)
	if m == nil {
		return 0, false
	}
	oid, err := strconv.ParseUint(m[1], 10, 32)
	return uint32(oid), err == nil
}

// SyncSources are the subscriptions to read and the slot each consumes.
type SyncSources struct {
	Subscriptions []string
	// Slots maps a subscription to its slot on blue.
	Slots map[string]string
	// Snapshot are the publications copy-data copies (copy: snapshot):
	// read while their copy's sessions are on green.
	Snapshot []string
}

// snapshotSessionsQuery finds, on green, the sessions of snapshot copies
// (by application_name) and the table each is copying (” between two).
// Columns: application_name, table, rows.
const snapshotSessionsQuery = `
SELECT a.application_name::text, CASE WHEN c.oid IS NULL THEN '' ELSE format('%I.%I', n.nspname, c.relname) END, coalesce(p.tuples_processed, 0)::bigint
FROM pg_stat_activity a
LEFT JOIN pg_stat_progress_copy p ON p.pid = a.pid AND p.command = 'COPY FROM'
LEFT JOIN pg_class c ON c.oid = p.relid
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.application_name = ANY($1::text[])`

// publicationSizesQuery lists, on blue, a publication's tables and sizes.
const publicationSizesQuery = `
SELECT format('%I.%I', t.schemaname, t.tablename), coalesce(pg_table_size(format('%I.%I', t.schemaname, t.tablename)::regclass), 0)::bigint
FROM pg_publication_tables t WHERE t.pubname = $1`

// greenSizesQuery reads, on green, the size of each named table.
const greenSizesQuery = `SELECT t, coalesce(pg_table_size(to_regclass(t)), 0)::bigint FROM unnest($1::text[]) t`

// readSnapshotCopies reads the snapshot copies in progress: for each
// publication whose copy has sessions on green, its tables against blue's
// sizes. The copy goes into empty tables, largest first, so a table that
// has rows on green and is not in flight is done.
func readSnapshotCopies(ctx context.Context, green, blue *pgxpool.Pool, pubs []string) ([]SubscriptionSync, error) {
	if blue == nil || len(pubs) == 0 {
		return nil, nil
	}
	names := make([]string, len(pubs))
	pubOf := map[string]string{}
	for i, p := range pubs {
		names[i] = CopyAppName(p)
		pubOf[names[i]] = p
	}
	type flight struct {
		rows   int64
		copies int
	}
	running := map[string]map[string]*flight{}
	rows, err := green.Query(ctx, snapshotSessionsQuery, names)
	if err != nil {
		return nil, fmt.Errorf("read the snapshot copies on green: %w", err)
	}
	for rows.Next() {
		var app, table string
		var n int64
		if err := rows.Scan(&app, &table, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the snapshot copies on green: %w", err)
		}
		pub := pubOf[app]
		if running[pub] == nil {
			running[pub] = map[string]*flight{}
		}
		if table == "" {
			continue
		}
		// A split table has a COPY for each of its pieces in flight.
		if f := running[pub][table]; f != nil {
			f.rows += n
			f.copies++
		} else {
			running[pub][table] = &flight{rows: n, copies: 1}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the snapshot copies on green: %w", err)
	}
	var out []SubscriptionSync
	for _, pub := range pubs {
		inFlight, ok := running[pub]
		if !ok {
			continue
		}
		blueSize, tables, err := namedSizes(ctx, blue, publicationSizesQuery, pub)
		if err != nil {
			return nil, fmt.Errorf("read the tables of publication %s on blue: %w", pub, err)
		}
		greenSize, _, err := namedSizes(ctx, green, greenSizesQuery, tables)
		if err != nil {
			return nil, fmt.Errorf("read the tables of publication %s on green: %w", pub, err)
		}
		s := SubscriptionSync{Name: pub, Snapshot: true, LagSeconds: -1, TablesTotal: len(tables)}
		empty, left := 0, false
		for _, t := range tables {
			b, g := blueSize[t], greenSize[t]
			s.BytesTotal += b
			switch f := inFlight[t]; {
			case f != nil:
				s.BytesDone += min(g, b)
				s.InFlight = append(s.InFlight, TableCopy{Table: t, BytesDone: min(g, b), BytesTotal: b, Rows: f.rows, State: "d", Ranges: f.copies})
				left = true
			case b == 0:
				empty++ // nothing to copy: done with the last of the others, as the copy counts them
			case g > 0:
				s.TablesDone++
				s.BytesDone += b
			default:
				left = true
			}
		}
		if !left {
			s.TablesDone += empty
		}
		out = append(out, s)
	}
	return out, nil
}

// namedSizes runs a query of (name, bytes) rows and returns them by name,
// with the names in order.
func namedSizes(ctx context.Context, pool *pgxpool.Pool, query string, arg any) (map[string]int64, []string, error) {
	rows, err := pool.Query(ctx, query, arg)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	var names []string
	for rows.Next() {
		var n string
		var b int64
		if err := rows.Scan(&n, &b); err != nil {
			return nil, nil, err
		}
		out[n] = b
		names = append(names, n)
	}
	return out, names, rows.Err()
}

// ReadSyncSample reads green (subscriptions, tables, copies in flight) and
// blue (table sizes, slot lag, walsender lag) once.
func ReadSyncSample(ctx context.Context, green, blue *pgxpool.Pool, src SyncSources) (SyncSample, error) {
	out := SyncSample{At: time.Now()}
	rows, err := green.Query(ctx, syncTablesQuery, src.Subscriptions)
	if err != nil {
		return out, fmt.Errorf("read the initial sync on green: %w", err)
	}
	type tableRow struct {
		sub, table, state string
		size, rows        int64
	}
	var tables []tableRow
	subs := map[string]*SubscriptionSync{}
	oids := map[uint32]string{}
	var order []string
	for rows.Next() {
		var t tableRow
		var oid uint32
		var enabled, running bool
		if err := rows.Scan(&t.sub, &oid, &enabled, &running, &t.table, &t.state, &t.size, &t.rows); err != nil {
			rows.Close()
			return out, fmt.Errorf("read the initial sync on green: %w", err)
		}
		if subs[t.sub] == nil {
			subs[t.sub] = &SubscriptionSync{Name: t.sub, Enabled: enabled, WorkerRunning: running, LagSeconds: -1}
			oids[oid] = t.sub
			order = append(order, t.sub)
		}
		if t.table != "" {
			tables = append(tables, t)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("read the initial sync on green: %w", err)
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.table
	}
	size := map[string]int64{}
	if blue != nil && len(names) > 0 {
		rows, err := blue.Query(ctx, blueSizesQuery, names)
		if err != nil {
			return out, fmt.Errorf("read table sizes on blue: %w", err)
		}
		for rows.Next() {
			var n string
			var b int64
			if err := rows.Scan(&n, &b); err != nil {
				rows.Close()
				return out, fmt.Errorf("read table sizes on blue: %w", err)
			}
			size[n] = b
		}
		rows.Close()
	}
	for _, t := range tables {
		s := subs[t.sub]
		s.TablesTotal++
		s.BytesTotal += size[t.table]
		switch t.state {
		case "r", "s":
			s.TablesDone++
			s.BytesDone += size[t.table]
		case "d", "f":
			done := min(t.size, size[t.table])
			s.BytesDone += done
			s.InFlight = append(s.InFlight, TableCopy{Table: t.table, BytesDone: done, BytesTotal: size[t.table], Rows: t.rows, State: t.state})
		}
	}
	var snap []string
	for _, p := range src.Snapshot {
		if subs[p] == nil {
			snap = append(snap, p)
		}
	}
	copies, err := readSnapshotCopies(ctx, green, blue, snap)
	if err != nil {
		return out, err
	}
	for i := range copies {
		subs[copies[i].Name] = &copies[i]
		order = append(order, copies[i].Name)
	}
	if blue != nil {
		slotOf := map[string]string{}
		for sub, slot := range src.Slots {
			slotOf[slot] = sub
		}
		rows, err := blue.Query(ctx, blueLagQuery)
		if err != nil {
			return out, fmt.Errorf("read the slots on blue: %w", err)
		}
		for rows.Next() {
			var slot string
			var lag int64
			var sec float64
			if err := rows.Scan(&slot, &lag, &sec); err != nil {
				rows.Close()
				return out, fmt.Errorf("read the slots on blue: %w", err)
			}
			if sub, ok := slotOf[slot]; ok && subs[sub] != nil {
				subs[sub].LagBytes, subs[sub].LagSeconds = lag, sec
			} else if oid, ok := TableSyncSlotOf(slot); ok && subs[oids[oid]] != nil {
				subs[oids[oid]].SyncSlots = append(subs[oids[oid]].SyncSlots, slot)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return out, fmt.Errorf("read the slots on blue: %w", err)
		}
	}
	for _, n := range order {
		s := subs[n]
		sort.Slice(s.InFlight, func(i, j int) bool { return s.InFlight[i].BytesTotal > s.InFlight[j].BytesTotal })
		sort.Strings(s.SyncSlots)
		out.Subscriptions = append(out.Subscriptions, *s)
	}
	return out, nil
}

// SyncProgress is the initial sync and the catch-up as the gauge shows
// them: a phase, totals over every subscription, a rate and an ETA for the
// whole copy, and the lag once copied.
type SyncProgress struct {
	SyncSample
	// Phase is "not started" (no subscription enabled), "copying" (a table
	// is not copied yet) or "streaming" (every table copied: the lag says
	// how far green is).
	Phase       string `json:"phase"`
	TablesDone  int    `json:"tables_done"`
	TablesTotal int    `json:"tables_total"`
	BytesDone   int64  `json:"bytes_done"`
	BytesTotal  int64  `json:"bytes_total"`
	// BytesPerSec is the copy's rate over the last 30 s; ETASeconds the time
	// left at that rate (-1 when unknown).
	BytesPerSec float64 `json:"bytes_per_sec"`
	ETASeconds  float64 `json:"eta_seconds"`
	LagBytes    int64   `json:"lag_bytes"`
	LagSeconds  float64 `json:"lag_seconds"`
}

// syncRateWindow is how far back the rate looks.
const syncRateWindow = 30 * time.Second

// SyncTracker turns successive samples into progress with a rate.
type SyncTracker struct {
	hist []struct {
		at   time.Time
		done int64
	}
}

// Add takes one sample and returns the progress it shows.
func (t *SyncTracker) Add(s SyncSample) SyncProgress {
	p := SyncProgress{SyncSample: s, ETASeconds: -1}
	p.TablesDone, p.TablesTotal, p.BytesDone, p.BytesTotal, p.LagBytes, p.LagSeconds = s.totals()
	enabled := false
	for _, x := range s.Subscriptions {
		enabled = enabled || x.Enabled || x.Snapshot
	}
	switch {
	case !enabled:
		p.Phase = "not started"
	case p.TablesDone < p.TablesTotal:
		p.Phase = "copying"
	default:
		p.Phase = "streaming"
	}
	t.hist = append(t.hist, struct {
		at   time.Time
		done int64
	}{s.At, p.BytesDone})
	for len(t.hist) > 2 && s.At.Sub(t.hist[1].at) >= syncRateWindow {
		t.hist = t.hist[1:]
	}
	if first := t.hist[0]; s.At.Sub(first.at) > time.Second && p.BytesDone >= first.done {
		p.BytesPerSec = float64(p.BytesDone-first.done) / s.At.Sub(first.at).Seconds()
	}
	if p.Phase == "copying" && p.BytesPerSec > 0 {
		p.ETASeconds = float64(p.BytesTotal-p.BytesDone) / p.BytesPerSec
	}
	return p
}

// Line says the progress in one line, for run's output and `lag`.
func (p SyncProgress) Line() string {
	switch p.Phase {
	case "copying":
		pct := 0.0
		if p.BytesTotal > 0 {
			pct = 100 * float64(p.BytesDone) / float64(p.BytesTotal)
		}
		l := fmt.Sprintf("copying: %d/%d tables, %s of %s (%.0f%%)", p.TablesDone, p.TablesTotal, Bytes(p.BytesDone), Bytes(p.BytesTotal), pct)
		if p.BytesPerSec > 0 {
			l += fmt.Sprintf(", %s/s", Bytes(int64(p.BytesPerSec)))
		}
		if p.ETASeconds >= 0 {
			l += fmt.Sprintf(", ETA %s", (time.Duration(p.ETASeconds) * time.Second).String())
		}
		var flight []string
		var notLaunched []string
		for _, s := range p.Subscriptions {
			for _, t := range s.InFlight {
				flight = append(flight, fmt.Sprintf("%s %s of %s", t.Table, Bytes(t.BytesDone), Bytes(t.BytesTotal)))
			}
			if s.Enabled && !s.WorkerRunning {
				notLaunched = append(notLaunched, s.Name)
			}
		}
		if len(flight) > 3 {
			flight = append(flight[:3], fmt.Sprintf("%d more", len(flight)-3))
		}
		if len(flight) > 0 {
			l += "; in flight: " + strings.Join(flight, ", ")
		}
		if len(notLaunched) > 0 {
			l += "; apply worker not launched yet: " + strings.Join(notLaunched, ", ")
		}
		return l
	case "streaming":
		l := fmt.Sprintf("streaming: all %d tables copied; lag %s", p.TablesTotal, Bytes(p.LagBytes))
		if p.LagSeconds >= 0 {
			l += fmt.Sprintf(", %.1f s", p.LagSeconds)
		}
		return l
	default:
		return "initial sync not started: no subscription enabled"
	}
}

// Bytes says a size as pg_size_pretty does (1024-based, kB, MB, GB, TB),
// so what the screen, the log and the alerts say matches what an
// operator's psql shows: 96 kB, 2.7 MB, 139 MB, 2.5 GB.
func Bytes(n int64) string {
	if n < 0 {
		return "-" + Bytes(-n)
	}
	s := fmt.Sprintf("%d B", n)
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		if f < 1024 {
			break
		}
		f /= 1024
		if f >= 100 {
			s = fmt.Sprintf("%.0f %s", f, u)
		} else {
			s = fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return s
}
