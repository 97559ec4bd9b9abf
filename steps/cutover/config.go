package cutover

import (
	"context"
	"fmt"
	"net/url"
	"slices"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// DatabasePools are one moving database's pools on each side (either may
// be nil: a plan made offline).
type DatabasePools struct {
	Name        string
	Blue, Green *pgxpool.Pool
}

// FromConfig maps the configuration onto Params: the method, the moving
// databases with their pools (dbs, the primary database first) and their
// feeds' names (each database's publications, the feeds named by
// FeedName, the reverse feed by ReverseName), each side's endpoint as
// PgBouncer points at it, the PgBouncers with the connection string their
// probes use, the roles and every bound. The caller adds what its state
// knows (the health record, the roles an earlier attempt fenced, the
// fences in force, hooks), and AddWriters the roles that write on the
// source now.
func FromConfig(c *config.Config, dbs []DatabasePools) (Params, error) {
	blueConninfo := c.Blue.Conninfo
	if c.Replication.BlueConninfo != "" {
		blueConninfo = c.Replication.BlueConninfo
	}
	blueAt, err := pg.EndpointOf(blueConninfo)
	if err != nil {
		return Params{}, fmt.Errorf("blue's endpoint: %w", err)
	}
	greenAt, err := pg.EndpointOf(c.Green.Conninfo)
	if err != nil {
		return Params{}, fmt.Errorf("green's endpoint: %w", err)
	}
	p := Params{
		Method:       c.Cutover.Method,
		BlueEndpoint: blueAt, GreenEndpoint: greenAt,
		ReplicationRole: c.Replication.Role,
		AppRoles:        c.AppRoles, FenceRoles: c.AppRoles, TerminateDirect: c.Cutover.TerminateDirectSessions,
		MaxLagBytes: c.Cutover.MaxLagBytes, DrainTimeout: c.Cutover.DrainTimeout.Duration,
		PauseTimeout: c.Cutover.PauseTimeout.Duration, WayOutLagWait: c.Cutover.WayOutLagWait.Duration, Window: c.Cutover.Window.Duration, PauseBudget: c.Cutover.PauseBudget.Duration,
		SequenceMargin: c.Cutover.SequenceMargin, StatementTimeout: c.Timeouts.Statement.Duration,
		Health:      Health{Window: c.Cutover.HealthWindow.Duration},
		HoldCommits: c.HoldCommits(),
	}
	for _, db := range dbs {
		var subs []string
		for _, pub := range c.PublicationsOf(db.Name) {
			subs = append(subs, c.FeedName(db.Name, pub.Name))
		}
		p.Databases = append(p.Databases, Database{Name: db.Name, Blue: db.Blue, Green: db.Green,
			Subscriptions: subs, Reverse: c.ReverseName(db.Name)})
	}
	if c.Cutover.Method == MethodPgBouncer {
		for _, b := range c.Cutover.PgBouncer {
			client, err := bouncerClientConninfo(b.AdminConninfo, b.Database, c.AppRoles)
			if err != nil {
				return Params{}, fmt.Errorf("cutover.pgbouncer %s: %w", b.Name, err)
			}
			p.Bouncers = append(p.Bouncers, b.BouncerParams(client))
		}
	}
	return p, nil
}

// AddWriters adds to FenceRoles every role that writes on the direction's
// source now, in any moving database (pg.WriterRoles), when there are
// pools to read it from.
func (p *Params) AddWriters(ctx context.Context, rollback bool) error {
	read := false
	for _, db := range p.Databases {
		source := db.Blue
		if rollback {
			source = db.Green
		}
		if source == nil {
			continue
		}
		read = true
		found, err := pg.WriterRoles(ctx, source, p.AppRoles, p.ReplicationRole)
		if err != nil {
			return fmt.Errorf("database %s: %w", db.Name, err)
		}
		for _, r := range found {
			if !slices.Contains(p.FenceRoles, r) {
				p.FenceRoles = append(p.FenceRoles, r)
			}
		}
	}
	if read {
		slices.Sort(p.FenceRoles)
	}
	return nil
}

// bouncerClientConninfo connects through PgBouncer as an application does:
// the admin console's host and port, the served database, the first
// application role (password from PGPASSWORD or the passfile, as libpq).
// Later keywords win in a libpq string, so they are appended.
func bouncerClientConninfo(admin, db string, appRoles []string) (string, error) {
	if len(appRoles) == 0 {
		return "", fmt.Errorf("app_roles is empty: the version check and the probes connect through PgBouncer as the first application role")
	}
	if _, err := pgconn.ParseConfig(admin); err != nil {
		return "", fmt.Errorf("admin_conninfo: %w", err)
	}
	if u, err := url.Parse(admin); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + db
		u.User = url.User(appRoles[0])
		return u.String(), nil
	}
	return admin + " dbname=" + pg.QuoteConninfoValue(db) + " user=" + pg.QuoteConninfoValue(appRoles[0]), nil
}
