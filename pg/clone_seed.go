package pg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Replication objects a clone inherits, the seed and the origins: the
// clone strategies' SQL on green.

// relicQuerier is a pool or a connection.
type relicQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// RelicReplication lists the replication objects on green that came from
// blue with a clone: publications of green's database and logical slots,
// as "publication X" / "logical slot Y". Before green subscribes (and
// before a clone's upgrade) the list must be empty: create-subscriptions
// refuses otherwise (trap 4).
func RelicReplication(ctx context.Context, green *pgxpool.Pool) ([]string, error) {
	r, err := ReadRelics(ctx, green)
	return r.Strings(), err
}

// RelicReplicationConn is RelicReplication on one connection.
func RelicReplicationConn(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	r, err := ReadRelics(ctx, conn)
	return r.Strings(), err
}

// Strings names each relic, "logical slot Y" before "publication X".
func (r Relics) Strings() []string {
	var out []string
	for _, s := range r.Slots {
		out = append(out, "logical slot "+s)
	}
	for _, p := range r.Publications {
		out = append(out, "publication "+p)
	}
	return out
}

// Relics are the replication objects a clone inherited: the publications
// of one database and the server's logical slots.
type Relics struct {
	Publications []string
	Slots        []string
}

// ReadRelics lists the publications of the current database and the
// server's logical slots, on a pool or a connection.
func ReadRelics(ctx context.Context, q relicQuerier) (Relics, error) {
	var r Relics
	rows, err := q.Query(ctx, "SELECT pubname::text FROM pg_publication ORDER BY 1")
	if err != nil {
		return r, fmt.Errorf("list publications: %w", err)
	}
	if r.Publications, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return r, fmt.Errorf("list publications: %w", err)
	}
	rows, err = q.Query(ctx, "SELECT slot_name::text FROM pg_replication_slots WHERE slot_type = 'logical' ORDER BY 1")
	if err != nil {
		return r, fmt.Errorf("list logical slots: %w", err)
	}
	if r.Slots, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return r, fmt.Errorf("list logical slots: %w", err)
	}
	return r, nil
}

// DropRelicsParams drop replication objects a clone inherited.
type DropRelicsParams struct {
	// On is where they are dropped: "green" (the clone before its upgrade is
	// green in the making).
	On string
	Relics
}

// Statements are what Exec runs: DROP PUBLICATION for each publication,
// pg_drop_replication_slot for each slot.
func (p DropRelicsParams) Statements() []Stmt {
	var out []Stmt
	for _, name := range p.Publications {
		out = append(out, DropPublicationStmt(p.On, name))
	}
	for _, name := range p.Slots {
		out = append(out, DropSlotStmt(p.On, name))
	}
	return out
}

// Exec runs the statements in order and returns what it dropped, as
// "publication X" / "logical slot Y".
func (p DropRelicsParams) Exec(ctx context.Context, db Execer) ([]string, error) {
	var dropped []string
	for _, name := range p.Publications {
		if err := DropPublicationStmt(p.On, name).Exec(ctx, db); err != nil {
			return dropped, fmt.Errorf("drop publication %s: %w", name, err)
		}
		dropped = append(dropped, "publication "+name)
	}
	for _, name := range p.Slots {
		if err := DropSlotStmt(p.On, name).Exec(ctx, db); err != nil {
			return dropped, fmt.Errorf("drop logical slot %s: %w", name, err)
		}
		dropped = append(dropped, "logical slot "+name)
	}
	return dropped, nil
}

// dropRelicsIn drops the relics of one database of the server conninfo reaches.
func dropRelicsIn(ctx context.Context, conninfo, db string) ([]string, error) {
	conn, err := connectTimeout(ctx, conninfo, db)
	if err != nil {
		return nil, fmt.Errorf("connecting to database %s of the clone: %w", db, err)
	}
	defer conn.Close(context.Background())
	r, err := ReadRelics(ctx, conn)
	if err != nil {
		return nil, err
	}
	dropped, err := DropRelicsParams{On: "green", Relics: r}.Exec(ctx, conn)
	for i := range dropped {
		dropped[i] += " (database " + db + ")"
	}
	return dropped, err
}

// SeedProblems checks a seed against blue's slots (trap 5), without a
// server: for each slot named, it must exist, be inactive and not lost;
// the seed must be greater than the slot's creation LSN (created), and
// not below its confirmed_flush_lsn (the server would silently start there,
// or re-send everything since the slot was created). It returns one line
// per problem, nil when the seed is sound.
func SeedProblems(seed LSN, names []string, slots []SlotInfo, created map[string]LSN) []string {
	var out []string
	for _, name := range names {
		s, ok := FindSlot(slots, name)
		if !ok {
			out = append(out, fmt.Sprintf("slot %s does not exist on blue", name))
			continue
		}
		if s.Active {
			out = append(out, fmt.Sprintf("slot %s is active: something already consumes it", name))
		}
		if s.WALStatus == "lost" {
			out = append(out, fmt.Sprintf("slot %s is lost: blue removed WAL it needed", name))
		}
		c, ok := created[name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("the creation LSN of slot %s is not recorded (slot_lsn.%s)", name, name))
		case seed <= c:
			out = append(out, fmt.Sprintf("the seed %s is not after slot %s's creation LSN %s: the clone predates the slot, rows would be lost", seed, name, c))
		}
		if s.ConfirmedFlushLSN != "" {
			cf, err := ParseLSN(s.ConfirmedFlushLSN)
			switch {
			case err != nil:
				out = append(out, fmt.Sprintf("slot %s: confirmed_flush_lsn %q unreadable", name, s.ConfirmedFlushLSN))
			case cf > seed:
				out = append(out, fmt.Sprintf("slot %s is confirmed up to %s, beyond the seed %s: the server would silently start there", name, cf, seed))
			}
		}
	}
	return out
}

// OriginState is a subscription's replication origin on green.
type OriginState struct {
	Subscription string
	Exists       bool // the subscription exists in green's database
	Enabled      bool
	Origin       string // 'pg_' || oid
	// Progressed is true when the origin has a remote_lsn (it was advanced or applied).
	Progressed bool
	RemoteLSN  LSN
}

// ReadOrigin reads a subscription and its origin's remote_lsn.
func ReadOrigin(ctx context.Context, green Querier, subname string) (OriginState, error) {
	st := OriginState{Subscription: subname}
	var oid uint32
	var remote string
	err := green.QueryRow(ctx, `
SELECT s.oid, s.subenabled, coalesce((SELECT o.remote_lsn::text FROM pg_replication_origin_status o WHERE o.external_id = 'pg_' || s.oid), '')
FROM pg_subscription s
WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, subname).Scan(&oid, &st.Enabled, &remote)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read the origin of subscription %s: %w", subname, err)
	}
	st.Exists, st.Origin = true, fmt.Sprintf("pg_%d", oid)
	if remote != "" && remote != "0/0" {
		if st.RemoteLSN, err = ParseLSN(remote); err != nil {
			return st, fmt.Errorf("read the origin of subscription %s: %w", subname, err)
		}
		st.Progressed = true
	}
	return st, nil
}

// OriginAdvanceParams set replication origins' remote_lsn: each
// subscription starts streaming after it. The subscriptions must be
// disabled (an apply worker holds its origin).
type OriginAdvanceParams struct {
	On string
	// Origins are the origins' names ('pg_' || the subscription's oid); a
	// plan made offline may hold Later values.
	Origins []any
	// LSN is where they go; zero renders as <green_start_lsn> in plans.
	LSN LSN
}

// Statements are what Exec runs: one pg_replication_origin_advance per origin.
func (p OriginAdvanceParams) Statements() []Stmt {
	var at any = p.LSN
	if p.LSN == 0 {
		at = Later("green_start_lsn")
	}
	out := make([]Stmt, len(p.Origins))
	for i, o := range p.Origins {
		out[i] = Stmt{On: p.On, SQL: "SELECT pg_replication_origin_advance($1, $2::pg_lsn)", Args: []any{o, at}}
	}
	return out
}

// Exec runs the statements in order.
func (p OriginAdvanceParams) Exec(ctx context.Context, db Execer) error {
	for _, s := range p.Statements() {
		if err := s.Exec(ctx, db); err != nil {
			return fmt.Errorf("advance replication origin %s to %s: %w", Literal(s.Args[0]), p.LSN, err)
		}
	}
	return nil
}

// OriginAdvanced reports whether subscription subname's origin stands
// exactly at lsn: the precondition of enabling it with a clone strategy.
func OriginAdvanced(ctx context.Context, green *pgxpool.Pool, subname string, lsn LSN) (bool, error) {
	st, err := ReadOrigin(ctx, green, subname)
	if err != nil {
		return false, err
	}
	return st.Exists && st.Progressed && st.RemoteLSN == lsn, nil
}
