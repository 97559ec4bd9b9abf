package steps

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// A run moves databases: blue.conninfo's (the primary) first, then the
// others, each with a pool on blue and one on green. The primary's pools
// are the runner's own; the others are opened like them (pg.PoolOn: the
// same role, settings, TLS and journal hook) when first needed, and closed
// by Close. Steps marked PerDatabase run in each one in turn, with an Env
// for that database.

// Database is one database that moves, with its pools (nil offline).
type Database struct {
	Name        string
	Blue, Green *pgxpool.Pool
}

// Databases are the databases the run moves, the primary first:
// configuration's databases, else every database of blue that accepts
// connections and holds a table of its own (templates, providers'
// internal databases and those listed in stay aside). Offline, without
// blue, they are the configured list or the primary alone.
func (r *Runner) Databases(ctx context.Context) ([]Database, error) {
	r.dbMu.Lock()
	defer r.dbMu.Unlock()
	if r.dbs != nil {
		return r.dbs, nil
	}
	names, err := r.databaseNames(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Database, 0, len(names))
	for _, n := range names {
		d := Database{Name: n, Blue: r.Blue, Green: r.Green}
		if n != r.Config.PrimaryDatabase() {
			if d.Blue, err = r.poolOn(r.Blue, n); err == nil {
				d.Green, err = r.poolOn(r.Green, n)
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, d)
	}
	if r.Blue != nil {
		r.dbs = out // offline lists are not kept: a later run with blue reads it
	}
	return out, nil
}

// databaseNames resolves the list of names.
func (r *Runner) databaseNames(ctx context.Context) ([]string, error) {
	c := r.Config
	primary := c.PrimaryDatabase()
	if len(c.Databases) > 0 {
		out := []string{primary}
		for _, d := range c.Databases {
			if d != primary {
				out = append(out, d)
			}
		}
		return out, nil
	}
	if r.Blue == nil {
		return []string{primary}, nil
	}
	found, err := monitor.ReadBlueDatabases(ctx, c, r.Blue, pg.PoolOn)
	if err != nil {
		return nil, fmt.Errorf("databases is omitted (every database of blue with a table) and blue's databases could not be read: %w; blue must be reachable, or list databases in the configuration", err)
	}
	return monitor.Moving(c, found), nil
}

// poolOn opens a pool like p on database db (nil for nil: offline).
func (r *Runner) poolOn(p *pgxpool.Pool, db string) (*pgxpool.Pool, error) {
	if p == nil {
		return nil, nil
	}
	pool, err := pg.PoolOn(p, db)
	if err == nil {
		r.opened = append(r.opened, pool)
	}
	return pool, err
}

// Close closes the pools the runner opened for databases other than the
// primary (the primary's belong to whoever built the runner).
func (r *Runner) Close() {
	r.dbMu.Lock()
	defer r.dbMu.Unlock()
	for _, p := range r.opened {
		p.Close()
	}
	r.opened, r.dbs = nil, nil
}

// forDatabase is e for database d: its pools, its name, and the values a
// step records there (dbKey).
func (e *Env) forDatabase(d Database) *Env {
	c := *e
	c.Blue, c.Green, c.DB = d.Blue, d.Green, d.Name
	if e.IsOffline() {
		c.Blue, c.Green = nil, nil
	}
	if e.Config != nil {
		cfg := e.Config.ForDatabase(d.Name)
		if cfg.SchemasFromBlue || d.Name != cfg.PrimaryDatabase() {
			// Each database's own schemas are read (withSchemas): schemas,
			// when the file lists them, are blue.conninfo's database's.
			cfg.Schemas, cfg.SchemasFromBlue = nil, false
		}
		c.Config = cfg
		c.withCopyModes()
	}
	return &c
}

// perDatabaseKeys are the values a step records once per database; in
// another database's Env they are that database's alone, never the
// primary's.
var perDatabaseKeys = []string{"slot_lsn", "replica_identity_full_tables", "extensions_upgraded",
	"matviews_refreshed_at", "large_objects_digest", "large_objects_digest_green", "unlogged_tables_copied_at"}

// perDatabaseKey reports whether key is recorded once per database.
func perDatabaseKey(key string) bool {
	return slices.Contains(perDatabaseKeys, key) || strings.HasPrefix(key, "slot_lsn.") || strings.HasPrefix(key, "snapshot_copy.") || strings.HasPrefix(key, "copy_mode.")
}

// dbKey is where key is kept for e's database: as it is for the primary
// database (and a step of the whole cluster), key@database for another.
func (e *Env) dbKey(key string) string {
	if e.DB == "" || e.Config == nil || e.DB == e.Config.PrimaryDatabase() {
		return key
	}
	return key + "@" + e.DB
}

// valuesIn are the values of key in every database: the primary's under
// key, another's under key@database.
func valuesIn(values map[string]string, key string) map[string]string {
	out := map[string]string{}
	for k, v := range values {
		if k == key {
			out[""] = v
		} else if db, ok := strings.CutPrefix(k, key+"@"); ok {
			out[db] = v
		}
	}
	return out
}

// databaseNames are the names of the databases the step sees (Databases).
func (e *Env) databaseNames(ctx context.Context) ([]string, error) {
	dbs, err := e.Databases(ctx)
	names := make([]string, len(dbs))
	for i, d := range dbs {
		names[i] = d.Name
	}
	return names, err
}

// slotsNeeded is the slots and walsenders blue needs for every database
// that moves (config.SlotsNeeded).
func (e *Env) slotsNeeded(ctx context.Context, syncWorkers int) (int, error) {
	names, err := e.databaseNames(ctx)
	return e.Config.SlotsNeeded(names, syncWorkers), err
}

// database is the database e acts in: its own, or blue.conninfo's for a
// step of the whole cluster.
func (e *Env) database() string {
	if e.DB != "" {
		return e.DB
	}
	return e.Config.PrimaryDatabase()
}
