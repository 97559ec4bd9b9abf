package monitor

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// BlueDatabase is one database of blue, as the run sees it: whether it
// moves, stays (and why), or is left out, and what it holds.
type BlueDatabase struct {
	pg.DatabaseFacts
	Content pg.DatabaseContent
	// Reason says why a database that does not move is left: "stays: ..."
	// (listed in stay), "template", "no connections allowed", "the
	// provider's own", or "" for one that would move.
	Reason string
}

// ReadBlueDatabases reads every database of blue, and what each that
// could move holds (a pool on each, closed again).
func ReadBlueDatabases(ctx context.Context, c *config.Config, blue *pgxpool.Pool, poolOn func(*pgxpool.Pool, string) (*pgxpool.Pool, error)) ([]BlueDatabase, error) {
	facts, err := pg.ReadDatabases(ctx, blue)
	if err != nil {
		return nil, err
	}
	var out []BlueDatabase
	for _, f := range facts {
		d := BlueDatabase{DatabaseFacts: f}
		reason, stays := c.Staying(f.Name)
		switch {
		case f.Template:
			d.Reason = "template"
		case !f.AllowConn:
			d.Reason = "no connections allowed"
		case slices.Contains(config.ProviderDatabases, f.Name):
			d.Reason = "the provider's own"
		case stays:
			d.Reason = "stays: " + reason
		}
		if d.Reason == "" || stays {
			pool := blue
			if f.Name != c.PrimaryDatabase() {
				if pool, err = poolOn(blue, f.Name); err != nil {
					return nil, err
				}
			}
			d.Content, err = pg.ReadDatabaseContent(ctx, pool)
			if pool != blue {
				pool.Close()
			}
			if err != nil {
				return nil, fmt.Errorf("database %s: %w", f.Name, err)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// DatabaseStatus is one database of blue as `status` reports it: what
// becomes of it, what it holds, and its feeds.
type DatabaseStatus struct {
	Name string `json:"name"`
	// Fate is "moves", "stays" (listed in stay) or "left out" (a
	// template, the provider's own, no connections, or nothing to move).
	Fate string `json:"fate"`
	// Reason says why it stays or is left out.
	Reason         string `json:"reason,omitempty"`
	SizeBytes      int64  `json:"size_bytes"`
	Sessions       int    `json:"sessions"`
	Tables         int    `json:"tables"`
	TablesWithRows int    `json:"tables_with_rows"`
	// Feeds are its slots on blue and green (the forward feed, and the
	// reverse one after a cutover), each with its lag.
	Feeds []pg.SlotLag `json:"feeds"`
}

// Moving says which of blue's databases move: the configured list, else
// every one that accepts connections and holds a table of its own (not a
// template, not the provider's own, not staying); blue.conninfo's always,
// first.
func Moving(c *config.Config, all []BlueDatabase) []string {
	primary := c.PrimaryDatabase()
	out := []string{primary}
	if len(c.Databases) > 0 {
		for _, d := range c.Databases {
			if d != primary {
				out = append(out, d)
			}
		}
		return out
	}
	for _, d := range all {
		if d.Name != primary && d.Reason == "" && d.Content.Tables > 0 {
			out = append(out, d.Name)
		}
	}
	return out
}

// ReadDatabaseStatus reads every database of blue with its fate and, from
// the lag sample, its feeds.
func ReadDatabaseStatus(ctx context.Context, c *config.Config, blue *pgxpool.Pool, lag pg.LagSample) ([]DatabaseStatus, error) {
	all, err := ReadBlueDatabases(ctx, c, blue, pg.PoolOn)
	if err != nil {
		return nil, err
	}
	moving := Moving(c, all)
	out := make([]DatabaseStatus, 0, len(all))
	for _, d := range all {
		s := DatabaseStatus{Name: d.Name, SizeBytes: d.SizeBytes, Sessions: d.Sessions, Tables: d.Content.Tables,
			TablesWithRows: d.Content.TablesWithRows, Feeds: []pg.SlotLag{}}
		switch reason, stays := c.Staying(d.Name); {
		case slices.Contains(moving, d.Name):
			s.Fate = "moves"
		case stays:
			s.Fate, s.Reason = "stays", reason
		case d.Reason != "":
			s.Fate, s.Reason = "left out", d.Reason
		default:
			s.Fate, s.Reason = "left out", "nothing to move"
			if d.Content.TablesWithRows > 0 || d.Sessions > 0 {
				s.Reason = "not listed: preflight refuses while it has rows or sessions"
			}
		}
		for _, sl := range lag.Slots {
			if sl.Database == d.Name {
				s.Feeds = append(s.Feeds, sl)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// DatabasePools is one database that moves, with a pool on each side.
type DatabasePools struct {
	Name        string
	Blue, Green *pgxpool.Pool
}

// OpenDatabases lists the databases that move (Moving) and opens a pool
// on each side for every one but blue.conninfo's, whose pools are blue
// and green themselves. close closes what it opened.
func OpenDatabases(ctx context.Context, c *config.Config, blue, green *pgxpool.Pool) (dbs []DatabasePools, close func(), err error) {
	var opened []*pgxpool.Pool
	close = func() {
		for _, p := range opened {
			p.Close()
		}
	}
	names := []string{c.PrimaryDatabase()}
	if len(c.Databases) > 0 || blue == nil {
		names = Moving(c, nil)
	} else {
		all, err := ReadBlueDatabases(ctx, c, blue, pg.PoolOn)
		if err != nil {
			return nil, close, err
		}
		names = Moving(c, all)
	}
	for _, n := range names {
		d := DatabasePools{Name: n, Blue: blue, Green: green}
		if n != c.PrimaryDatabase() {
			for _, side := range []**pgxpool.Pool{&d.Blue, &d.Green} {
				if *side == nil {
					continue
				}
				p, err := pg.PoolOn(*side, n)
				if err != nil {
					close()
					return nil, func() {}, err
				}
				opened = append(opened, p)
				*side = p
			}
		}
		dbs = append(dbs, d)
	}
	return dbs, close, nil
}

// ReadDriftAll is ReadDrift in every database that moves, as one: each
// other database's differences marked [database], the objects summed.
func ReadDriftAll(ctx context.Context, c *config.Config, dbs []DatabasePools) (Drift, error) {
	var all Drift
	for i, d := range dbs {
		cfg := c.ForDatabase(d.Name)
		if d.Name != c.PrimaryDatabase() {
			cfg.Schemas = nil // another database's schemas are all of its own
		}
		one, err := ReadDrift(ctx, cfg, d.Blue, d.Green)
		if err != nil {
			return all, fmt.Errorf("database %s: %w", d.Name, err)
		}
		if i == 0 {
			all = one
			continue
		}
		all.Compared = all.Compared || one.Compared
		all.Objects += one.Objects
		for _, s := range one.Schemas {
			all.Schemas = append(all.Schemas, d.Name+"."+s)
		}
		for _, l := range one.Differences {
			all.Differences = append(all.Differences, "["+d.Name+"] "+l)
		}
		all.Recording = all.Recording || one.Recording
		all.Recorded = append(all.Recorded, one.Recorded...)
		all.Took += one.Took
	}
	return all, nil
}
