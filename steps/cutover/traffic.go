package cutover

import (
	"context"
	"fmt"
	"slices"
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
// pgbouncer method (every entry of every moving database), and for every
// method who can log in and connect to the moving databases on blue and
// green, and which are read-only.
func ReadTraffic(ctx context.Context, p Params) Traffic {
	p.defaults()
	t := Traffic{Target: "unknown", ReadAt: time.Now().UTC()}
	var names []string
	for _, db := range p.Databases {
		names = append(names, db.Name)
	}
	open := map[string]bool{}
	var how []string
	for _, s := range []string{"blue", "green"} {
		state, isOpen, err := readSideTraffic(ctx, p, s, names)
		if err != nil {
			how = append(how, s+": "+err.Error())
			continue
		}
		open[s] = isOpen
		how = append(how, s+" "+state)
	}
	if open["blue"] && open["green"] && len(p.FenceRoles) > 0 {
		t.Warnings = append(t.Warnings, "the application roles can log in on both blue and green: writes may land on both (before a cutover, block-green-logins closes green)")
	}
	if p.Method != MethodPgBouncer {
		switch {
		case open["blue"] && !open["green"]:
			t.Target = "blue"
		case open["green"] && !open["blue"]:
			t.Target = "green"
		case !open["blue"] && !open["green"] && len(how) == 2 && !strings.Contains(strings.Join(how, ""), ": "):
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
		rows, err := c.Databases(ctx)
		c.Close()
		if err != nil {
			bhow = append(bhow, err.Error())
			targets["unknown"] = true
			continue
		}
		entries := trafficEntries(p, b, rows, names)
		if len(entries) == 0 {
			bhow = append(bhow, fmt.Sprintf("PgBouncer %s: SHOW DATABASES has no database %q", b.Name, b.Database))
			targets["unknown"] = true
			continue
		}
		var es []string
		for _, db := range entries {
			to := fmt.Sprintf("%s:%d", db.Host, db.Port)
			switch {
			case db.Host == p.BlueEndpoint.Host && db.Port == p.BlueEndpoint.Port:
				to = "blue"
			case db.Host == p.GreenEndpoint.Host && db.Port == p.GreenEndpoint.Port:
				to = "green"
			}
			s := fmt.Sprintf("%s -> %s:%d (%s)", db.Name, db.Host, db.Port, to)
			if e, err := pg.ReadBouncerEntry(b.Ini, db.Name); err != nil {
				t.Warnings = append(t.Warnings, fmt.Sprintf("PgBouncer %s's ini could not be read: %v", b.Name, err))
			} else if e.Get("host") != db.Host || e.Get("port") != fmt.Sprint(db.Port) {
				t.Warnings = append(t.Warnings, fmt.Sprintf("PgBouncer %s's ini points %s at %s:%s while it serves %s:%d: its next RELOAD would move the traffic", b.Name, db.Name, e.Get("host"), e.Get("port"), db.Host, db.Port))
			}
			if db.Paused {
				s += ", paused"
				targets["paused"] = true
			} else {
				targets[to] = true
			}
			es = append(es, s)
		}
		bhow = append(bhow, fmt.Sprintf("PgBouncer %s: SHOW DATABASES %s", b.Name, strings.Join(es, ", ")))
	}
	switch {
	case targets["paused"]:
		t.Target = "paused"
	case len(targets) == 1 && (targets["blue"] || targets["green"]):
		for k := range targets {
			t.Target = k
		}
	case targets["blue"] && targets["green"]:
		t.Warnings = append(t.Warnings, "PgBouncer sends some moving databases to blue and others to green: the switch stopped half way (a way out settles it)")
	}
	t.How = strings.Join(append(bhow, how...), "; ")
	t.Settled = (t.Target == "blue" || t.Target == "green") && len(t.Warnings) == 0
	return t
}

// trafficEntries are PgBouncer b's entries of the moving databases: its
// configured one, and every entry whose server database moves at blue's
// or green's host and port.
func trafficEntries(p Params, b pg.BouncerParams, rows []pg.BouncerDatabase, names []string) []pg.BouncerDatabase {
	var out []pg.BouncerDatabase
	for _, d := range rows {
		if d.Name == b.Database {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil
	}
	dbs := append(slices.Clone(names), p.BlueEndpoint.DBName, p.GreenEndpoint.DBName)
	for _, d := range pg.MovedEntries(rows, dbs, p.BlueEndpoint, p.GreenEndpoint) {
		if d.Name != b.Database {
			out = append(out, d)
		}
	}
	return out
}

// readSideTraffic says how side s lets the fence roles into the moving
// databases, in a word or two, and whether it is open to them.
func readSideTraffic(ctx context.Context, p Params, s string, names []string) (string, bool, error) {
	if len(p.Databases) == 0 {
		return "", false, fmt.Errorf("no database to read")
	}
	pool := p.Databases[0].Blue
	if s == "green" {
		pool = p.Databases[0].Green
	}
	if pool == nil {
		return "", false, fmt.Errorf("no connection")
	}
	c, err := pool.Acquire(ctx)
	if err != nil {
		return "", false, fmt.Errorf("unreachable: %w", err)
	}
	defer c.Release()
	fr, err := pg.ReadFenceRoles(ctx, c, p.FenceRoles, p.Administrators, p.ReplicationRole)
	if err != nil {
		return "", false, err
	}
	acc, err := pg.ReadSideAccess(ctx, c, names, fr.Fence)
	if err != nil {
		return "", false, err
	}
	var closed []string
	if len(fr.Fence) > 0 {
		closed = acc.Closed()
	}
	switch {
	case len(acc.Missing) > 0:
		return "without " + strings.Join(acc.Missing, ", "), false, nil
	case len(acc.ReadOnly) > 0:
		return "read-only (" + strings.Join(acc.ReadOnly, ", ") + ")", false, nil
	case len(fr.Fence) > 0 && len(acc.NoLogin) == len(fr.Fence):
		return "closed (roles without LOGIN)", false, nil
	case len(closed) == len(names):
		return "closed (CONNECT revoked on " + strings.Join(closed, ", ") + ")", false, nil
	case len(closed) > 0:
		return "partly closed (CONNECT revoked on " + strings.Join(closed, ", ") + ")", false, nil
	case len(acc.NoLogin) > 0:
		return "partly closed (" + strings.Join(acc.NoLogin, ", ") + " without LOGIN)", false, nil
	}
	return "open", true, nil
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
		st.Paused = st.Paused || b.paused()
		retryLeft = retryLeft || b.loginRetry == "0" && p.Prior != nil && p.Prior.LoginRetry[b.name] != "0"
	}
	fenced := pos.fromFenced || len(r.fence) == 0
	sourceClean := !pos.stopped && !st.Paused && pos.allDB(func(d dbPos) bool { return d.drainedOn && !d.oppositeOn }) &&
		pos.toClosed && !retryLeft && !pos.held
	if p.Method == MethodPgBouncer {
		for _, b := range pos.bouncers {
			// An ini that cannot be read is the precheck's to report (an
			// SSH host key refused there, nothing paused).
			sourceClean = sourceClean && b.all(func(e entryPos) bool {
				return e.pointsAt == "from" && (e.iniAt == "from" || strings.HasPrefix(e.iniAt, "unreadable"))
			})
		}
	}
	switch {
	case pos.atTarget && pos.allDB(func(d dbPos) bool { return !d.drainedOn && d.oppositeOn }) && fenced && !retryLeft:
		st.State = StateTarget
	case sourceClean:
		st.State = StateSource
	default:
		st.State = StateBetween
	}
	return st, nil
}
