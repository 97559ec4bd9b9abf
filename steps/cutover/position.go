package cutover

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Where an attempt stands, read from the servers (never from the state
// file): each PgBouncer entry's target and pause, the ini, every
// database's feeds, who can connect to the moved databases on each side.
// The ways out, the guard and status all start from it.

// position is where the servers are, relative to a direction (from: the
// side writes leave; to: the side they go to).
type position struct {
	bouncers []bouncerPos
	// dbs are each database's feeds, in Params' order.
	dbs []dbPos
	// stopped: the application cannot write on from (every entry paused;
	// the fence roles closed out of from; from read-only).
	stopped bool
	// atTarget: writes go to to, and are not stopped.
	atTarget bool
	// toOpen: every fence role can log in on to, the moved databases there
	// let them connect (nothing a fence took is missing), none read-only.
	toOpen bool
	// toClosed: no fence role can connect to a moved database on to.
	toClosed, toReadOnly bool
	// fromOpen, fromFenced and fromReadOnly say the same of from.
	fromOpen, fromFenced, fromReadOnly bool
	// held: the source's commits are held for the target's apply.
	held bool
}

// dbPos is where one database's feeds are.
type dbPos struct {
	// drainedOn: the feed from -> to still runs (its subscriptions on to
	// are enabled): nothing was drained and stopped yet.
	drainedOn bool
	// The feed to -> from: its slot on to (the reverse slot; a rollback's
	// forward slots are always there), its subscriptions on from.
	oppositeSlot, oppositeSub, oppositeOn bool
}

// anyDB and allDB ask a question of every database's feeds.
func (pos position) anyDB(f func(dbPos) bool) bool {
	for _, d := range pos.dbs {
		if f(d) {
			return true
		}
	}
	return false
}

func (pos position) allDB(f func(dbPos) bool) bool {
	for _, d := range pos.dbs {
		if !f(d) {
			return false
		}
	}
	return true
}

// db is database k's feeds (the stopped position's when pos has none: a
// plan).
func (pos position) db(k int) dbPos {
	if k < len(pos.dbs) {
		return pos.dbs[k]
	}
	return dbPos{drainedOn: true, oppositeSlot: true, oppositeSub: true}
}

// bouncerPos is one PgBouncer: each entry's pause and where SHOW
// DATABASES and its ini point ("from", "to", or the host:port), and its
// server_login_retry now.
type bouncerPos struct {
	name, loginRetry string
	entries          []entryPos
}

// entryPos is one PgBouncer entry.
type entryPos struct {
	name, pointsAt, iniAt string
	paused                bool
}

func (b bouncerPos) paused() bool {
	for _, e := range b.entries {
		if e.paused {
			return true
		}
	}
	return false
}

// all asks a question of every entry.
func (b bouncerPos) all(f func(entryPos) bool) bool {
	for _, e := range b.entries {
		if !f(e) {
			return false
		}
	}
	return len(b.entries) > 0
}

// iniAtTarget reports whether every PgBouncer already serves the target
// with every entry and its ini says so too.
func (pos position) iniAtTarget() bool {
	for _, b := range pos.bouncers {
		if !b.all(func(e entryPos) bool { return e.pointsAt == "to" && e.iniAt == "to" }) {
			return false
		}
	}
	return len(pos.bouncers) > 0
}

func (pos position) bouncer(name string) bouncerPos {
	for _, b := range pos.bouncers {
		if b.name == name {
			return b
		}
	}
	return bouncerPos{}
}

// servesSource reports whether SHOW DATABASES says every entry of the
// PgBouncer named name serves the source, whatever its ini says.
func (pos position) servesSource(name string) bool {
	return pos.bouncer(name).all(func(e entryPos) bool { return e.pointsAt == "from" })
}

// bouncerAtSource reports whether every entry of the PgBouncer named name
// serves the source and its ini says so too.
func (pos position) bouncerAtSource(name string) bool {
	return pos.bouncer(name).all(func(e entryPos) bool { return e.pointsAt == "from" && e.iniAt == "from" })
}

// stoppedPosition is where an attempt stands once writes stopped: nothing
// else has changed yet (the reverse slots and subscriptions were made
// before).
func (r *run) stoppedPosition() position {
	pos := position{stopped: true, fromFenced: r.p.Method == MethodNologin, toClosed: true, fromOpen: r.p.Method != MethodNologin}
	for range r.dbs {
		pos.dbs = append(pos.dbs, dbPos{drainedOn: true, oppositeSlot: true, oppositeSub: true})
	}
	for k, b := range r.p.Bouncers {
		bp := bouncerPos{name: b.Name}
		for _, en := range r.entries(k) {
			bp.entries = append(bp.entries, entryPos{name: en.Name, pointsAt: "from", iniAt: "from", paused: true})
		}
		pos.bouncers = append(pos.bouncers, bp)
	}
	return pos
}

// where names an endpoint relative to the direction.
func (r *run) where(host string, port int) string {
	switch {
	case host == r.d.from.endpoint.Host && port == r.d.from.endpoint.Port:
		return "from"
	case host == r.d.to.endpoint.Host && port == r.d.to.endpoint.Port:
		return "to"
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// readPosition reads where the servers are.
func (r *run) readPosition(ctx context.Context) (position, error) {
	p, d, e := r.p, r.d, r.e
	var pos position
	for k, b := range p.Bouncers {
		if k >= len(e.consoles) {
			break // not the pgbouncer method: no console was opened
		}
		c, err := r.console(ctx, k, 0)
		if err != nil {
			return pos, err
		}
		rows, err := c.Databases(ctx)
		if err != nil {
			return pos, err
		}
		cfg, err := c.Config(ctx)
		if err != nil {
			return pos, err
		}
		bp := bouncerPos{name: b.Name, loginRetry: cfg["server_login_retry"]}
		for _, en := range r.entries(k) {
			var db *pg.BouncerDatabase
			for i := range rows {
				if rows[i].Name == en.Name {
					db = &rows[i]
				}
			}
			if db == nil {
				return pos, fmt.Errorf("PgBouncer %s: SHOW DATABASES has no database %q", b.Name, en.Name)
			}
			pointsAt := r.where(db.Host, db.Port)
			// An ini that cannot be read (its host unreachable, its key not
			// verified) leaves the position to SHOW DATABASES, marked: an
			// undo then tries to put it back, and the precheck says why it
			// failed.
			iniAt := pointsAt
			entry, err := r.ini(b).ReadEntry(ctx, en.Name)
			switch {
			case errors.Is(err, pg.ErrIniUnreadable):
			case err != nil:
				iniAt = "unreadable (" + err.Error() + ")"
			default:
				port := 0
				fmt.Sscan(entry.Get("port"), &port)
				iniAt = r.where(entry.Get("host"), port)
			}
			bp.entries = append(bp.entries, entryPos{name: en.Name, paused: db.Paused, pointsAt: pointsAt, iniAt: iniAt})
		}
		pos.bouncers = append(pos.bouncers, bp)
	}
	for _, db := range r.dbs {
		var dp dbPos
		var err error
		if dp.drainedOn, _, err = pg.SubscriptionsState(ctx, db.c.to, db.f.drainSubs); err != nil {
			return pos, err
		}
		if dp.oppositeOn, dp.oppositeSub, err = pg.SubscriptionsState(ctx, db.c.from, db.f.startSubs); err != nil {
			return pos, err
		}
		dp.oppositeSlot = true
		if !d.rollback {
			if dp.oppositeSlot, err = pg.SlotExists(ctx, db.c.to, db.Reverse); err != nil {
				return pos, err
			}
		}
		pos.dbs = append(pos.dbs, dp)
	}
	var err error
	if pos.held, _, err = pg.HoldState(ctx, e.from, r.allDrainSubs()); err != nil {
		return pos, err
	}
	r.held = pos.held
	to, err := r.readAccess(ctx, e.to, d.to.name)
	if err != nil {
		return pos, err
	}
	from, err := r.readAccess(ctx, e.from, d.from.name)
	if err != nil {
		return pos, err
	}
	pos.toOpen, pos.toClosed, pos.toReadOnly = to.open, to.fenced, to.readOnly
	pos.fromOpen, pos.fromFenced, pos.fromReadOnly = from.open, from.fenced && len(r.fence) > 0, from.readOnly
	switch p.Method {
	case MethodPgBouncer:
		pos.stopped, pos.atTarget = len(pos.bouncers) > 0, len(pos.bouncers) > 0
		for _, b := range pos.bouncers {
			pos.stopped = pos.stopped && b.all(func(e entryPos) bool { return e.paused })
			pos.atTarget = pos.atTarget && b.all(func(e entryPos) bool { return !e.paused && e.pointsAt == "to" })
		}
	case MethodNologin:
		pos.stopped = pos.fromFenced
		pos.atTarget = pos.stopped && pos.toOpen
	default:
		pos.stopped = pos.fromReadOnly
		pos.atTarget = pos.stopped && pos.toOpen
	}
	return pos, nil
}

// describe says where the servers are, in a line.
func (r *run) describe(pos position) string {
	d := r.d
	name := func(w string) string {
		switch w {
		case "from":
			return d.from.name
		case "to":
			return d.to.name
		}
		return w
	}
	var parts []string
	for _, b := range pos.bouncers {
		var es []string
		for _, e := range b.entries {
			s := e.name + " -> " + name(e.pointsAt)
			if e.iniAt != e.pointsAt {
				s += " (ini: " + name(e.iniAt) + ")"
			}
			if e.paused {
				s += ", PAUSED"
			}
			es = append(es, s)
		}
		parts = append(parts, "PgBouncer "+b.name+": "+strings.Join(es, ", "))
	}
	onOff := func(on bool) string {
		if on {
			return "on"
		}
		return "off"
	}
	if pos.held {
		parts = append(parts, d.from.name+"'s commits held for "+d.to.name+"'s apply")
	}
	for k, db := range r.dbs {
		dp := pos.db(k)
		prefix := ""
		if len(r.dbs) > 1 {
			prefix = db.Name + ": "
		}
		parts = append(parts, fmt.Sprintf("%s%s -> %s replication %s", prefix, d.from.name, d.to.name, onOff(dp.drainedOn)),
			fmt.Sprintf("%s%s -> %s replication %s", prefix, d.to.name, d.from.name, onOff(dp.oppositeOn)))
	}
	switch {
	case pos.toOpen && pos.fromFenced:
		parts = append(parts, "application roles connect on "+d.to.name+" only")
	case pos.toOpen:
		parts = append(parts, "application roles connect on "+d.to.name+" and "+d.from.name)
	case pos.fromFenced:
		parts = append(parts, "application roles connect nowhere")
	default:
		parts = append(parts, "application roles connect on "+d.from.name+" only")
	}
	return strings.Join(parts, "; ")
}
