package steps

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// preflight: every check that can be made before anything changes, each a
// PASS, WARN or FAIL line with its fix. A FAIL stops `run --through` here,
// with blue and green unchanged. The reads are pg's (PreflightParams); the
// judgments, which name the later step each one protects, are here
// (preflight_checks.go).

// Thresholds of preflight's warnings.
const (
	// longTransaction is how long a transaction may be open on blue before
	// preflight names it: create-slots waits for it, PgBouncer's PAUSE
	// stalls behind it.
	longTransaction = time.Minute
	// sequenceNearMax is the share of its range a sequence may have used
	// before preflight names it.
	sequenceNearMax = 0.8
)

func preflight() *Step {
	return &Step{ID: "preflight", Phase: PhasePrepare, Target: BlueGreen, Title: "Preflight checks",
		Why:    "Read-only checks of versions, settings, privileges, roles, tables, extensions and sessions, each with its fix, before anything is changed.",
		Source: "000, 001 §6", Records: []string{"blue_version", "green_version"},
		Plan: withAWSPreflight(planPreflight),
		// Read-only: never found done, so an interrupted one simply runs again.
		Check: alwaysRuns("read-only checks, run every time; their PASS/WARN/FAIL lines are in the log"),
		Run:   runPreflight,
	}
}

func preflightParams(c *config.Config) pg.PreflightParams {
	return pg.PreflightParams{Schemas: c.Schemas, Role: c.Replication.Role, LongTransaction: longTransaction, NearMax: sequenceNearMax}
}

// planPreflight lists the reads preflight makes (the same statements
// pg.ReadBlue and pg.ReadGreen run), the replication role's login and the
// PgBouncer consoles it tries.
func planPreflight(_ context.Context, e *Env) ([]Action, error) {
	c := e.Config
	p := preflightParams(c)
	out := []Action{note(BlueGreen, "reads only; each check is a PASS, WARN or FAIL line with its fix; a FAIL stops here with nothing changed")}
	out = append(out, note(Blue, "every database of blue read (pg_database, pg_stat_activity; in each, its tables and whether they have rows): each moves, stays (listed in stay, with its reason), or is the server's or the provider's own; any other with rows or sessions is a FAIL naming it, its size and its sessions"))
	out = append(out, stmts(p.BlueReads(0)...)...)
	out = append(out, stmts(p.GreenReads(0, nil)...)...)
	if c.CopyData() {
		out = append(out, stmts(pg.Stmt{On: "blue", SQL: pg.TableSizesQuery, Args: []any{p.Schemas}, Note: "where each publication's initial copy flows, and how much"})...)
		if len(c.SnapshotPublications()) > 0 {
			out = append(out, stmts(pg.ReadRateStmt(pg.SizedTable{}, readRateSample))...)
		}
	}
	out = append(out, note(Blue, "log in once as %s with the password from %s through '%s' (the connection string green's subscriptions will use), tried from this host",
		c.Replication.Role, c.Replication.Password.Describe(), c.SubscriptionConninfo()))
	out = append(out, note(BlueGreen, "the reads above, in each other database that moves: its schemas, publications, tables, sequences and extensions"))
	for _, b := range c.Cutover.PgBouncer {
		out = append(out, note(PgBouncer, "connect to PgBouncer %s's admin console, SHOW DATABASES, and read its ini where the cutover changes it (%s): they must agree", orPlaceholder(b.Name, b.Ini), b.BouncerParams("").IniMethod()))
	}
	return out, nil
}

// preflightReport collects pass/warn/fail lines.
type preflightReport struct {
	e      *Env
	checks int
	fails  []string
	// dbs are the databases that move; db, in a report of one database's
	// checks, names it in each line.
	dbs []string
	db  string
}

// in says which database a line is about ("" for the cluster).
func (r *preflightReport) in() string {
	if r.db == "" {
		return ""
	}
	return "[" + r.db + "] "
}

func (r *preflightReport) pass(format string, args ...any) {
	r.checks++
	r.e.Logf("PASS "+r.in()+format, args...)
}

func (r *preflightReport) warn(format string, args ...any) {
	r.checks++
	r.e.Warnf("WARN "+r.in()+format, args...)
}

func (r *preflightReport) fail(format string, args ...any) {
	r.checks++
	msg := r.in() + fmt.Sprintf(format, args...)
	r.e.log("error", "FAIL %s", msg)
	r.fails = append(r.fails, msg)
}

func (r *preflightReport) err() error {
	if len(r.fails) == 0 {
		return nil
	}
	return fmt.Errorf("%s, nothing was changed: %s", plural(len(r.fails), "blocker"), strings.Join(r.fails, "; "))
}

func runPreflight(ctx context.Context, e *Env) error {
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	r := &preflightReport{e: e}
	c := e.Config
	p := preflightParams(c)
	if err := e.needBlue(); err != nil {
		r.fail("%s", err)
		return r.err()
	}
	b, err := pg.ReadBlue(ctx, e.Blue, p)
	if err != nil {
		if pg.IsConnectError(err) {
			r.fail("blue is not reachable: %v; check blue.conninfo (host, port, user, password or .pgpass, pg_hba.conf) and that the server runs", err)
		} else {
			r.fail("reading blue: %v", err)
		}
		return r.err()
	}
	r.pass("blue reachable: PostgreSQL %s, as user %s on database %s", b.Settings.Version, b.Privileges.User, b.Privileges.Database)
	if err := e.Record("blue_version", b.Settings.Version); err != nil {
		return err
	}
	var g *pg.GreenFacts
	if e.Green == nil {
		r.fail("%s", e.needGreen())
	} else if gf, err := pg.ReadGreen(ctx, e.Green, p, collationNames(b.Collations)); err != nil {
		switch {
		case c.IsCloneStrategy() && pg.IsConnectError(err):
			// Green is made later from blue (clone-local, clone-cluster,
			// restore-green): nothing to check on it yet.
			r.warn("green is not reachable (%v): with strategy %s it is made later from blue; green's checks are skipped", err, c.Strategy)
		case pg.IsConnectError(err):
			r.fail("green is not reachable: %v; check green.conninfo (host, port, user, password or .pgpass, pg_hba.conf) and that the server runs", err)
		default:
			r.fail("reading green: %v", err)
		}
	} else {
		g = &gf
		r.pass("green reachable: PostgreSQL %s, as user %s on database %s", g.Settings.Version, g.Privileges.User, g.Privileges.Database)
		if err := e.Record("green_version", g.Settings.Version); err != nil {
			return err
		}
	}
	if r.dbs, err = e.databaseNames(ctx); err != nil {
		r.fail("%v", err)
		return r.err()
	}
	r.databases(ctx)
	r.settings(b, g)
	r.schemas(ctx, b)
	r.publications(b)
	r.replicationRole(ctx, b)
	r.bluePrivileges(b)
	r.greenPrivileges(g)
	r.tables(b, g)
	r.sequences(b)
	r.extensions(b, g)
	r.longTransactions(b)
	r.collations(b, g)
	r.syncWorkers(ctx, g)
	r.pgbouncers(ctx)
	r.otherDatabases(ctx)
	if c.IsAWS() {
		if err := e.awsPreflight(ctx, r); err != nil {
			return err
		}
	}
	e.Logf("preflight: %d checks, %d FAIL", r.checks, len(r.fails))
	return r.err()
}

// syncWorkers says how the initial sync's table copies will run in
// parallel (copy strategy), warning where green's settings hold it back.
func (r *preflightReport) syncWorkers(ctx context.Context, g *pg.GreenFacts) {
	if g == nil {
		return
	}
	line, warn, err := r.e.syncWorkerAdvice(ctx)
	switch {
	case err != nil:
		r.warn("initial sync: its workers could not be planned: %v", err)
	case line == "":
	case warn:
		r.warn("%s", line)
	default:
		r.pass("%s", line)
	}
	warns, err := r.e.snapshotCopyAdvice(ctx)
	if err != nil {
		r.warn("copy-data: its sessions could not be planned: %v", err)
	}
	for _, w := range warns {
		r.warn("%s", w)
	}
	lines, slow, err := r.e.copyFlowAdvice(ctx)
	if err != nil {
		r.warn("initial copy: where its bytes flow could not be read: %v", err)
	}
	for i, l := range lines {
		if slow[i] {
			r.warn("%s", l)
		} else {
			r.pass("%s", l)
		}
	}
}

func collationNames(cs []pg.CollationUse) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

// settings judges the servers' replication settings.
func (r *preflightReport) settings(b pg.BlueFacts, g *pg.GreenFacts) {
	c := r.e.Config
	if g != nil && g.Settings.VersionNum/10000 <= b.Settings.VersionNum/10000 {
		r.warn("green (%s) is not a newer major than blue (%s): this is not an upgrade", g.Settings.Version, b.Settings.Version)
	}
	if b.Settings.WALLevel != "logical" {
		r.fail("blue wal_level = %s: run enable-logical-replication (ALTER SYSTEM SET wal_level = logical, then restart blue)", b.Settings.WALLevel)
	} else {
		r.pass("blue wal_level = logical")
	}
	syncWorkers := 2 // PostgreSQL's default, until green exists
	if g != nil {
		syncWorkers = g.Settings.MaxSyncWorkersPerSubscription
	}
	need := c.SlotsNeeded(r.dbs, syncWorkers)
	if free := b.Settings.MaxReplicationSlots - b.Settings.SlotsUsed; free < need {
		r.fail("blue max_replication_slots = %d with %d in use: %d more needed (%d feeds in %s%s); raise it and restart blue", b.Settings.MaxReplicationSlots, b.Settings.SlotsUsed, need, c.SlotsNeeded(r.dbs, 0), plural(len(r.dbs), "database"), syncNote(c))
	} else {
		r.pass("blue max_replication_slots = %d (%d in use, %d needed)", b.Settings.MaxReplicationSlots, b.Settings.SlotsUsed, need)
	}
	if b.Settings.MaxWALSenders < need {
		r.fail("blue max_wal_senders = %d, %d needed: raise it and restart blue", b.Settings.MaxWALSenders, need)
	} else {
		r.pass("blue max_wal_senders = %d (%d needed)", b.Settings.MaxWALSenders, need)
	}
	if g == nil {
		return
	}
	// Green, the subscriber, runs one apply worker per subscription plus the sync workers.
	if g.Settings.MaxLogicalReplicationWorkers < need {
		r.warn("green max_logical_replication_workers = %d, %d wanted: the initial sync runs slower; raise it and restart green", g.Settings.MaxLogicalReplicationWorkers, need)
	} else {
		r.pass("green max_logical_replication_workers = %d (%d wanted)", g.Settings.MaxLogicalReplicationWorkers, need)
	}
	if g.Settings.MaxWorkerProcesses < need+1 {
		r.warn("green max_worker_processes = %d, at least %d wanted: raise it and restart green", g.Settings.MaxWorkerProcesses, need+1)
	} else {
		r.pass("green max_worker_processes = %d", g.Settings.MaxWorkerProcesses)
	}
}

func syncNote(c *config.Config) string {
	if c.CopyData() {
		return " plus the initial sync's temporary slots"
	}
	return ""
}

// pgbouncers: every PgBouncer the cutover will drive must answer on its
// console, and its ini be readable where the cutover changes it.
func (r *preflightReport) pgbouncers(ctx context.Context) {
	c := r.e.Config
	for _, b := range c.Cutover.PgBouncer {
		con, err := pg.ConnectConsole(ctx, b.Name, b.AdminConninfo, c.Timeouts.Connect.Duration)
		if err != nil {
			r.warn("PgBouncer %s console not reachable: %v; the cutover needs it: check cutover.pgbouncer admin_conninfo and admin_users", b.Name, err)
			continue
		}
		served, err := con.Database(ctx, b.Database)
		con.Close()
		if err != nil {
			r.warn("PgBouncer %s console reachable, but %v", b.Name, err)
			continue
		}
		r.iniAgrees(ctx, b, served)
	}
}

// iniAgrees reads one PgBouncer's ini where the cutover will change it
// (a local file, over SSH, or its read_command), hours before the
// cutover needs it: a wrong key, host key or path is found now. Its entry
// must point where SHOW DATABASES says PgBouncer serves, or a later RELOAD
// would move the traffic.
func (r *preflightReport) iniAgrees(ctx context.Context, b config.PgBouncerConfig, served pg.BouncerDatabase) {
	store := b.BouncerParams("").NewIniStore()
	defer store.Close()
	entry, err := store.ReadEntry(ctx, b.Database)
	serves := fmt.Sprintf("%s:%d", served.Host, served.Port)
	switch {
	case errors.Is(err, pg.ErrIniUnreadable):
		r.pass("PgBouncer %s console reachable, serving %s to %s; its ini cannot be read here (no ini path or read_command): SHOW DATABASES is the only witness", b.Name, b.Database, serves)
	case err != nil:
		r.fail("PgBouncer %s: its ini (%s) cannot be read: %v; the cutover changes it there: fix cutover.pgbouncer[].ini, its ssh settings or read_command", b.Name, store.Where(), err)
	case entry.Get("host")+":"+or(entry.Get("port"), "5432") != serves:
		r.fail("PgBouncer %s: its ini (%s) points %s at %s:%s while SHOW DATABASES says %s: a RELOAD would move the traffic; make them agree (edit the ini, or RELOAD if the ini is right)", b.Name, store.Where(), b.Database, entry.Get("host"), entry.Get("port"), serves)
	default:
		r.pass("PgBouncer %s console reachable; its ini (%s, read by %s) agrees with SHOW DATABASES: %s -> %s", b.Name, store.Where(), store.Method(), b.Database, serves)
	}
}

// quotedList renders names for a message, quoted where SQL would quote them.
func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = pg.Ident(n)
		if q[i] == `"`+n+`"` && config.ValidName(n) && strings.ToLower(n) == n {
			q[i] = n
		}
	}
	sort.Strings(q)
	return strings.Join(q, ", ")
}
