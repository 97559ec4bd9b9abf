package pg

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Holding the source's commits to the target's apply for the last moments
// before the pause: the drained feed's subscriptions become the source's
// synchronous standbys with synchronous_commit = remote_apply, so every
// commit returns only once the target has applied it. At PAUSE the lag is
// then what is in flight, and the drain inside the pause is one poll. It
// is bounded in time (CutoverParams.HoldCommits), needs ALTER SYSTEM (a
// self-managed server), is skipped when the source has synchronous
// standbys of its own, and is released right after the switch and on every
// undo (a way out, the guard).

// HoldStandbys is our synchronous_standby_names, told from anyone else's:
// the application names are the subscriptions', listed with FIRST n.
func HoldStandbys(subs []string) string {
	q := make([]string, len(subs))
	for i, s := range subs {
		q[i] = Ident(s)
	}
	return fmt.Sprintf("FIRST %d (%s)", len(subs), strings.Join(q, ", "))
}

// HoldStmts make every commit on the source wait until the drained feed's
// subscribers have applied it.
func HoldStmts(on string, subs []string) []Stmt {
	return []Stmt{
		alterSystemStmt(on, "synchronous_standby_names", HoldStandbys(subs)),
		alterSystemStmt(on, "synchronous_commit", "remote_apply"),
		reloadConfStmt(on),
	}
}

// ReleaseStmts undo holdStmts.
func ReleaseStmts(on string) []Stmt {
	return []Stmt{
		alterSystemResetStmt(on, "synchronous_standby_names"),
		alterSystemResetStmt(on, "synchronous_commit"),
		reloadConfStmt(on),
	}
}

// HoldState reads whether the source's commits are held by us (its
// synchronous_standby_names is ours), or could be: none set, and neither
// setting written by an earlier ALTER SYSTEM (its RESET would lose it).
func HoldState(ctx context.Context, c *pgxpool.Conn, subs []string) (held, free bool, err error) {
	var names string
	var altered bool
	err = c.QueryRow(ctx, `
SELECT current_setting('synchronous_standby_names'),
       EXISTS (SELECT 1 FROM pg_settings WHERE name IN ('synchronous_standby_names', 'synchronous_commit')
               AND coalesce(sourcefile, '') LIKE '%postgresql.auto.conf')`).Scan(&names, &altered)
	if err != nil {
		return false, false, fmt.Errorf("read the synchronous settings: %w", err)
	}
	held = names == HoldStandbys(subs)
	return held, names == "" && !altered, nil
}

// Reloaded waits until the server's configuration says what it should
// (pg_reload_conf only signals the postmaster).
func Reloaded(ctx context.Context, c *pgxpool.Conn, want string) error {
	for {
		var names string
		if err := c.QueryRow(Quiet(ctx), "SELECT setting FROM pg_settings WHERE name = 'synchronous_standby_names'").Scan(&names); err != nil {
			return err
		}
		if names == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the reloaded configuration did not arrive: %w", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}
