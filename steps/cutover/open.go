package cutover

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// What a run holds from its start to its end: sessions on every moved
// database of each side, a PgBouncer console per entry it moves, the ini
// stores; and what the servers looked like before (Prior).

// cutEnv holds what a cutover uses inside the pause, opened before it.
type cutEnv struct {
	// dbs are the sessions held on each database, in Params' order.
	dbs []dbConns
	// from, to, fromSide and toSide are the first database's: where what
	// concerns the whole server runs (ALTER SYSTEM, roles, the drain
	// target, the fence).
	from, to, fromSide, toSide *pgxpool.Conn
	// consoles are, per PgBouncer, one console per entry it moves (entries):
	// each entry's PAUSE and RESUME run at once.
	consoles [][]*pg.Console
	entries  [][]pg.IniEntry
	mu       sync.Mutex
	// inis are each PgBouncer's ini store, in the order of the consoles:
	// an SSH store keeps its connection from the precheck to the repoint.
	inis                   []pg.IniStore
	fromVersion, toVersion string
	// fromDB and toDB are the first database's names, as the servers say.
	fromDB, toDB string
	names        [2]string // from's and to's side names
	// spared are the fence roles the fence never touches, each with why.
	spared []string
}

func (e *cutEnv) close() {
	for _, cs := range e.consoles {
		for _, c := range cs {
			c.Close()
		}
	}
	for _, s := range e.inis {
		s.Close()
	}
	for _, d := range e.dbs {
		for _, c := range d.all() {
			if c != nil {
				c.Release()
			}
		}
	}
}

// broken says whether a held connection was closed, as a cancelled
// statement closes it.
func (e *cutEnv) broken() bool {
	for _, d := range e.dbs {
		for _, c := range d.all() {
			if c == nil || c.Conn().IsClosed() {
				return true
			}
		}
	}
	for _, cs := range e.consoles {
		for _, c := range cs {
			if c.Closed() {
				return true
			}
		}
	}
	return false
}

// pids are the source-side sessions the cutover holds, in every database.
func (e *cutEnv) pids() []int32 {
	var out []int32
	for _, d := range e.dbs {
		for _, c := range []*pgxpool.Conn{d.from, d.fromSide} {
			if c != nil {
				out = append(out, int32(c.Conn().PgConn().PID()))
			}
		}
	}
	return out
}

// open acquires the connections the cutover holds to the end (two on each
// side of every database), the PgBouncers' consoles (one per entry it
// moves, found in SHOW DATABASES), and reads p.Prior when the caller has
// none.
func (r *run) open(ctx context.Context) (*cutEnv, error) {
	d := r.d
	e := &cutEnv{names: [2]string{d.from.name, d.to.name}}
	for _, db := range r.dbs {
		var c dbConns
		var err error
		acquire := func(pool *pgxpool.Pool, name string) *pgxpool.Conn {
			if err != nil {
				return nil
			}
			if pool == nil {
				err = fmt.Errorf("no connection to database %s on %s", db.Name, name)
				return nil
			}
			var conn *pgxpool.Conn
			if conn, err = pool.Acquire(ctx); err != nil {
				err = fmt.Errorf("connect to database %s on %s: %w", db.Name, name, err)
			}
			return conn
		}
		c.from, c.to = acquire(db.from, d.from.name), acquire(db.to, d.to.name)
		c.fromSide, c.toSide = acquire(db.from, d.from.name), acquire(db.to, d.to.name)
		db.c = c
		e.dbs = append(e.dbs, c)
		if err != nil {
			return e, err
		}
		// A side made read-only by the readonly method must still take the
		// cutover's own writes (setval, ALTER SUBSCRIPTION) on these
		// sessions. A session setting changes nothing on the server: it is
		// not journaled. Its own commits on the source never wait for a
		// synchronous standby (an HA one, or the hold of cutover_hold.go).
		for _, s := range []*pgxpool.Conn{c.from, c.fromSide} {
			for _, st := range []pg.Stmt{pg.ReadWriteSessionStmt(d.from.name), pg.SyncLocalStmt(d.from.name)} {
				if err := st.Exec(pg.Quiet(ctx), s); err != nil {
					return e, fmt.Errorf("prepare session: %w", err)
				}
			}
		}
		for _, s := range []*pgxpool.Conn{c.to, c.toSide} {
			if err := pg.ReadWriteSessionStmt(d.to.name).Exec(pg.Quiet(ctx), s); err != nil {
				return e, fmt.Errorf("prepare session: %w", err)
			}
		}
		if _, db.c.fromDB, err = pg.ReadVersionAndDatabase(ctx, c.from); err != nil {
			return e, fmt.Errorf("read %s's version: %w", d.from.name, err)
		}
		if _, db.c.toDB, err = pg.ReadVersionAndDatabase(ctx, c.to); err != nil {
			return e, fmt.Errorf("read %s's version: %w", d.to.name, err)
		}
		e.dbs[len(e.dbs)-1] = db.c
	}
	first := e.dbs[0]
	e.from, e.to, e.fromSide, e.toSide = first.from, first.to, first.fromSide, first.toSide
	var err error
	if e.fromVersion, e.fromDB, err = pg.ReadVersionAndDatabase(ctx, e.from); err != nil {
		return e, fmt.Errorf("read %s's version: %w", d.from.name, err)
	}
	if e.toVersion, e.toDB, err = pg.ReadVersionAndDatabase(ctx, e.to); err != nil {
		return e, fmt.Errorf("read %s's version: %w", d.to.name, err)
	}
	// The roles the fence closes: never a superuser, pgbluegreen's own role,
	// an administrator or the replication role.
	fr, err := pg.ReadFenceRoles(ctx, e.from, r.p.FenceRoles, r.p.Administrators, r.p.ReplicationRole)
	if err != nil {
		return e, err
	}
	r.fence, e.spared = fr.Fence, fr.Spared
	r.rep.FenceRoles, r.rep.FenceSpared = fr.Fence, fr.Spared
	if r.p.Method == MethodPgBouncer {
		for _, b := range r.p.Bouncers {
			c, err := pg.ConnectConsole(ctx, b.Name, b.AdminConninfo, r.p.StatementTimeout)
			if err != nil {
				return e, err
			}
			cs := []*pg.Console{c}
			e.consoles = append(e.consoles, cs)
			e.inis = append(e.inis, b.NewIniStore())
			es, err := r.discoverEntries(ctx, c, b)
			if err != nil {
				return e, err
			}
			for range es[1:] {
				c, err := pg.ConnectConsole(ctx, b.Name, b.AdminConninfo, r.p.StatementTimeout)
				if err != nil {
					return e, err
				}
				cs = append(cs, c)
				e.consoles[len(e.consoles)-1] = cs
			}
			e.entries = append(e.entries, es)
		}
		for k := range r.rep.Bouncers {
			r.rep.Bouncers[k].Entries = entryNames(e.entries[k])
		}
	}
	if r.p.Prior == nil {
		prior := Prior{LoginRetry: map[string]string{}, Entries: map[string][]pg.IniEntry{}, Fences: r.p.Fences.Clone()}
		for k, cs := range e.consoles {
			cfg, err := cs[0].Config(ctx)
			if err != nil {
				return e, err
			}
			prior.LoginRetry[r.p.Bouncers[k].Name] = cfg["server_login_retry"]
			prior.Entries[r.p.Bouncers[k].Name] = e.entries[k]
		}
		acc, err := pg.ReadSideAccess(ctx, e.to, r.names(), r.fence)
		if err != nil {
			return e, err
		}
		prior.TargetReadOnly, prior.TargetNoLogin = len(acc.ReadOnly) > 0, acc.NoLogin
		r.p.Prior = &prior
	} else if r.p.Prior.Fences == nil {
		r.p.Prior.Fences = r.p.Fences.Clone()
	}
	return e, nil
}

// prior is a copy of what the run found before it changed anything, with
// the fences in force now.
func (r *run) prior() Prior {
	r.fencesMu.Lock()
	defer r.fencesMu.Unlock()
	p := *r.p.Prior
	p.Fences = p.Fences.Clone()
	return p
}
