package steps

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/testhook"
)

// The cutover's parameters, from the configuration and the recorded values:
// the PgBouncers, the roles to fence, the health window, the hold of
// commits, and the test hook that holds a run at a named sub-step.

// reportDir is where reports go: next to the state file; without one (a
// test's bare Env), next to the configuration file; else the working folder.
func (e *Env) reportDir() string {
	if e.StateDir != "" {
		return e.StateDir
	}
	if e.Config != nil && e.Config.Path != "" {
		return filepath.Dir(e.Config.Path)
	}
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "."
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// cutoverParams maps the configuration onto pg.CutoverParams. With a
// connection to the direction's source, the fence roles are the writers
// found there, with those the last attempt fenced.
func (e *Env) cutoverParams(ctx context.Context, rollback bool) (pg.CutoverParams, error) {
	c := e.Config
	blueConninfo := c.Blue.Conninfo
	if c.Replication.BlueConninfo != "" {
		blueConninfo = c.Replication.BlueConninfo
	}
	blue, err := pg.EndpointOf(blueConninfo)
	if err != nil {
		return pg.CutoverParams{}, fmt.Errorf("blue's endpoint: %w", err)
	}
	green, err := pg.EndpointOf(c.Green.Conninfo)
	if err != nil {
		return pg.CutoverParams{}, fmt.Errorf("green's endpoint: %w", err)
	}
	p := pg.CutoverParams{
		Method: c.Cutover.Method, Blue: e.Blue, Green: e.Green,
		BlueEndpoint: blue, GreenEndpoint: green,
		Subscriptions:   c.publicationNames(),
		ReplicationRole: c.Replication.Role,
		AppRoles:        c.AppRoles, FenceRoles: c.AppRoles, TerminateDirect: c.Cutover.TerminateDirectSessions,
		MaxLagBytes: c.Cutover.MaxLagBytes, DrainTimeout: c.Cutover.DrainTimeout.Duration,
		SequenceMargin: c.Cutover.SequenceMargin, StatementTimeout: c.Timeouts.Statement.Duration,
		Health:      e.health(),
		HoldCommits: c.holdCommits(),
		OnSubStep:   e.onSubStep,
	}
	if a, ok := e.lastAttempt(cutoverStepID); ok {
		p.FenceRoles = union(p.FenceRoles, a.FenceRoles)
	}
	if c.Cutover.Method == "pgbouncer" {
		for _, b := range c.Cutover.PgBouncer {
			client, err := bouncerClientConninfo(b.AdminConninfo, b.Database, c.AppRoles)
			if err != nil {
				return pg.CutoverParams{}, fmt.Errorf("cutover.pgbouncer %s: %w", b.Name, err)
			}
			p.Bouncers = append(p.Bouncers, b.bouncerParams(client))
		}
	}
	if point := holdPoint(); point != "" {
		p.BeforeSubStep = e.holdAt(point)
	}
	source := e.Blue
	if rollback {
		source = e.Green
	}
	if source != nil {
		ctx, cancel := e.bounded(ctx)
		defer cancel()
		found, err := pg.WriterRoles(ctx, source, c.AppRoles, c.Replication.Role)
		if err != nil {
			return p, err
		}
		p.FenceRoles = union(p.FenceRoles, found)
	}
	return p, nil
}

// health is the precheck's judge of apply errors: the window from the
// configuration, the count last seen and when it was first seen.
func (e *Env) health() pg.Health {
	h := pg.Health{Window: e.Config.Cutover.HealthWindow.Duration}
	if h.Window <= 0 {
		h.Window = 10 * time.Minute
	}
	if v, ok := e.Value(SubscriptionErrorsKey); ok {
		count, at, _ := strings.Cut(v, " since ")
		fmt.Sscan(count, &h.Known)
		h.KnownAt, _ = time.Parse(time.RFC3339, at)
	}
	return h
}

// SubscriptionErrorsKey records the forward feed's apply and sync error
// count ("N since TIME", TIME when the count was first seen): the
// precheck judges errors by when they appeared, not by lifetime totals.
const SubscriptionErrorsKey = "subscription_errors"

// recordHealth records the error count when it changed.
func (e *Env) recordHealth(count int64) error {
	h := e.health()
	if _, ok := e.Value(SubscriptionErrorsKey); ok && count == h.Known {
		return nil
	}
	return e.Record(SubscriptionErrorsKey, fmt.Sprintf("%d since %s", count, time.Now().UTC().Format(time.RFC3339)))
}

// holdPoint and hold are the kill tests' hook (package testhook): the
// point a run stops at, and the wait there. Both do nothing unless the
// binary is built with -tags pgbgtest; a test of this package that runs
// the cutover in process sets its own.
var holdPoint, hold = testhook.HoldAt, testhook.Hold

// holdAt holds before the named sub-step (hold, beside the state file)
// until ctx ends.
func (e *Env) holdAt(name string) func(ctx context.Context, step string) {
	return func(ctx context.Context, step string) {
		if step != name {
			return
		}
		hold(ctx.Done(), e.reportDir(), step)
	}
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

// bouncerName names a PgBouncer in plans, reports and the journal: its
// configured name, else its console's host:port.
func bouncerName(b PgBouncerConfig) string {
	if b.Name != "" {
		return b.Name
	}
	if pc, err := pgconn.ParseConfig(b.AdminConninfo); err == nil {
		return fmt.Sprintf("%s:%d", pc.Host, pc.Port)
	}
	return b.Ini
}

// holdCommits is how long blue's commits may be held for green's apply
// before the pause: the configured time, else 2s on self-managed servers
// (the AWS strategies have no ALTER SYSTEM) and none on AWS. Measured on
// the lab (cutover benchmark, two PgBouncers), holding brought the lag at
// PAUSE from 230-500 kB to 0 and the pause from 105-121 ms to 58-62 ms
// at 200 and 1,000 writes/s, once the drain read green's apply position
// instead of waiting for its flush report, and the release moved after
// the RESUME. (Before those, held commits lengthened the pause.)
func (c *Config) holdCommits() time.Duration {
	if c.Cutover.HoldCommits != nil {
		return c.Cutover.HoldCommits.Duration
	}
	if c.isAWS() {
		return 0
	}
	return 2 * time.Second
}
