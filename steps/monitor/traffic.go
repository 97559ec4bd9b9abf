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
// settings): what `status` and the screen's status line say.
func ReadTraffic(ctx context.Context, c *config.Config, blue, green *pgxpool.Pool) cutover.Traffic {
	p, err := cutover.FromConfig(c, []cutover.DatabasePools{{Name: c.PrimaryDatabase(), Blue: blue, Green: green}})
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
