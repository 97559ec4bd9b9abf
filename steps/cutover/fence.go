package cutover

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// The fence: the side left behind closes CONNECT on the databases that
// moved, to the fence roles (REVOKE from PUBLIC, from them and from the
// roles they inherit it from), and gives it explicitly to the roles that
// must keep it (pgbluegreen's own, the replication role, the
// administrators); a superuser is never touched. Roles are the server's:
// a fence role keeps every database that stays there. What a fence took
// is recorded (Prior.Fences, told to the caller before it runs) and
// opening the side gives exactly that back, with LOGIN where a role lacks
// it. The nologin method stops writes with the same fence.

// access is how a side lets the fence roles into the moved databases.
type access struct {
	// open: every fence role can log in, the moved databases let them
	// connect with nothing a fence took missing, none is read-only.
	open bool
	// fenced: no fence role can connect to any moved database.
	fenced   bool
	readOnly bool
	acc      pg.SideAccess
}

// readAccess reads how side name (a session on its first database) lets
// the fence roles in.
func (r *run) readAccess(ctx context.Context, c pg.Querier, name string) (access, error) {
	acc, err := pg.ReadSideAccess(ctx, c, r.names(), r.fence)
	if err != nil {
		return access{}, err
	}
	a := access{acc: acc, fenced: acc.Fenced(), readOnly: len(acc.ReadOnly) > 0}
	recorded := false
	for _, db := range r.names() {
		_, ok := r.fenceRecord(name, db)
		recorded = recorded || ok
	}
	a.open = len(acc.NoLogin) == 0 && !a.readOnly && len(acc.Missing) == 0 && !recorded && (len(r.fence) == 0 || !a.fenced)
	return a, nil
}

// fenceRecord is what the fence of database db on side took, if known.
func (r *run) fenceRecord(side, db string) (pg.FenceRecord, bool) {
	r.fencesMu.Lock()
	defer r.fencesMu.Unlock()
	if r.p.Prior == nil {
		return r.p.Fences.Record(side, db)
	}
	return r.p.Prior.Fences.Record(side, db)
}

// setFences records the fences in force and tells the caller
// (Hooks.Prior).
func (r *run) setFences(f Fences) error {
	r.fencesMu.Lock()
	r.p.Prior.Fences, r.fencesToTell = f, false
	r.fencesMu.Unlock()
	if err := r.p.Hooks.Prior(r.prior()); err != nil {
		return fmt.Errorf("record the fence: %w", err)
	}
	return nil
}

// keepFences records the fences in force, to tell the caller later
// (tellFences): an open runs inside the pause, where the caller's record
// (a state file written and synced) does not belong. Told late, a record
// that is given back already is given back again by the next open: a
// GRANT of what is there, a REVOKE of what is not.
func (r *run) keepFences(f Fences) {
	r.fencesMu.Lock()
	defer r.fencesMu.Unlock()
	r.p.Prior.Fences, r.fencesToTell = f, true
}

// tellFences tells the caller the fences kept since it was last told.
func (r *run) tellFences() {
	r.fencesMu.Lock()
	tell := r.fencesToTell
	r.fencesMu.Unlock()
	if tell {
		if err := r.setFences(r.fencesNow()); err != nil {
			r.rep.warn("%v", err)
		}
	}
}

// fencesNow is a copy of the fences in force.
func (r *run) fencesNow() Fences {
	r.fencesMu.Lock()
	defer r.fencesMu.Unlock()
	return r.p.Prior.Fences.Clone()
}

// keep are the roles a fence gives CONNECT explicitly where they had it
// only through PUBLIC (pgbluegreen's own is added by the server).
func (r *run) keep() []string {
	return append([]string{r.p.ReplicationRole}, r.p.Administrators...)
}

// fencePlan is what fenceSide runs on side s, as a plan shows it before
// the ACL is read.
func (r *run) fencePlan(s side) []pg.PlanLine {
	if len(r.fence) == 0 {
		return []pg.PlanLine{pg.Note(s.name, "no role to fence")}
	}
	took := []pg.ConnectGrant{{Role: pg.PublicGrantee}}
	for _, role := range r.fence {
		took = append(took, pg.ConnectGrant{Role: role})
	}
	gave := append([]string{pg.Placeholder("pgbluegreen's role")}, r.keep()...)
	var out []pg.PlanLine
	for k, db := range r.names() {
		stmts := pg.FenceStmts(s.name, db, pg.FenceRecord{Revoked: took, Granted: gave})
		stmts[0] = stmts[0].With("only the grants its ACL holds (aclexplode), and those of the roles they inherit CONNECT from; never a superuser's, pgbluegreen's or an administrator's")
		stmts[1] = stmts[1].With("only those that held CONNECT through PUBLIC alone")
		if k == 0 {
			stmts[0].Note = "one transaction for every database, what it takes recorded first; " + stmts[0].Note
		}
		out = append(out, pg.Lines(stmts...)...)
	}
	return append(out, pg.Lines(pg.TerminateSessionsStmt(s.name, r.fence, r.names(), pg.Later("the pids of pgbluegreen's sessions")).With("the fenced roles' sessions in the moved databases"))...)
}

// fenceSide closes CONNECT on every moved database of side s (c: a
// session on it), in one transaction, what it takes recorded first; then
// checks that no fence role can connect there any more and ends their
// sessions in those databases.
func (r *run) fenceSide(ctx context.Context, c *pgxpool.Conn, s side) (string, error) {
	if len(r.fence) == 0 {
		return "no role to fence", nil
	}
	plan, err := pg.ReadFencePlan(ctx, c, r.names(), r.fence, r.keep())
	if err != nil {
		return "", err
	}
	fences := r.fencesNow()
	var stmts []pg.Stmt
	var took []string
	for _, db := range r.names() {
		rec, ok := plan[db]
		if !ok {
			return "", fmt.Errorf("database %s is not on %s", db, s.name)
		}
		if rec.Empty() {
			continue
		}
		stmts = append(stmts, pg.FenceStmts(s.name, db, rec)...)
		old, _ := fences.Record(s.name, db)
		fences.set(s.name, db, old.Merge(rec))
		took = append(took, db+": "+rec.String())
	}
	if len(stmts) > 0 {
		// Recorded before it runs: a crash in between leaves a record of
		// what was not taken yet, and giving that back is a GRANT of what
		// is there.
		if err := r.setFences(fences); err != nil {
			return "", err
		}
		if err := pg.ExecTx(ctx, c, pg.InTx(s.name, stmts)); err != nil {
			return "", fmt.Errorf("close CONNECT on %s: %w", s.name, err)
		}
	}
	acc, err := pg.ReadSideAccess(ctx, c, r.names(), r.fence)
	if err != nil {
		return "", err
	}
	if !acc.Fenced() {
		var still []string
		for _, db := range r.names() {
			if len(acc.Connect[db]) > 0 {
				still = append(still, strings.Join(acc.Connect[db], ", ")+" on "+db)
			}
		}
		return "", fmt.Errorf("after the fence, %s can still connect on %s: a role the fence never touches (a superuser's, pgbluegreen's or an administrator's) gives it CONNECT, or a grant made by another grantor; revoke it by hand", strings.Join(still, "; "), s.name)
	}
	n, err := pg.TerminateAndWait(ctx, c, pg.TerminateSessionsStmt(s.name, r.fence, r.names(), r.e.pids()))
	if len(took) == 0 {
		return fmt.Sprintf("closed already; %d sessions ended", n), err
	}
	return fmt.Sprintf("%s; %d sessions ended", strings.Join(took, "; "), n), err
}

// openPlan is what openSide runs on side s, as a plan shows it.
func (r *run) openPlan(s side) []pg.PlanLine {
	out := []pg.PlanLine{pg.Note(s.name, "only the roles that cannot log in on %s now; then, for each moved database, what its fence took (the record), or with no record what the other side grants", s.name)}
	out = append(out, pg.Lines(pg.LoginStmts(s.name, r.fence, true)...)...)
	for _, db := range r.names() {
		out = append(out, pg.Lines(pg.OpenStmts(s.name, db, pg.FenceRecord{Revoked: []pg.ConnectGrant{{Role: pg.Placeholder("what the fence of " + db + " took")}},
			Granted: []string{pg.Placeholder("what it gave")}})...)...)
		out = append(out, pg.Lines(pg.ReadOnlyStmt(s.name, s.at(db).DBName, false).With("only where a readonly cutover set it"))...)
	}
	return out
}

// openSide lets the fence roles into every moved database of side s (c: a
// session on it; other: one on the other side): LOGIN where a role lacks
// it, and in one transaction, for each database, what its fence took
// given back (with no record of it, the CONNECT grants the other side
// has), and the read-only setting a readonly cutover left removed.
func (r *run) openSide(ctx context.Context, c, other *pgxpool.Conn, s side) (string, error) {
	var done []string
	changed, err := pg.SetLogin(ctx, c, s.name, r.fence, true)
	if err != nil {
		return "", err
	}
	if len(changed) > 0 {
		done = append(done, "LOGIN: "+strings.Join(changed, ", "))
	}
	acc, err := pg.ReadSideAccess(ctx, c, r.names(), r.fence)
	if err != nil {
		return "", err
	}
	fences := r.fencesNow()
	var stmts []pg.Stmt
	recorded := false
	for _, db := range r.names() {
		if rec, ok := fences.Record(s.name, db); ok {
			stmts = append(stmts, pg.OpenStmts(s.name, db, rec)...)
			fences.drop(s.name, db)
			recorded = true
			done = append(done, db+": given back what the fence took ("+rec.String()+")")
			continue
		}
		if len(r.fence) == 0 || len(acc.Connect[db]) > 0 || slices.Contains(acc.Missing, db) {
			continue
		}
		// No record of what the fence took (a fence from before records,
		// or one whose record was lost): what the other side grants.
		grants, err := pg.ReadConnectGrants(ctx, other, []string{db}, r.fence)
		if err != nil {
			return "", err
		}
		gave := grants[db]
		if len(gave) == 0 {
			for _, role := range r.fence {
				gave = append(gave, pg.ConnectGrant{Role: role})
			}
		}
		rec := pg.FenceRecord{Revoked: gave}
		stmts = append(stmts, pg.OpenStmts(s.name, db, rec)...)
		done = append(done, db+": no record of its fence, CONNECT given to "+rec.Took()+" as on the other side")
		r.rep.warn("%s's database %s had no record of what its fence took: CONNECT given to %s, as on the other side", s.name, db, rec.Took())
	}
	for _, db := range acc.ReadOnly {
		stmts = append(stmts, pg.ReadOnlyStmt(s.name, s.at(db).DBName, false))
		done = append(done, db+": default_transaction_read_only reset")
	}
	if len(stmts) > 0 {
		if err := pg.ExecTx(ctx, c, pg.InTx(s.name, stmts)); err != nil {
			return "", fmt.Errorf("open %s: %w", s.name, err)
		}
	}
	if recorded {
		r.keepFences(fences)
	}
	if len(done) == 0 {
		return "nothing to change", nil
	}
	return strings.Join(done, "; "), nil
}

// closePlan is what closeSide runs on side s, as a plan shows it.
func (r *run) closePlan(s side) []pg.PlanLine {
	out := pg.Lines(pg.LoginStmts(s.name, r.targetNoLogin(), false)...)
	for k := range out {
		out[k].Text += "  -- it could not log in before the " + r.d.name
	}
	out = append(out, pg.Note(s.name, "then, when a fence role can still connect to a moved database there:"))
	return append(out, r.fencePlan(s)...)
}

// targetNoLogin are the fence roles that could not log in on the target
// before the attempt.
func (r *run) targetNoLogin() []string {
	if r.p.Prior == nil {
		return nil
	}
	var out []string
	for _, role := range r.p.Prior.TargetNoLogin {
		if slices.Contains(r.fence, role) {
			out = append(out, role)
		}
	}
	return out
}

// closeSide closes side s (the target, when an attempt is undone) as it
// was: LOGIN taken again from the fence roles that had none before the
// attempt; then, when a fence role can still connect to a moved database
// there (a target the last rollback had fenced, or no record of the
// logins), the fence.
func (r *run) closeSide(ctx context.Context, c *pgxpool.Conn, s side) (string, error) {
	var done []string
	if roles := r.targetNoLogin(); len(roles) > 0 {
		changed, err := pg.SetLogin(ctx, c, s.name, roles, false)
		if err != nil {
			return "", err
		}
		done = append(done, "NOLOGIN: "+orNone(changed))
	}
	acc, err := pg.ReadSideAccess(ctx, c, r.names(), r.fence)
	if err != nil {
		return "", err
	}
	if !acc.Fenced() {
		detail, err := r.fenceSide(ctx, c, s)
		if err != nil {
			return "", err
		}
		done = append(done, detail)
	}
	if len(done) == 0 {
		return "closed already", nil
	}
	return strings.Join(done, "; "), nil
}

// openWritesStep lets the application write on the target: LOGIN for the
// fence roles, CONNECT on the moved databases given back, the read-only
// setting a readonly cutover left removed.
func (r *run) openWritesStep() subStep {
	d := r.d
	return subStep{name: "allow writes on " + d.to.name, target: d.to.name,
		plan: func() []pg.PlanLine { return r.openPlan(d.to) },
		run: func(ctx context.Context) (string, error) {
			// A session of its own: the feeds' swap holds the cutover's at
			// the same time.
			detail, err := r.openSide(ctx, r.e.toSide, r.e.fromSide, d.to)
			if err == nil && r.p.Method != MethodPgBouncer {
				r.endAt(d.to, r.e.toVersion)
			}
			return detail, err
		},
		// Without PgBouncer, writes reach the target once its roles connect.
		switches: r.p.Method != MethodPgBouncer}
}

// fenceStep makes the side left behind refuse the application: CONNECT
// on the moved databases closed to the fence roles, their sessions there
// ended. The reverse subscriptions apply as pgbluegreen's own role, which
// is never fenced.
func (r *run) fenceStep() subStep {
	d := r.d
	return subStep{name: "fence " + d.from.name, target: d.from.name,
		plan: func() []pg.PlanLine { return r.fencePlan(d.from) },
		run:  func(ctx context.Context) (string, error) { return r.fenceSide(ctx, r.e.from, d.from) }}
}
