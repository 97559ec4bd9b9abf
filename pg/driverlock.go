package pg

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/jackc/pgx/v5"
)

// One driver per blue, across hosts: while a step runs, the driver holds a
// session-level advisory lock on blue on a connection of its own; a second
// driver (another state file, another host) is refused and told who holds
// it. The state file's own lock only stops a second driver on the same
// host and state file.

// DriverApplicationPrefix begins the application_name of a driver's lock
// session, so pg_stat_activity shows who drives blue (and the cutover can
// leave that session alone when it ends the others).
const DriverApplicationPrefix = "pgbluegreen driver"

// driverLockKeys are the two int4 keys of the lock (pg_locks shows them as
// classid and objid, objsubid 2), derived from a constant so every version
// of pgbluegreen takes the same lock.
var driverLockKeys = [2]int32{int32(crc32.ChecksumIEEE([]byte(DriverApplicationPrefix)) & 0x7fffffff), 1}

// DriverLockQuery takes the lock without waiting. Columns: taken.
const DriverLockQuery = `SELECT pg_try_advisory_lock($1::int4, $2::int4)`

// DriverUnlockQuery releases the lock before its session ends, so it is
// free the moment Release returns. Columns: released.
const DriverUnlockQuery = `SELECT pg_advisory_unlock($1::int4, $2::int4)`

// DriverHolderQuery names the session holding the lock. Columns: pid,
// application_name, client address ('local' for a socket), user, since.
const DriverHolderQuery = `SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), coalesce(a.usename::text, ''), a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int4::oid AND l.objid = $2::int4::oid AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
LIMIT 1`

// DriverLock is the lock held: its session ends when it is released.
type DriverLock struct {
	conn *pgx.Conn
}

// DriverHeldError says the lock is held by another driver, and which.
type DriverHeldError struct {
	PID         int
	Application string
	Client      string
	User        string
	Since       time.Time
}

// Error names the driver that holds the lock.
func (e *DriverHeldError) Error() string {
	return fmt.Sprintf("blue is driven by another pgbluegreen: %q (server pid %d, connected from %s as %s since %s); wait until its step ends, or stop it there",
		e.Application, e.PID, e.Client, e.User, e.Since.Local().Format(time.DateTime))
}

// AcquireDriverLock opens a session of its own on blue (cfg: blue's
// connection settings, without the pool's tracer) named application and
// takes the lock, or returns a *DriverHeldError naming the holder. A
// connection error is returned as it is: the caller decides whether a run
// may go on without the lock.
func AcquireDriverLock(ctx context.Context, cfg *pgx.ConnConfig, application string) (*DriverLock, error) {
	cfg = cfg.Copy()
	cfg.Tracer = nil // the lock is the runner's, not a step's statement
	if len(application) > 63 {
		application = application[:63]
	}
	cfg.RuntimeParams["application_name"] = application
	delete(cfg.RuntimeParams, "default_transaction_read_only")
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var taken bool
	if err := conn.QueryRow(ctx, DriverLockQuery, driverLockKeys[0], driverLockKeys[1]).Scan(&taken); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("take the driver lock on blue: %w", err)
	}
	if taken {
		return &DriverLock{conn: conn}, nil
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var h DriverHeldError
	err = conn.QueryRow(ctx, DriverHolderQuery, driverLockKeys[0], driverLockKeys[1]).Scan(&h.PID, &h.Application, &h.Client, &h.User, &h.Since)
	if errors.Is(err, pgx.ErrNoRows) {
		// Released between the two statements: say so rather than guess.
		return nil, &DriverHeldError{Application: "(released just now: try again)", Since: time.Now()}
	}
	if err != nil {
		return nil, fmt.Errorf("the driver lock on blue is held, and its holder could not be read: %w", err)
	}
	return nil, &h
}

// Release unlocks and ends the lock's session (a session ended by the
// server released the lock already).
func (l *DriverLock) Release(ctx context.Context) {
	if l == nil || l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var released bool
	_ = l.conn.QueryRow(ctx, DriverUnlockQuery, driverLockKeys[0], driverLockKeys[1]).Scan(&released)
	_ = l.conn.Close(ctx)
}
