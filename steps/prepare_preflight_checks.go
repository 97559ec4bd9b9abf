package steps

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// Preflight's judgments of what it read, one method per family of checks.

// inScope returns the set of replicated schemas.
func inScope(c *config.Config) map[string]bool {
	out := make(map[string]bool, len(c.Schemas))
	for _, s := range c.Schemas {
		out[s] = true
	}
	return out
}

// schemas: the listed schemas exist; a FOR ALL TABLES publication would
// publish no table outside them (green would not have those tables: the
// schema copy and the comparison cover the listed schemas only, and the
// subscription fails on them).
func (r *preflightReport) schemas(ctx context.Context, b pg.BlueFacts) {
	c := r.e.Config
	if c.SchemasFromBlue {
		r.pass("schemas: every schema of blue (schemas omitted): %s", quotedList(c.Schemas))
		return
	}
	scope := inScope(c)
	outside := map[string]int{}
	for _, t := range b.Tables {
		if !scope[t.Schema] && t.Published() {
			outside[t.Schema]++
		}
	}
	missing, err := pg.MissingSchemas(ctx, r.e.Blue, c.Schemas)
	switch {
	case err != nil:
		r.fail("%v", err)
	case len(missing) > 0:
		r.fail("schema %s (in schemas) does not exist on blue: fix schemas in the configuration, or omit it (every schema of blue)", quotedList(missing))
	default:
		r.pass("schemas %s exist on blue", quotedList(c.Schemas))
	}
	if c.HasDedicated() || len(outside) == 0 {
		return
	}
	names := make([]string, 0, len(outside))
	for s := range outside {
		names = append(names, s)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	total := 0
	for i, s := range names {
		parts[i] = fmt.Sprintf("%s (%s)", quotedList([]string{s}), plural(outside[s], "table"))
		total += outside[s]
	}
	r.fail("publication %s is FOR ALL TABLES and would publish %s in schemas not listed in schemas: %s; green would not have them (copy-schema and compare-schema cover the listed schemas) and the subscription would fail: add those schemas to schemas, or omit schemas (every schema of blue is then replicated)",
		allTablesPublication(c), plural(total, "table"), strings.Join(parts, ", "))
}

func allTablesPublication(c *config.Config) string {
	for _, p := range c.Publications {
		if len(p.Tables) == 0 {
			return p.Name
		}
	}
	return ""
}

func plural(n int, what string) string {
	switch {
	case n == 1:
		return "1 " + what
	case strings.HasSuffix(what, "x"), strings.HasSuffix(what, "s"):
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// publications: every table a dedicated publication lists exists on blue
// and is in a listed schema (create-publications would fail on it, after
// replica-identity-full changed blue).
func (r *preflightReport) publications(b pg.BlueFacts) {
	c := r.e.Config
	if !c.HasDedicated() {
		return
	}
	tables := map[pg.Rel]pg.TableFact{}
	for _, t := range b.Tables {
		tables[t.Rel] = t
	}
	scope := inScope(c)
	bad := 0
	for i, p := range c.Publications {
		for _, name := range p.Tables {
			rel := configRel(name)
			t, ok := tables[rel]
			switch {
			case !ok || !t.Published():
				r.fail("publications[%d] (%s) lists %s, which is not a table on blue: fix publications[%d].tables (create-publications would fail on it)", i, p.Name, rel, i)
				bad++
			case !scope[rel.Schema]:
				r.fail("publications[%d] (%s) lists %s, whose schema %s is not in schemas: add it to schemas (or omit schemas: every schema of blue)", i, p.Name, rel, quotedList([]string{rel.Schema}))
				bad++
			}
		}
	}
	if bad == 0 {
		r.pass("every table the dedicated publications list exists on blue, in a listed schema")
	}
}

// replicationRole: the role exists with what it needs, and logs in with the
// configured password through the connection string green will use.
func (r *preflightReport) replicationRole(ctx context.Context, b pg.BlueFacts) {
	c := r.e.Config
	role := c.Replication.Role
	switch {
	case !b.Role.Exists:
		r.warn("replication role %s does not exist on blue: create-replication-role makes it with the configured password", role)
	case !b.Role.Replication && !b.Role.RDSReplication:
		r.warn("replication role %s has neither REPLICATION nor rds_replication: create-replication-role grants it", role)
	case len(b.MissingGrants) > 0:
		r.warn("replication role %s lacks %s (e.g. %s): create-replication-role grants them", role, plural(len(b.MissingGrants), "grant"), b.MissingGrants[0])
	default:
		r.pass("replication role %s exists with replication rights and SELECT on every table of the schemas", role)
	}
	if !b.Role.Exists {
		return
	}
	conninfo, err := c.SubscriptionConninfoSecret()
	if err != nil {
		r.fail("%v", err)
		return
	}
	where := c.SubscriptionConninfo()
	err = pg.TryLogin(ctx, conninfo, c.Timeouts.Connect.Duration)
	switch {
	case err == nil:
		r.pass("replication role %s logs in with the password from %s through %s (tried from this host; green's network may differ)", role, c.Replication.Password.Describe(), where)
	case pg.IsAuthError(err) && !b.Role.CanLogin:
		r.warn("replication role %s cannot log in (NOLOGIN): create-replication-role gives it LOGIN and the configured password", role)
	case pg.IsAuthError(err):
		r.fail("replication role %s exists on blue but its login with the password from %s through %s is refused (tried from this host): %v; create-subscriptions would fail with it after blue and green were changed: set replication.password to the role's password, or give the role the configured one (psql: \\password %s), or let pg_hba.conf admit it",
			role, c.Replication.Password.Describe(), where, serverSaid(err), role)
	default:
		r.warn("could not log in as replication role %s through %s from this host: %v; green's network may differ: check that green reaches blue there", role, where, serverSaid(err))
	}
}

// serverSaid is what the server said of a refused login, else the error.
func serverSaid(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Severity + ": " + pe.Message
	}
	return err.Error()
}

// bluePrivileges: the admin user may do what each later step does on blue.
func (r *preflightReport) bluePrivileges(b pg.BlueFacts) {
	c := r.e.Config
	pv := b.Privileges
	if pv.Superuser || (c.IsAWS() && pv.RDSSuperuser) {
		what := "a superuser"
		if !pv.Superuser {
			what = "a member of rds_superuser"
		}
		r.pass("blue: user %s is %s: REPLICA IDENTITY, CREATE PUBLICATION, the replication role and slots are allowed", pv.User, what)
		return
	}
	fixUser := "connect as a superuser in blue.conninfo"
	if c.IsAWS() {
		fixUser = "connect as the master user (rds_superuser) in blue.conninfo"
	}
	fails := len(r.fails)
	scope := inScope(c)
	var notOwned []string
	for _, t := range b.Tables {
		if scope[t.Schema] && t.NeedsIdentity() && !t.Owned {
			notOwned = append(notOwned, t.Rel.String())
		}
	}
	if len(notOwned) > 0 {
		r.fail("blue: user %s is not a superuser and does not own %s: replica-identity-full must ALTER TABLE them (REPLICA IDENTITY FULL needs the owner or a superuser); %s, or as their owner", pv.User, strings.Join(notOwned, ", "), fixUser)
	}
	if !pv.CreateOnDatabase {
		r.fail("blue: user %s lacks CREATE on database %s: create-publications needs it; GRANT CREATE ON DATABASE %s TO %s, or %s", pv.User, pv.Database, pg.Ident(pv.Database), pg.Ident(pv.User), fixUser)
	}
	if pub := allTablesPublication(c); pub != "" && !c.HasDedicated() {
		r.fail("blue: user %s is not a superuser: create-publications needs one for CREATE PUBLICATION %s FOR ALL TABLES; %s, or list the publication's tables (their owner may publish them)", pv.User, pub, fixUser)
	} else if c.HasDedicated() {
		var notOwnedPub []string
		for _, t := range b.Tables {
			if scope[t.Schema] && t.Published() && !t.Partition && !t.Owned {
				notOwnedPub = append(notOwnedPub, t.Rel.String())
			}
		}
		if len(notOwnedPub) > 0 {
			r.fail("blue: user %s does not own %s: create-publications must publish them (CREATE PUBLICATION ... FOR TABLE needs the owner or a superuser); %s", pv.User, strings.Join(notOwnedPub, ", "), fixUser)
		}
	}
	roleDone := b.Role.Exists && b.Role.CanLogin && (b.Role.Replication || b.Role.RDSReplication) && len(b.MissingGrants) == 0
	if !roleDone {
		switch {
		case !pv.CreateRole:
			r.fail("blue: user %s lacks CREATEROLE: create-replication-role must create or alter role %s; %s, or create the role by hand", pv.User, c.Replication.Role, fixUser)
		case c.IsAWS() && !b.Role.RDSReplication && !pv.RDSSuperuser:
			r.fail("blue: user %s is not in rds_superuser: create-replication-role must GRANT rds_replication; %s", pv.User, fixUser)
		case !c.IsAWS() && !b.Role.Replication && (b.Settings.VersionNum < 160000 || !pv.Replication):
			r.fail("blue: user %s may not give role %s REPLICATION (a superuser%s must): create-replication-role needs it; %s, or ALTER ROLE %s REPLICATION as one", pv.User, c.Replication.Role, pg16Note(b.Settings.VersionNum), fixUser, pg.Ident(c.Replication.Role))
		}
	}
	if !pv.Replication && !(c.IsAWS() && pv.RDSReplication) {
		r.fail("blue: user %s has neither REPLICATION nor superuser: create-slots needs one to create replication slots; ALTER ROLE %s REPLICATION, or %s", pv.User, pg.Ident(pv.User), fixUser)
	}
	if len(r.fails) == fails {
		r.pass("blue: user %s is not a superuser but may do what each later step does (owns the tables, CREATE, CREATEROLE, REPLICATION)", pv.User)
	}
}

func pg16Note(versionNum int) string {
	if versionNum >= 160000 {
		return ", or from PostgreSQL 16 a CREATEROLE user that has REPLICATION itself,"
	}
	return ""
}

// greenPrivileges: the admin user may do what each later step does on green.
func (r *preflightReport) greenPrivileges(g *pg.GreenFacts) {
	if g == nil {
		return
	}
	c := r.e.Config
	pv := g.Privileges
	if pv.Superuser || (c.IsAWS() && pv.RDSSuperuser) {
		r.pass("green: user %s may create subscriptions, restore the schema and change roles", pv.User)
		return
	}
	fixUser := "connect as a superuser in green.conninfo"
	fails := len(r.fails)
	switch {
	case g.Settings.VersionNum < 160000:
		r.fail("green: user %s is not a superuser: create-subscriptions needs one before PostgreSQL 16; %s", pv.User, fixUser)
	case !pv.CreateSubscription || !pv.CreateOnDatabase:
		r.fail("green: user %s is neither a superuser nor a member of pg_create_subscription with CREATE on database %s: create-subscriptions needs that; GRANT pg_create_subscription TO %s and GRANT CREATE ON DATABASE %s TO %s, or %s",
			pv.User, pv.Database, pg.Ident(pv.User), pg.Ident(pv.Database), pg.Ident(pv.User), fixUser)
	}
	if len(c.AppRoles) > 0 && !pv.CreateRole {
		r.fail("green: user %s lacks CREATEROLE: block-green-logins must ALTER ROLE the application roles NOLOGIN; %s", pv.User, fixUser)
	}
	if c.CopyData() {
		r.warn("green: user %s is not a superuser: copy-schema restores blue's schema (extensions, ownership) and may need one", pv.User)
	}
	if len(c.SnapshotPublications()) > 0 {
		r.warn("green: user %s is not a superuser: copy-data writes with session_replication_role = replica, as the table sync's workers do, which needs one or (PostgreSQL 15+) GRANT SET ON PARAMETER session_replication_role TO %s; or copy those publications by copy: tablesync", pv.User, pg.Ident(pv.User))
	}
	if len(r.fails) == fails {
		r.pass("green: user %s may create subscriptions and change the application roles", pv.User)
	}
}

// tables: what logical replication does not carry, or carries slowly.
func (r *preflightReport) tables(b pg.BlueFacts, g *pg.GreenFacts) {
	scope := inScope(r.e.Config)
	var noPK, nothing, unlogged, matviews []pg.Rel
	for _, t := range b.Tables {
		if !scope[t.Schema] {
			continue
		}
		switch {
		case t.Kind == "m":
			matviews = append(matviews, t.Rel)
		case t.Persistence == "u":
			unlogged = append(unlogged, t.Rel)
		case t.NeedsIdentity():
			noPK = append(noPK, t.Rel)
		case t.Published() && t.ReplIdent == "n":
			nothing = append(nothing, t.Rel)
		}
	}
	if len(noPK) > 0 {
		r.warn("%s with neither a primary key nor a replica identity: %s; replica-identity-full sets REPLICA IDENTITY FULL on them", plural(len(noPK), "table"), relList(noPK))
	} else {
		r.pass("every table has a primary key or a replica identity")
	}
	if len(nothing) > 0 {
		r.warn("REPLICA IDENTITY NOTHING on %s: UPDATE and DELETE on them fail on blue once published; ALTER TABLE ... REPLICA IDENTITY FULL (or add a primary key)", relList(nothing))
	}
	// What replication does not carry, and the step that carries it.
	if fail, line := unloggedAdvice(r.e.Config, unlogged); fail {
		r.fail("%s", line)
	} else if line != "" {
		r.pass("%s", line)
	}
	var gp *pg.Privileges
	if g != nil {
		gp = &g.Privileges
	}
	if warn, line := largeObjectsAdvice(b.LargeObjects, b.Privileges, gp); warn {
		r.warn("%s", line)
	} else if line != "" {
		r.pass("%s", line)
	}
	if line := matviewsAdvice(matviews); line != "" {
		r.pass("%s", line)
	}
	// Slow apply: REPLICA IDENTITY FULL without a usable index on green.
	switch {
	case g == nil:
	case g.Settings.VersionNum >= 160000:
		if len(g.SlowApply) > 0 {
			r.warn("on green, %s have no primary key and no btree index: each replicated UPDATE/DELETE scans the table; CREATE INDEX on green (PG16+ subscribers use any btree index on plain columns)", relList(g.SlowApply))
		}
	case len(noPK) > 0:
		r.warn("green is PostgreSQL %s: replicated UPDATE/DELETE on %s scan the whole table (an index helps only from PG16)", g.Settings.Version, relList(noPK))
	}
}

// sequences: counted (the cutover syncs them), and named when close to
// their maximum (green takes the same values).
func (r *preflightReport) sequences(b pg.BlueFacts) {
	c := r.e.Config
	if len(b.NearMax) == 0 {
		r.pass("%d sequences in %s: synced at the cutover (replication does not carry them); none past %.0f%% of its range", b.Sequences, quotedList(c.Schemas), sequenceNearMax*100)
		return
	}
	parts := make([]string, len(b.NearMax))
	for i, s := range b.NearMax {
		parts[i] = fmt.Sprintf("%s (%d of %d, %.0f%%)", s.Rel, s.Last, s.Max, s.Used*100)
	}
	r.warn("%s past %.0f%% of their range: %s; green takes the same values at the cutover: widen them before they run out (ALTER SEQUENCE ... AS bigint and ALTER TABLE ... ALTER COLUMN ... TYPE bigint)",
		plural(len(b.NearMax), "sequence"), sequenceNearMax*100, strings.Join(parts, ", "))
}

// extensions: every extension of blue can be installed on green.
func (r *preflightReport) extensions(b pg.BlueFacts, g *pg.GreenFacts) {
	names := make([]string, 0, len(b.Extensions))
	for n := range b.Extensions {
		names = append(names, n)
	}
	sort.Strings(names)
	if g == nil {
		if len(names) > 0 {
			r.pass("extensions on blue: %s; green's are checked once it exists (upgrade-extensions)", extList(names, b.Extensions))
		}
		return
	}
	var ok []string
	for _, n := range names {
		avail, has := g.Available[n]
		if !has {
			r.fail("extension %s %s on blue is not available on green: install its package on green's servers (copy-schema would fail to create it; pg_upgrade would refuse)", n, b.Extensions[n])
			continue
		}
		if gv, installed := g.Extensions[n]; installed {
			ok = append(ok, fmt.Sprintf("%s (blue %s, green %s)", n, b.Extensions[n], gv))
		} else {
			ok = append(ok, fmt.Sprintf("%s (blue %s, green has %s)", n, b.Extensions[n], avail))
		}
	}
	if len(ok) > 0 {
		r.pass("extensions available on green: %s", strings.Join(ok, ", "))
	}
}

func extList(names []string, versions map[string]string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + " " + versions[n]
	}
	return strings.Join(out, ", ")
}

// longTransactions: transactions open for long on blue hold create-slots
// (it waits for every transaction running when it starts) and stall the
// cutover's PAUSE.
func (r *preflightReport) longTransactions(b pg.BlueFacts) {
	if len(b.LongTransactions) == 0 {
		r.pass("no transaction open longer than %s on blue", longTransaction)
		return
	}
	parts := make([]string, 0, 5)
	for i, t := range b.LongTransactions {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(b.LongTransactions)-5))
			break
		}
		who := fmt.Sprintf("pid %d", t.PID)
		if t.PID == 0 {
			who = t.Application
		} else if t.Application != "" {
			who += " " + fmt.Sprintf("%q", t.Application)
		}
		parts = append(parts, fmt.Sprintf("%s (user %s from %s, open %s, %s)", who, t.User, t.Client, t.Open, t.State))
	}
	r.warn("%s open longer than %s on blue: %s; create-slots waits for them and the cutover's PAUSE stalls behind them: end them (COMMIT, ROLLBACK PREPARED, or pg_terminate_backend) before those steps",
		plural(len(b.LongTransactions), "transaction"), longTransaction, strings.Join(parts, "; "))
}

// collations: a collation whose library version differs between blue and
// green sorts text differently; indexes carried over from blue (clone
// strategies: pg_upgrade keeps their files) must be rebuilt on green.
func (r *preflightReport) collations(b pg.BlueFacts, g *pg.GreenFacts) {
	if g == nil || len(b.Collations) == 0 {
		return
	}
	c := r.e.Config
	var differ []string
	indexes := 0
	for _, co := range b.Collations {
		gv, ok := g.Collations[co.Name]
		switch {
		case !ok:
			r.warn("collation %s, used by %s on blue, does not exist on green: copy-schema would fail on those indexes; install its locale on green's servers", co.Name, plural(co.Indexes, "index"))
		case co.Version != "" && gv != "" && gv != co.Version:
			differ = append(differ, fmt.Sprintf("%s (blue %s, green %s; %s)", co.Name, co.Version, gv, plural(co.Indexes, "index")))
			indexes += co.Indexes
		}
	}
	switch {
	case len(differ) == 0:
		r.pass("text collations: the same library versions on blue and green (%s used by indexes)", plural(len(b.Collations), "collation"))
	case c.IsCloneStrategy():
		r.warn("text collations whose library version differs between blue and green: %s; green's copies of those %s sort by blue's order: REINDEX them on green after the upgrade, before the cutover", strings.Join(differ, ", "), plural(indexes, "index"))
	default:
		r.pass("text collations whose library version differs: %s; the copy strategy builds every index on green with green's library", strings.Join(differ, ", "))
	}
}
