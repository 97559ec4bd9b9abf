package cutover

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Where writes go, for status, cleanup and the screen: read from the
// servers, settled or not, and whether a switch stopped half way.

// Traffic is where the application's writes go, read from the servers.
type Traffic struct {
	// Target is "blue", "green", "paused" or "unknown".
	Target string `json:"target"`
	// How says how it was determined, in a line.
	How string `json:"how"`
	// Warnings are what looks wrong (the roles can log in on both sides, an
	// ini that disagrees with what its PgBouncer serves).
	Warnings []string `json:"warnings,omitempty"`
	// Settled: nothing is half way: writes go to one side, no PgBouncer is
	// paused or would move at its next RELOAD, the roles log in on one side.
	Settled bool      `json:"settled"`
	ReadAt  time.Time `json:"read_at"`
}

// ReadTraffic reads where writes go: PgBouncer's SHOW DATABASES for the
// pgbouncer method, the fence roles' LOGIN (and read-only settings) on
// blue and green for every method.
func ReadTraffic(ctx context.Context, p Params) Traffic {
	p.defaults()
	t := Traffic{Target: "unknown", ReadAt: time.Now().UTC()}
	login := map[string]bool{}
	var how []string
	for _, s := range []side{{"blue", p.Blue, p.BlueEndpoint}, {"green", p.Green, p.GreenEndpoint}} {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			how = append(how, s.name+" unreachable: "+err.Error())
			continue
		}
		off, err := pg.RolesToChange(ctx, c, p.FenceRoles, true)
		ro, rerr := pg.IsReadOnly(ctx, c)
		c.Release()
		if err != nil || rerr != nil {
			how = append(how, fmt.Sprintf("%s: %v", s.name, errJoin(err, rerr)))
			continue
		}
		login[s.name] = len(off) == 0 && !ro
		state := "closed (roles without LOGIN)"
		switch {
		case ro:
			state = "read-only"
		case login[s.name]:
			state = "open"
		}
		how = append(how, s.name+" "+state)
	}
	if login["blue"] && login["green"] && len(p.FenceRoles) > 0 {
		t.Warnings = append(t.Warnings, "the application roles can log in on both blue and green: writes may land on both (before a cutover, block-green-logins closes green)")
	}
	if p.Method != MethodPgBouncer {
		switch {
		case login["blue"] && !login["green"]:
			t.Target = "blue"
		case login["green"] && !login["blue"]:
			t.Target = "green"
		case !login["blue"] && !login["green"] && len(how) == 2:
			t.Target = "paused"
		}
		t.How = strings.Join(how, "; ")
		t.Settled = (t.Target == "blue" || t.Target == "green") && len(t.Warnings) == 0
		return t
	}
	targets := map[string]bool{}
	var bhow []string
	for _, b := range p.Bouncers {
		c, err := pg.ConnectConsole(ctx, b.Name, b.AdminConninfo, p.StatementTimeout)
		if err != nil {
			bhow = append(bhow, "PgBouncer "+b.Name+" unreachable: "+err.Error())
			targets["unknown"] = true
			continue
		}
		db, err := c.Database(ctx, b.Database)
		c.Close()
		if err != nil {
			bhow = append(bhow, err.Error())
			targets["unknown"] = true
			continue
		}
		to := fmt.Sprintf("%s:%d", db.Host, db.Port)
		switch {
		case db.Host == p.BlueEndpoint.Host && db.Port == p.BlueEndpoint.Port:
			to = "blue"
		case db.Host == p.GreenEndpoint.Host && db.Port == p.GreenEndpoint.Port:
			to = "green"
		}
		s := fmt.Sprintf("PgBouncer %s: SHOW DATABASES %s -> %s:%d (%s)", b.Name, b.Database, db.Host, db.Port, to)
		if e, err := pg.ReadBouncerEntry(b.Ini, b.Database); err != nil {
			t.Warnings = append(t.Warnings, fmt.Sprintf("PgBouncer %s's ini could not be read: %v", b.Name, err))
		} else if e.Get("host") != db.Host || e.Get("port") != fmt.Sprint(db.Port) {
			t.Warnings = append(t.Warnings, fmt.Sprintf("PgBouncer %s's ini points %s at %s:%s while it serves %s:%d: its next RELOAD would move the traffic", b.Name, b.Database, e.Get("host"), e.Get("port"), db.Host, db.Port))
		}
		if db.Paused {
			s += ", paused"
			targets["paused"] = true
		} else {
			targets[to] = true
		}
		bhow = append(bhow, s)
	}
	switch {
	case targets["paused"]:
		t.Target = "paused"
	case len(targets) == 1 && (targets["blue"] || targets["green"]):
		for k := range targets {
			t.Target = k
		}
	}
	t.How = strings.Join(append(bhow, how...), "; ")
	t.Settled = (t.Target == "blue" || t.Target == "green") && len(t.Warnings) == 0
	return t
}

// SwitchState is where a switch in one direction stands.
type SwitchState struct {
	State string `json:"state"`
	// Where says what the servers say, in a line.
	Where string `json:"where"`
	// Paused: some PgBouncer holds the application's clients.
	Paused bool `json:"paused"`
}

// ReadSwitchState reads where a cutover (rollback false: source blue) or a
// rollback stands. p.Prior, when the caller has the attempt's, tells a
// server_login_retry left at 0 from one configured so.
func ReadSwitchState(ctx context.Context, p Params, rollback bool) (st SwitchState, err error) {
	r := newRun(&p, rollback, "")
	defer r.finish(&err)
	if r.e, err = r.open(ctx); err != nil {
		return st, err
	}
	pos, err := r.readPosition(ctx)
	if err != nil {
		return st, err
	}
	st.Where = r.describe(pos)
	retryLeft := false
	for _, b := range pos.bouncers {
		st.Paused = st.Paused || b.paused
		retryLeft = retryLeft || b.loginRetry == "0" && p.Prior != nil && p.Prior.LoginRetry[b.name] != "0"
	}
	fenced := pos.fromFenced || len(p.FenceRoles) == 0
	sourceClean := !pos.stopped && !st.Paused && pos.drainedOn && !pos.oppositeOn && pos.toClosed && !retryLeft && !pos.held
	if p.Method == MethodPgBouncer {
		for _, b := range pos.bouncers {
			// An ini that cannot be read is the precheck's to report (an
			// SSH host key refused there, nothing paused).
			iniOK := b.iniAt == "from" || strings.HasPrefix(b.iniAt, "unreadable")
			sourceClean = sourceClean && b.pointsAt == "from" && iniOK
		}
	}
	switch {
	case pos.atTarget && !pos.drainedOn && pos.oppositeOn && fenced && !retryLeft:
		st.State = StateTarget
	case sourceClean:
		st.State = StateSource
	default:
		st.State = StateBetween
	}
	return st, nil
}
