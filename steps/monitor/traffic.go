package monitor

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
	"github.com/pgbluegreen/pgbluegreen/steps/cutover"
)

// ReadTraffic reads where the application's writes go, from the servers
// (PgBouncer's SHOW DATABASES, the application roles' LOGIN, read-only
// settings), for every database that moves: what `status` and the
// screen's status line say.
func ReadTraffic(ctx context.Context, c *config.Config, blue, green *pgxpool.Pool) cutover.Traffic {
	dbs, closeDBs, err := OpenDatabases(ctx, c, blue, green)
	if err != nil {
		return cutover.Traffic{Target: "unknown", How: state.Redact(err.Error()), ReadAt: time.Now().UTC()}
	}
	defer closeDBs()
	return ReadTrafficOf(ctx, c, dbs)
}

// ReadTrafficOf is ReadTraffic on databases already opened (a monitor's).
func ReadTrafficOf(ctx context.Context, c *config.Config, dbs []DatabasePools) cutover.Traffic {
	pools := make([]cutover.DatabasePools, len(dbs))
	for i, d := range dbs {
		pools[i] = cutover.DatabasePools{Name: d.Name, Blue: d.Blue, Green: d.Green}
	}
	p, err := cutover.FromConfig(c, pools)
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, c.Timeouts.Statement.Duration)
		err = p.AddWriters(wctx, false)
		cancel()
	}
	if err != nil {
		return cutover.Traffic{Target: "unknown", How: state.Redact(err.Error()), ReadAt: time.Now().UTC()}
	}
	return cutover.ReadTraffic(ctx, p)
}
