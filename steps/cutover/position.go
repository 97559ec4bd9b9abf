package cutover

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Where an attempt stands, read from the servers (never from the state
// file): PgBouncer's target and pause, the ini, the feeds, the logins. The
// ways out, the guard and status all start from it.

// position is where the servers are, relative to a direction (from: the
// side writes leave; to: the side they go to).
type position struct {
	bouncers []bouncerPos
	// stopped: the application cannot write on from (every PgBouncer
	// paused; the fence roles without LOGIN there; from read-only).
	stopped bool
	// atTarget: writes go to to, and are not stopped.
	atTarget bool
	// drainedOn: the feed from -> to still runs (its subscriptions on to
	// are enabled): nothing was drained and stopped yet.
	drainedOn bool
	// The feed to -> from: its slot on to (the reverse slot; a rollback's
	// forward slots are always there), its subscriptions on from.
	oppositeSlot, oppositeSub, oppositeOn bool
	// toOpen: every fence role can log in on to, and to is not read-only.
	toOpen bool
	// toClosed: no fence role can log in on to.
	toClosed, toReadOnly bool
	// fromFenced: no fence role can log in on from.
	fromFenced, fromReadOnly bool
	// held: the source's commits are held for the target's apply.
	held bool
}

// bouncerPos is one PgBouncer: whether it is paused, where SHOW DATABASES
// and its ini point ("from", "to", or the host:port), and its
// server_login_retry now.
type bouncerPos struct {
	name, pointsAt, iniAt, loginRetry string
	paused                            bool
}

// iniAtTarget reports whether every PgBouncer already serves the target
// and its ini says so too.
func (pos position) iniAtTarget() bool {
	for _, b := range pos.bouncers {
		if b.pointsAt != "to" || b.iniAt != "to" {
			return false
		}
	}
	return len(pos.bouncers) > 0
}

// servesSource reports whether SHOW DATABASES says the PgBouncer named
// name serves the source, whatever its ini says.
func (pos position) servesSource(name string) bool {
	for _, b := range pos.bouncers {
		if b.name == name {
			return b.pointsAt == "from"
		}
	}
	return false
}

// bouncerAtSource reports whether the PgBouncer named name serves the
// source and its ini says so too.
func (pos position) bouncerAtSource(name string) bool {
	for _, b := range pos.bouncers {
		if b.name == name {
			return b.pointsAt == "from" && b.iniAt == "from"
		}
	}
	return false
}

// stoppedPosition is where an attempt stands once writes stopped: nothing
// else has changed yet (the reverse slot and subscription were made before).
func (r *run) stoppedPosition() position {
	pos := position{stopped: true, drainedOn: true, oppositeSlot: true, oppositeSub: true,
		fromFenced: r.p.Method == MethodNologin, toClosed: true}
	for _, b := range r.p.Bouncers {
		pos.bouncers = append(pos.bouncers, bouncerPos{name: b.Name, pointsAt: "from", iniAt: "from", paused: true})
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
	p, d, f, e := r.p, r.d, r.f, r.e
	var pos position
	for k, c := range e.consoles {
		b := p.Bouncers[k]
		if c.Closed() {
			fresh, err := pg.ConnectConsole(ctx, b.Name, b.AdminConninfo, p.StatementTimeout)
			if err != nil {
				return pos, err
			}
			e.consoles[k].Close()
			e.consoles[k], c = fresh, fresh
		}
		db, err := c.Database(ctx, b.Database)
		if err != nil {
			return pos, err
		}
		pointsAt := r.where(db.Host, db.Port)
		// An ini that cannot be read (its host unreachable, its key not
		// verified) leaves the position to SHOW DATABASES, marked: an undo
		// then tries to put it back, and the precheck says why it failed.
		iniAt := pointsAt
		entry, err := r.ini(b).ReadEntry(ctx, b.Database)
		switch {
		case errors.Is(err, pg.ErrIniUnreadable):
		case err != nil:
			iniAt = "unreadable (" + err.Error() + ")"
		default:
			port := 0
			fmt.Sscan(entry.Get("port"), &port)
			iniAt = r.where(entry.Get("host"), port)
		}
		cfg, err := c.Config(ctx)
		if err != nil {
			return pos, err
		}
		pos.bouncers = append(pos.bouncers, bouncerPos{name: b.Name, paused: db.Paused, pointsAt: pointsAt,
			iniAt: iniAt, loginRetry: cfg["server_login_retry"]})
	}
	var err error
	if pos.drainedOn, _, err = pg.SubscriptionsState(ctx, e.to, f.drainSubs); err != nil {
		return pos, err
	}
	if pos.oppositeOn, pos.oppositeSub, err = pg.SubscriptionsState(ctx, e.from, f.startSubs); err != nil {
		return pos, err
	}
	if pos.held, _, err = pg.HoldState(ctx, e.from, f.drainSubs); err != nil {
		return pos, err
	}
	r.held = pos.held
	pos.oppositeSlot = true
	if !d.rollback {
		if pos.oppositeSlot, err = pg.SlotExists(ctx, e.to, p.Reverse); err != nil {
			return pos, err
		}
	}
	toOff, err := pg.RolesToChange(ctx, e.to, p.FenceRoles, true)
	if err != nil {
		return pos, err
	}
	toOn, err := pg.RolesToChange(ctx, e.to, p.FenceRoles, false)
	if err != nil {
		return pos, err
	}
	fromOn, err := pg.RolesToChange(ctx, e.from, p.FenceRoles, false)
	if err != nil {
		return pos, err
	}
	if pos.toReadOnly, err = pg.IsReadOnly(ctx, e.to); err != nil {
		return pos, err
	}
	if pos.fromReadOnly, err = pg.IsReadOnly(ctx, e.from); err != nil {
		return pos, err
	}
	pos.toOpen = len(toOff) == 0 && !pos.toReadOnly
	pos.toClosed = len(toOn) == 0
	pos.fromFenced = len(fromOn) == 0 && len(p.FenceRoles) > 0
	switch p.Method {
	case MethodPgBouncer:
		pos.stopped, pos.atTarget = len(pos.bouncers) > 0, len(pos.bouncers) > 0
		for _, b := range pos.bouncers {
			pos.stopped = pos.stopped && b.paused
			pos.atTarget = pos.atTarget && !b.paused && b.pointsAt == "to"
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
		s := fmt.Sprintf("PgBouncer %s -> %s", b.name, name(b.pointsAt))
		if b.iniAt != b.pointsAt {
			s += " (ini: " + name(b.iniAt) + ")"
		}
		if b.paused {
			s += ", PAUSED"
		}
		parts = append(parts, s)
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
	parts = append(parts, fmt.Sprintf("%s -> %s replication %s", d.from.name, d.to.name, onOff(pos.drainedOn)),
		fmt.Sprintf("%s -> %s replication %s", d.to.name, d.from.name, onOff(pos.oppositeOn)))
	switch {
	case pos.toOpen && pos.fromFenced:
		parts = append(parts, "application roles log in on "+d.to.name+" only")
	case pos.toOpen:
		parts = append(parts, "application roles log in on "+d.to.name+" and "+d.from.name)
	case pos.fromFenced:
		parts = append(parts, "application roles log in nowhere")
	default:
		parts = append(parts, "application roles log in on "+d.from.name+" only")
	}
	return strings.Join(parts, "; ")
}
