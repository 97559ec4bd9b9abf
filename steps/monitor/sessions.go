package monitor

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// Who is connected: blue's and green's client sessions, grouped by user,
// application and client, with the ones that matter to a cutover marked
// (a long transaction turns the pause into an abort; a session that does
// not come through PgBouncer keeps writing to blue after the switch), and
// each PgBouncer's databases and pools. For the connections pane and
// `pgbluegreen sessions`.

// Connections is one read of who is connected.
type Connections struct {
	At time.Time `json:"at"`
	// LongAfter is the age past which a transaction is long
	// (sessions.long_transaction): one such transaction in flight at
	// PgBouncer's PAUSE aborts the cutover.
	LongAfter time.Duration     `json:"long_after_ns"`
	Servers   []ServerSessions  `json:"servers"`
	Bouncers  []BouncerActivity `json:"pgbouncers"`
	Flagged   int               `json:"flagged"`
	// Sides says, per PgBouncer and database, whether it points at blue or
	// green ("" when at neither).
	Sides     map[string]map[string]string `json:"sides"`
	Took      time.Duration                `json:"took_ns"`
	endpoints map[string]endpoint          // by side, for the tests
}

// pg's types of who is connected, named here so the screen needs no
// import of pg.
type (
	// BouncerActivity is what one PgBouncer says.
	BouncerActivity = pg.BouncerActivity
	// BouncerDatabase is one database of a PgBouncer.
	BouncerDatabase = pg.BouncerDatabase
	// BouncerPool is one pool of a PgBouncer.
	BouncerPool = pg.BouncerPool
	// Activity is one client session with its start.
	Activity = pg.Activity
	// Session is one client session.
	Session = pg.Session
)

type endpoint = pg.Endpoint

// ServerSessions are one server's client sessions.
type ServerSessions struct {
	Name string `json:"name"`
	// Err says why the server could not be read ("" when it was).
	Err      string         `json:"error,omitempty"`
	Sessions []SessionView  `json:"sessions"`
	Groups   []SessionGroup `json:"groups"`
}

// SessionView is one client session, as the pane shows it.
type SessionView struct {
	pg.Activity
	// Via names the PgBouncer whose server connection it is ("" for none).
	Via string `json:"via,omitempty"`
	// Direct: neither pgbluegreen's nor a configured PgBouncer's server
	// connection. On the server writes go to, it keeps writing there after
	// a switch.
	Direct bool `json:"direct"`
	// Long: its transaction is older than Connections.LongAfter.
	Long bool `json:"long_transaction"`
}

// SessionGroup is the sessions of one user, application and client
// address (and PgBouncer, for its server connections).
type SessionGroup struct {
	User        string `json:"user"`
	Application string `json:"application"`
	// Client is the client's address without its port ("local" for a socket).
	Client   string         `json:"client"`
	Via      string         `json:"via,omitempty"`
	Ours     bool           `json:"ours"`
	Sessions int            `json:"sessions"`
	States   map[string]int `json:"states"`
	// OldestXact is the age of the group's oldest open transaction.
	OldestXact time.Duration `json:"oldest_xact_ns"`
	WaitEvents []string      `json:"wait_events,omitempty"`
	Direct     int           `json:"direct"`
	Long       int           `json:"long_transactions"`
	PIDs       []int32       `json:"pids"`
	// Members are the indexes of its sessions in ServerSessions.Sessions.
	Members []int `json:"-"`
}

// Connections reads who is connected, bounded like every read of the
// monitor (twice its bound: two servers and every PgBouncer).
func (m *Monitor) Connections(ctx context.Context) (Connections, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*m.timeout)
	defer cancel()
	return ReadConnections(ctx, m.cfg, m.blue, m.green), nil
}

// ReadConnections reads blue's and green's sessions (either pool may be
// nil), then each configured PgBouncer: a server connection that appears
// in between is then never taken for a stray session. A server or a
// PgBouncer that does not answer is reported in its Err.
func ReadConnections(ctx context.Context, c *config.Config, blue, green *pgxpool.Pool) Connections {
	start := time.Now()
	out := Connections{At: start.UTC(), LongAfter: c.Sessions.LongTransaction.Duration, endpoints: map[string]endpoint{}}
	blueCI := c.Blue.Conninfo
	if c.Replication.BlueConninfo != "" {
		blueCI = c.Replication.BlueConninfo
	}
	for _, s := range []struct {
		name, conninfo string
		pool           *pgxpool.Pool
	}{{"blue", blueCI, blue}, {"green", c.Green.Conninfo, green}} {
		ss := ServerSessions{Name: s.name}
		if ep, err := pg.EndpointOf(s.conninfo); err == nil {
			out.endpoints[s.name] = ep
		}
		switch {
		case s.pool == nil:
			ss.Err = "no connection configured"
		default:
			acts, err := pg.ReadActivity(ctx, s.pool)
			if err != nil {
				ss.Err = state.Redact(err.Error())
			}
			for _, a := range acts {
				ss.Sessions = append(ss.Sessions, SessionView{Activity: a})
			}
		}
		out.Servers = append(out.Servers, ss)
	}
	timeout := c.Timeouts.Connect.Duration
	for _, b := range c.Cutover.PgBouncer {
		ba := pg.ReadBouncer(ctx, config.BouncerName(b), b.AdminConninfo, timeout)
		ba.Err = state.Redact(ba.Err)
		out.Bouncers = append(out.Bouncers, ba)
	}
	out.mark()
	out.Took = time.Since(start)
	return out
}

// mark tells each session whose it is (a PgBouncer's, pgbluegreen's, or
// direct), marks long transactions and groups the sessions.
func (c *Connections) mark() {
	via := map[string]map[int32]string{} // side -> pid -> PgBouncer
	c.Sides = map[string]map[string]string{}
	for _, b := range c.Bouncers {
		sides := map[string]string{} // PgBouncer database -> side
		c.Sides[b.Name] = sides
		for _, d := range b.Databases {
			for side, ep := range c.endpoints {
				if d.Host == ep.Host && d.Port == ep.Port {
					sides[d.Name] = side
				}
			}
		}
		for _, s := range b.Servers {
			side := sides[s.Database]
			for name, ep := range c.endpoints {
				if side == "" && s.Addr == ep.Host && s.Port == ep.Port {
					side = name
				}
			}
			if side != "" && s.PID > 0 {
				if via[side] == nil {
					via[side] = map[int32]string{}
				}
				via[side][s.PID] = b.Name
			}
		}
	}
	c.Flagged = 0
	for k := range c.Servers {
		srv := &c.Servers[k]
		for i := range srv.Sessions {
			s := &srv.Sessions[i]
			s.Via = via[srv.Name][s.PID]
			s.Direct = s.Via == "" && !s.Ours
			s.Long = s.XactAge > c.LongAfter
			if s.Long || s.Direct {
				c.Flagged++
			}
		}
		srv.Groups = GroupSessions(srv.Sessions)
	}
}

// clientHost is a client's address without its port.
func clientHost(client string) string {
	if i := strings.LastIndexByte(client, ':'); i > 0 {
		return client[:i]
	}
	return client
}

// groupSessions groups sessions by user, application, client address and
// PgBouncer; groups with a marked session first, then the largest.
func GroupSessions(ss []SessionView) []SessionGroup {
	type key struct{ user, app, client, via string }
	at := map[key]int{}
	var out []SessionGroup
	for i, s := range ss {
		k := key{s.User, s.Application, clientHost(s.Client), s.Via}
		n, ok := at[k]
		if !ok {
			n = len(out)
			at[k] = n
			out = append(out, SessionGroup{User: k.user, Application: k.app, Client: k.client, Via: k.via, Ours: s.Ours, States: map[string]int{}})
		}
		g := &out[n]
		g.Sessions++
		g.Members = append(g.Members, i)
		g.PIDs = append(g.PIDs, s.PID)
		g.States[orWordS(s.State, "unknown")]++
		g.OldestXact = max(g.OldestXact, s.XactAge)
		if s.WaitEvent != "" && !slices.Contains(g.WaitEvents, s.WaitEvent) {
			g.WaitEvents = append(g.WaitEvents, s.WaitEvent)
		}
		if s.Direct {
			g.Direct++
		}
		if s.Long {
			g.Long++
		}
	}
	slices.SortStableFunc(out, func(a, b SessionGroup) int {
		fa, fb := a.Direct+a.Long > 0, b.Direct+b.Long > 0
		if fa != fb {
			if fa {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(b.Sessions, a.Sessions), cmp.Compare(a.User, b.User), cmp.Compare(a.Application, b.Application))
	})
	for k := range out {
		slices.Sort(out[k].WaitEvents)
	}
	return out
}

func orWordS(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// StatesText writes a group's states, largest first: "6 idle, 2 active".
func (g SessionGroup) StatesText() string {
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range g.States {
		all = append(all, kv{k, n})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.k, b.k)) })
	parts := make([]string, len(all))
	for i, x := range all {
		parts[i] = fmt.Sprintf("%d %s", x.n, x.k)
	}
	return strings.Join(parts, ", ")
}
