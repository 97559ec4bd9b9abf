package steps

import (
	"context"
	"fmt"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// terminateStep is the name the journal files a terminated session under.
const terminateStep = "sessions"

// TerminateSession ends one client session on server ("blue" or
// "green"), named by its pid and start: the operator's choice in the
// connections pane, after typing the database's name. The operator's
// action and the statement are journaled. ended is false when the session
// was gone (or is pgbluegreen's own).
func (r *Runner) TerminateSession(ctx context.Context, server string, pid int32, started time.Time, who string) (ended bool, err error) {
	pool := r.Blue
	if server == "green" {
		pool = r.Green
	}
	if pool == nil || (server != "blue" && server != "green") {
		return false, fmt.Errorf("no connection to %s: a session can be ended only by the instance that drives the run", server)
	}
	op := pg.TerminateParams{On: server, PID: pid, BackendStart: started}
	r.journal(state.Entry{Step: terminateStep, Target: "operator", Kind: "operator",
		Text: fmt.Sprintf("terminate session pid %d on %s (%s), confirmed by the database's name", pid, server, who), Outcome: "terminate"})
	ctx = pg.WithJournal(WithStep(ctx, terminateStep), r.journalStmt)
	return op.Exec(ctx, pool)
}
