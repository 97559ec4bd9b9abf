package cutover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// A server holds several databases and one cutover moves all of them
// inside one pause. What is the server's is done once: the pause of
// PgBouncer (every entry of every moved database), the drain target (one
// WAL position: blue's insert position once writes stopped), the hold of
// commits, the roles' LOGIN and the fence. What is a database's is done
// for each, at the same time: its feed drained to that position, its
// sequences, its reverse feed prepared and anchored, its feeds swapped.

// dbRun is one database's part of a run.
type dbRun struct {
	Database
	// k is the database's place in Params.Databases.
	k int
	// from and to are this database's pools on the direction's sides.
	from, to *pgxpool.Pool
	f        feeds
	rep      *DatabaseReport
	// c are the sessions the run holds on this database (open).
	c dbConns
	// preSeqs are the first pass's sequence values.
	preSeqs []pg.Sequence
	// toLSN is the target's position once this database's drain applied
	// everything: where its opposite feed starts (anchorSteps).
	toLSN string
	// loSource is the source's large objects as last read while the
	// target's matched them (large_objects.go); nil before the first pass.
	loSource *pg.LargeObjectsDigest
}

// dbConns are the sessions a run holds on one database, on each side, and
// the database's name as each server says it.
type dbConns struct {
	from, to *pgxpool.Conn
	// fromSide and toSide are second sessions, for what runs at the same
	// time as the drain or the feeds' swap.
	fromSide, toSide *pgxpool.Conn
	fromDB, toDB     string
}

func (c dbConns) all() []*pgxpool.Conn { return []*pgxpool.Conn{c.from, c.to, c.fromSide, c.toSide} }

// newDBRuns lays out each database's part of a run in direction d.
func newDBRuns(p *Params, d direction, rep *Report) []*dbRun {
	rep.Databases = make([]DatabaseReport, len(p.Databases))
	out := make([]*dbRun, len(p.Databases))
	for k, db := range p.Databases {
		from, to := db.Blue, db.Green
		if d.rollback {
			from, to = to, from
		}
		rep.Databases[k] = DatabaseReport{Name: db.Name, Subscriptions: db.Subscriptions, Reverse: db.Reverse}
		out[k] = &dbRun{Database: db, k: k, from: from, to: to, f: db.feeds(d.rollback), rep: &rep.Databases[k]}
	}
	return out
}

// names are the moved databases' names.
func (r *run) names() []string {
	out := make([]string, len(r.dbs))
	for k, db := range r.dbs {
		out[k] = db.Name
	}
	return out
}

// endAt records in the report where traffic goes at the end: s's
// endpoint, and with several databases every one's name after the host and
// port (127.0.0.1:5432/app,billing).
func (r *run) endAt(s side, version string) {
	r.rep.FinalTarget, r.rep.FinalVersion = s.endpoint.String(), version
	if len(r.dbs) > 1 {
		r.rep.FinalTarget = fmt.Sprintf("%s:%d/%s", s.endpoint.Host, s.endpoint.Port, strings.Join(r.names(), ","))
	}
}

// allDrainSlots and allDrainSubs are every database's drained feed: the
// lag gate and the hold cover them all.
func (r *run) allDrainSlots() []string {
	var out []string
	for _, db := range r.dbs {
		out = append(out, db.f.drainSlots...)
	}
	return out
}

func (r *run) allDrainSubs() []string {
	var out []string
	for _, db := range r.dbs {
		out = append(out, db.f.drainSubs...)
	}
	return out
}

// label names a database's sub-step: base alone when one database moves,
// as it always was, else base with the database's name.
func (r *run) label(base string, db *dbRun) string {
	if len(r.dbs) <= 1 {
		return base
	}
	return base + " (" + db.Name + ")"
}

// each runs, for every database at once, the sub-steps build gives it (in
// order); a database with none is left out. It returns one sub-step, or
// none when no database has any.
func (r *run) each(name, target string, build func(db *dbRun) []subStep) []subStep {
	var per []subStep
	for _, db := range r.dbs {
		if steps := build(db); len(steps) > 0 {
			per = append(per, r.inOrder(r.label(name, db), target, steps...))
		}
	}
	if len(per) == 1 && len(r.dbs) == 1 {
		return per
	}
	if len(per) == 0 {
		return nil
	}
	return []subStep{r.together(name, per...)}
}

// entries are the k-th PgBouncer's entries the run moves: as found in its
// SHOW DATABASES (open), else as the attempt recorded them, else (a plan
// made offline) its configured entry and one named after each other
// moving database.
func (r *run) entries(k int) []pg.IniEntry {
	if r.e != nil && k < len(r.e.entries) {
		return r.e.entries[k]
	}
	b := r.p.Bouncers[k]
	if r.p.Prior != nil {
		if es := r.p.Prior.Entries[b.Name]; len(es) > 0 {
			return es
		}
	}
	out := []pg.IniEntry{{Name: b.Database, DBName: r.primary()}}
	for _, db := range r.dbs[min(1, len(r.dbs)):] {
		out = append(out, pg.IniEntry{Name: db.Name, DBName: db.Name})
	}
	return out
}

func entryNames(es []pg.IniEntry) []string {
	out := make([]string, len(es))
	for k, e := range es {
		out[k] = e.Name
	}
	return out
}

// primary is the first database's name.
func (r *run) primary() string {
	if len(r.dbs) == 0 {
		return ""
	}
	return r.dbs[0].Name
}

// discoverEntries reads one PgBouncer's entries of the moving databases:
// every row of SHOW DATABASES whose server database moves and whose host
// and port are blue's or green's, its configured entry (which must be
// there), and those an earlier run of the attempt recorded.
func (r *run) discoverEntries(ctx context.Context, c *pg.Console, b pg.BouncerParams) ([]pg.IniEntry, error) {
	rows, err := c.Databases(ctx)
	if err != nil {
		return nil, err
	}
	// The primary database may have another name on a side (its
	// endpoint's); every other database keeps its name.
	serves := map[string]string{r.p.BlueEndpoint.DBName: r.primary(), r.p.GreenEndpoint.DBName: r.primary()}
	for _, db := range r.dbs {
		serves[db.Name] = db.Name
	}
	var names []string
	for n := range serves {
		if n != "" {
			names = append(names, n)
		}
	}
	var out []pg.IniEntry
	add := func(e pg.IniEntry) {
		if !slices.ContainsFunc(out, func(x pg.IniEntry) bool { return x.Name == e.Name }) {
			out = append(out, e)
		}
	}
	configured := slices.IndexFunc(rows, func(d pg.BouncerDatabase) bool { return d.Name == b.Database })
	if configured < 0 {
		return nil, fmt.Errorf("PgBouncer %s: SHOW DATABASES has no database %q; check cutover.pgbouncer[].database", b.Name, b.Database)
	}
	server := rows[configured].Database
	if server == "" {
		server = rows[configured].Name
	}
	db, ok := serves[server]
	if !ok {
		db = r.primary()
	}
	add(pg.IniEntry{Name: b.Database, DBName: db})
	if r.p.Prior != nil {
		for _, e := range r.p.Prior.Entries[b.Name] {
			add(e)
		}
	}
	found := pg.MovedEntries(rows, names, r.p.BlueEndpoint, r.p.GreenEndpoint)
	for _, db := range r.dbs {
		for _, d := range found {
			server := d.Database
			if server == "" {
				server = d.Name
			}
			if serves[server] == db.Name {
				add(pg.IniEntry{Name: d.Name, DBName: db.Name})
			}
		}
	}
	return out, nil
}

// console is the k-th PgBouncer's console for its j-th entry, connected
// again when it broke (a PAUSE cancelled by its timeout closes it).
func (r *run) console(ctx context.Context, k, j int) (*pg.Console, error) {
	c := r.e.consoles[k][j]
	if !c.Closed() {
		return c, nil
	}
	b := r.p.Bouncers[k]
	fresh, err := pg.ConnectConsole(ctx, b.Name, b.AdminConninfo, r.p.StatementTimeout)
	if err != nil {
		return nil, err
	}
	r.e.mu.Lock()
	r.e.consoles[k][j] = fresh
	r.e.mu.Unlock()
	c.Close()
	return fresh, nil
}

// eachEntry runs fn on every entry of every PgBouncer at once, each on a
// console of its own: a PAUSE waits for its database's transactions, and
// the others must not wait behind it.
func (r *run) eachEntry(ctx context.Context, fn func(ctx context.Context, c *pg.Console, b pg.BouncerParams, en pg.IniEntry) error) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k, b := range r.p.Bouncers {
		for j, en := range r.entries(k) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := r.console(ctx, k, j)
				if err == nil {
					err = fn(ctx, c, b, en)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// eachBouncer runs fn on every PgBouncer at once, on its first console;
// fn may then run commands on every entry of its own (entryConsoles).
func (r *run) eachBouncer(ctx context.Context, fn func(ctx context.Context, c *pg.Console, b pg.BouncerParams) error) error {
	errs := make([]error, len(r.p.Bouncers))
	var wg sync.WaitGroup
	for k, b := range r.p.Bouncers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.console(ctx, k, 0)
			if err != nil {
				errs[k] = err
				return
			}
			errs[k] = fn(ctx, c, b)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// bouncerEntries runs fn on each entry of the PgBouncer named name at
// once, each on its own console.
func (r *run) bouncerEntries(ctx context.Context, name string, fn func(ctx context.Context, c *pg.Console, en pg.IniEntry) error) error {
	k := slices.IndexFunc(r.p.Bouncers, func(b pg.BouncerParams) bool { return b.Name == name })
	if k < 0 {
		return fmt.Errorf("no PgBouncer named %s", name)
	}
	es := r.entries(k)
	errs := make([]error, len(es))
	var wg sync.WaitGroup
	for j, en := range es {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.console(ctx, k, j)
			if err == nil {
				err = fn(ctx, c, en)
			}
			errs[j] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// iniChange is the k-th PgBouncer's entries pointed at side s.
func (r *run) iniChange(k int, s side, restore bool) pg.IniChange {
	es := r.entries(k)
	ch := pg.IniChange{Database: es[0].Name, Side: s.name, To: s.at(es[0].DBName), Restore: restore}
	for _, e := range es[1:] {
		ch.Also = append(ch.Also, pg.IniEntry{Name: e.Name, DBName: s.at(e.DBName).DBName})
	}
	return ch
}

// since is how long ago t was, in ms, for the report.
func since(t time.Time) float64 { return ms(time.Since(t)) }
