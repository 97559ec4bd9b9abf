package pg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Who is connected, for the connections pane and `pgbluegreen sessions`:
// each server's client sessions with when they started, and what each
// PgBouncer says of its databases, pools and server connections.

// Activity is one client session with when it started: a session to end
// is named by its pid and its start, so a pid reused meanwhile is never
// the one ended.
type Activity struct {
	Session
	BackendStart time.Time `json:"backend_start"`
	// StateAge is how long it has been in its state (idle for 5m).
	StateAge time.Duration `json:"state_age_ns"`
}

// activityQuery reads the client sessions of the current database, except
// the one asking. Columns: sessionColumns, ours, then backend_start and
// the seconds since the last state change.
const activityQuery = "\nSELECT " + sessionColumns + `
       coalesce(application_name LIKE 'pgbluegreen%' AND usename = current_user, false),
       backend_start, greatest(extract(epoch FROM clock_timestamp() - state_change), 0)::float8` + clientSessionsFrom

// ReadActivity lists the client sessions of q's database.
func ReadActivity(ctx context.Context, q sessionQuerier) ([]Activity, error) {
	return readClientSessions(ctx, q, activityQuery, true)
}

// BouncerPool is one row of PgBouncer's SHOW POOLS: a database and user's
// clients and server connections.
type BouncerPool struct {
	Database string `json:"database"`
	User     string `json:"user"`
	// ClActive are clients linked to a server or idle; ClWaiting wait for one.
	ClActive  int `json:"cl_active"`
	ClWaiting int `json:"cl_waiting"`
	SvActive  int `json:"sv_active"`
	SvIdle    int `json:"sv_idle"`
	SvUsed    int `json:"sv_used"`
	// MaxWait is how long the oldest waiting client has waited.
	MaxWait  time.Duration `json:"maxwait_ns"`
	PoolMode string        `json:"pool_mode"`
}

// BouncerServer is one of PgBouncer's server connections (SHOW SERVERS):
// the PgBouncer database it serves, the server's address and its
// backend's pid there.
type BouncerServer struct {
	Database string `json:"database"`
	Addr     string `json:"addr"`
	Port     int    `json:"port"`
	PID      int32  `json:"remote_pid"`
}

// Pools runs SHOW POOLS.
func (c *Console) Pools(ctx context.Context) ([]BouncerPool, error) {
	rows, err := c.Show(ctx, "POOLS")
	if err != nil {
		return nil, err
	}
	out := make([]BouncerPool, 0, len(rows))
	for _, m := range rows {
		n := func(k string) int { v, _ := strconv.Atoi(m[k]); return v }
		wait := time.Duration(n("maxwait"))*time.Second + time.Duration(n("maxwait_us"))*time.Microsecond
		out = append(out, BouncerPool{Database: m["database"], User: m["user"], ClActive: n("cl_active"), ClWaiting: n("cl_waiting"),
			SvActive: n("sv_active"), SvIdle: n("sv_idle"), SvUsed: n("sv_used"), MaxWait: wait, PoolMode: m["pool_mode"]})
	}
	return out, nil
}

// Servers runs SHOW SERVERS: where each server connection goes, and its
// backend's pid there (remote_pid, PgBouncer 1.8+).
func (c *Console) Servers(ctx context.Context) ([]BouncerServer, error) {
	rows, err := c.Show(ctx, "SERVERS")
	if err != nil {
		return nil, err
	}
	out := make([]BouncerServer, 0, len(rows))
	for _, m := range rows {
		if _, ok := m["remote_pid"]; !ok {
			return nil, fmt.Errorf("PgBouncer %s: SHOW SERVERS has no remote_pid column: PgBouncer 1.8 or later is needed to tell its sessions from others", c.Name)
		}
		port, _ := strconv.Atoi(m["port"])
		pid, _ := strconv.ParseInt(m["remote_pid"], 10, 32)
		out = append(out, BouncerServer{Database: m["database"], Addr: m["addr"], Port: port, PID: int32(pid)})
	}
	return out, nil
}

// BouncerActivity is what one PgBouncer says, read for the connections pane.
type BouncerActivity struct {
	Name      string            `json:"name"`
	Databases []BouncerDatabase `json:"databases"`
	Pools     []BouncerPool     `json:"pools"`
	Servers   []BouncerServer   `json:"servers"`
	// Err says why it could not be read ("" when it was).
	Err string `json:"error,omitempty"`
}

// ReadBouncer reads one PgBouncer's databases, pools and server
// connections through its admin console; a PgBouncer that does not answer
// is reported in Err, not as an error, so the others still show.
func ReadBouncer(ctx context.Context, name, adminConninfo string, timeout time.Duration) BouncerActivity {
	out := BouncerActivity{Name: name}
	c, err := ConnectConsole(ctx, name, adminConninfo, timeout)
	if err != nil {
		out.Err = err.Error()
		return out
	}
	defer c.Close()
	var errs []error
	var e error
	if out.Databases, e = c.Databases(ctx); e != nil {
		errs = append(errs, e)
	}
	if out.Pools, e = c.Pools(ctx); e != nil {
		errs = append(errs, e)
	}
	if out.Servers, e = c.Servers(ctx); e != nil {
		errs = append(errs, e)
	}
	if err := errors.Join(errs...); err != nil {
		out.Err = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	return out
}

// TerminateParams ends one client session on blue or green: the
// operator's choice in the connections pane, confirmed by the database's
// name. The session is named by its pid and its start, and pgbluegreen's
// own sessions are never ended.
type TerminateParams struct {
	// On is "blue" or "green".
	On           string
	PID          int32
	BackendStart time.Time
}

// Statements is the one statement Exec runs.
func (p TerminateParams) Statements() []Stmt {
	return []Stmt{{On: p.On,
		SQL: `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE pid = $1 AND backend_start = $2 AND NOT (application_name LIKE 'pgbluegreen%' AND usename = current_user)`,
		Args: []any{p.PID, p.BackendStart},
		Note: "that session only: its pid and start; never pgbluegreen's own"}}
}

// Exec ends the session; ended is false when no such session is left (it
// ended meanwhile, or it is pgbluegreen's own).
func (p TerminateParams) Exec(ctx context.Context, q RowQuerier) (ended bool, err error) {
	err = p.Statements()[0].QueryRow(ctx, q, &ended)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("end session %d on %s: %w", p.PID, p.On, err)
	}
	return ended, nil
}
