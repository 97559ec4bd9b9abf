package pg

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Session is one client session of a database, as pg_stat_activity shows it.
type Session struct {
	PID         int32  `json:"pid"`
	User        string `json:"user"`
	Application string `json:"application"`
	// Client is the client's address and port ("local" for a Unix socket).
	Client string `json:"client"`
	State  string `json:"state"`
	// XactAge is how long its transaction has been open (0: none).
	XactAge   time.Duration `json:"xact_age_ns"`
	WaitEvent string        `json:"wait_event,omitempty"`
	Query     string        `json:"query,omitempty"`
	// Ours marks pgbluegreen's own sessions (its application name, its role).
	Ours bool `json:"ours"`
}

// String is how a session is named in a message.
func (s Session) String() string {
	out := fmt.Sprintf("pid %d %s@%s", s.PID, s.User, s.Client)
	if s.Application != "" {
		out += " (" + s.Application + ")"
	}
	if s.XactAge > 0 {
		out += fmt.Sprintf(", transaction open %s", s.XactAge.Round(time.Millisecond))
	}
	return out
}

func SessionList(ss []Session) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.String()
	}
	return strings.Join(names, "; ")
}

// sessionColumns are a client session's columns in pg_stat_activity:
// pid, user, application, client, state, transaction age (s), wait event,
// query (first 200 characters). The queries below add whether the
// session is ours, and what else they need.
const sessionColumns = `pid, coalesce(usename::text, ''), coalesce(application_name, ''),
       CASE WHEN client_addr IS NULL THEN 'local' ELSE host(client_addr) || ':' || client_port END,
       coalesce(state, ''), coalesce(extract(epoch FROM now() - xact_start), 0)::float8,
       coalesce(wait_event_type || ':' || wait_event, ''), left(coalesce(query, ''), 200),`

// clientSessionsFrom selects the client sessions of the current database,
// except the one asking, by pid.
const clientSessionsFrom = `
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND datname = current_database() AND pid <> pg_backend_pid()
ORDER BY pid`

// sessionsQuery reads the client sessions of the current database, except
// the one asking. Columns: sessionColumns, then ours.
const sessionsQuery = "\nSELECT " + sessionColumns + `
       application_name LIKE 'pgbluegreen%' AND usename = current_user` + clientSessionsFrom

// sessionQuerier is a pool or a connection.
type sessionQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ReadSessions lists the client sessions of q's database.
func ReadSessions(ctx context.Context, q sessionQuerier) ([]Session, error) {
	acts, err := readClientSessions(ctx, q, sessionsQuery, false)
	if err != nil {
		return nil, err
	}
	out := make([]Session, len(acts))
	for i, a := range acts {
		out[i] = a.Session
	}
	return out, nil
}

// readClientSessions runs sessionsQuery, or activityQuery (started: its
// rows also say when each session started and entered its state).
func readClientSessions(ctx context.Context, q sessionQuerier, sql string, started bool) ([]Activity, error) {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("read the sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Activity, error) {
		var a Activity
		var age, stateAge float64
		dest := []any{&a.PID, &a.User, &a.Application, &a.Client, &a.State, &age, &a.WaitEvent, &a.Query, &a.Ours}
		if started {
			dest = append(dest, &a.BackendStart, &stateAge)
		}
		err := r.Scan(dest...)
		a.XactAge = time.Duration(age * float64(time.Second))
		a.StateAge = time.Duration(stateAge * float64(time.Second))
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the sessions: %w", err)
	}
	return out, nil
}

// freeConnectionsQuery is how many more sessions the server would accept
// from a user that is not a superuser: max_connections less the reserved
// ones and the client sessions open.
const freeConnectionsQuery = `SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int - count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend'`

// FreeConnections reads how many more sessions server on (a pool of it)
// would accept: copy-data's preflight weighs its sessions against it.
func FreeConnections(ctx context.Context, q RowQuerier, on string) (int, error) {
	var free int
	if err := q.QueryRow(ctx, freeConnectionsQuery).Scan(&free); err != nil {
		return 0, fmt.Errorf("read %s's free connections: %w", on, err)
	}
	return free, nil
}

// ServerPIDs are the backend pids of every server connection the
// PgBouncer holds (SHOW SERVERS' remote_pid): the sessions that come
// through it.
func (c *Console) ServerPIDs(ctx context.Context) ([]int32, error) {
	rows, err := c.Show(ctx, "SERVERS")
	if err != nil {
		return nil, err
	}
	var out []int32
	for _, r := range rows {
		v, ok := r["remote_pid"]
		if !ok {
			return nil, fmt.Errorf("PgBouncer %s: SHOW SERVERS has no remote_pid column: PgBouncer 1.8 or later is needed to tell its sessions from others", c.Name)
		}
		if pid, err := strconv.ParseInt(v, 10, 32); err == nil && pid > 0 {
			out = append(out, int32(pid))
		}
	}
	return out, nil
}
