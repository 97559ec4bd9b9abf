package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Provision green for the self-managed clone strategy: clone-local,
// green-start-lsn, drop-cloned-replication.

func cloneLocal() *Step {
	return &Step{ID: "clone-local", Phase: PhaseProvision, Target: Green, Title: "Clone blue with pg_basebackup and upgrade it",
		Why:    "The local twin of an Aurora clone + upgrade: a physical copy taken after the slot exists, recovered with blue's binaries, then pg_upgrade --link.",
		Source: "-", Records: []string{"clone_redo_done"},
		Plan:  planCloneLocal,
		Check: checkCloneLocal,
		Run:   runCloneLocal,
	}
}

func greenStartLSN() *Step {
	return &Step{ID: "green-start-lsn", Phase: PhaseProvision, Target: Green, Title: "Record green's start LSN",
		Why:    "The exact point of blue's WAL green already holds: the subscription starts there. It must be greater than every slot LSN, or rows are lost.",
		Source: "000, 001 §7, 002", Needs: []string{"slot_lsn"}, Records: []string{"green_start_lsn"},
		// A wrong value (typed in the values panel) is read again from the
		// source; the origins are then advanced to it again.
		Reopens: []string{advanceOriginsID},
		Again:   againBeforeReplication,
		Plan:    planGreenStartLSNClone,
		Check:   checkGreenStartLSN,
		Run:     runGreenStartLSN,
	}
}

func dropClonedReplication() *Step {
	return &Step{ID: "drop-cloned-replication", PerDatabase: true, Phase: PhasePrepareGreen, Target: Green, Title: "Drop replication objects inherited by the clone",
		Why:    "The clone carries blue's publications (and on Aurora its slots); they must go before the upgrade and before subscribing.",
		Source: "000, 002", Needs: []string{"green_start_lsn"},
		Plan:  planDropClonedReplication,
		Check: checkClonedReplication,
		Run:   runDropClonedReplication,
	}
}

// cloneParams are the clone's settings from the configuration.
func (e *Env) cloneParams() pg.CloneParams {
	c := e.Config.Clone
	return pg.CloneParams{
		BlueConninfo: e.Config.Blue.Conninfo, GreenConninfo: e.Config.Green.Conninfo,
		BlueBindir: c.BlueBindir, GreenBindir: c.GreenBindir, DataDir: c.DataDir, Port: c.Port, OSUser: c.OSUser,
		Log: e.Logf,
	}
}

// greenMajor connects to green directly (not through the pool: during
// clone-local the port serves the clone, then green) and returns its major.
func (e *Env) greenMajor(ctx context.Context) (int, error) {
	return pg.ServerMajor(ctx, e.Config.Green.Conninfo, e.Config.Timeouts.Connect.Duration)
}

func checkCloneLocal(ctx context.Context, e *Env) (CheckResult, error) {
	p := e.cloneParams()
	want, err := pg.BinMajor(ctx, p.GreenBindir)
	if err != nil {
		return CheckResult{}, fmt.Errorf("clone.green_bindir: %w", err)
	}
	phase, err := p.Phase(want)
	if err != nil {
		return CheckResult{}, err
	}
	if phase != pg.CloneUpgraded {
		return CheckResult{Detail: fmt.Sprintf("clone in %s: phase %s", p.DataDir, phase)}, nil
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	got, err := e.greenMajor(ctx)
	if err != nil {
		return CheckResult{Detail: fmt.Sprintf("green upgraded in %s but not answering on port %d: %v", p.DataDir, p.Port, err)}, nil
	}
	if got != want {
		return CheckResult{Detail: fmt.Sprintf("port %d answers with PostgreSQL %d, not green's %d", p.Port, got, want)}, nil
	}
	return CheckResult{Done: true, Detail: fmt.Sprintf("green (PostgreSQL %d, upgraded clone of blue) answers on port %d", got, p.Port)}, nil
}

// runCloneLocal refuses unless every slot exists on blue (trap 3: a clone
// taken before its slot misses the rows written in between), then makes
// green from wherever an earlier attempt stopped.
func runCloneLocal(ctx context.Context, e *Env) error {
	if err := e.requireSlotsOnBlue(ctx, "a clone"); err != nil {
		return err
	}
	res, err := pg.Clone(ctx, e.cloneParams())
	if err != nil {
		return err
	}
	e.Logf("clone-local from phase %s: pg_basebackup %s, recovery and cleanup %s, upgrade (initdb + pg_upgrade --link) %s; redo done at %s",
		res.From, res.Basebackup.Round(time.Millisecond), res.Recovery.Round(time.Millisecond), res.Upgrade.Round(time.Millisecond), res.RedoDone)
	return e.Record("clone_redo_done", res.RedoDone.String())
}

// seedFromClone is the seed of the clone strategy: the first `redo done at`
// of the clone's recovery log, plus one byte (the record starting there was
// replayed; a commit record starting exactly at the origin is sent again).
func (e *Env) seedFromClone() (seed, redo pg.LSN, err error) {
	redo, err = e.cloneParams().RedoDone()
	if err != nil {
		return 0, 0, e.refuse("%v: the seed cannot be known; drop the clone (clone.data_dir and the folders next to it) and run clone-local again", err)
	}
	seed, err = redo.Add(1)
	return seed, redo, err
}

// seedProblems validates a seed against blue's slots now (trap 5).
func (e *Env) seedProblems(ctx context.Context, seed pg.LSN) ([]string, error) {
	if e.Blue == nil {
		return nil, fmt.Errorf("no connection to blue: check blue.conninfo in the configuration")
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	slots, err := pg.LogicalSlots(ctx, e.Blue)
	if err != nil {
		return nil, err
	}
	// The clone is of the whole cluster: every database's slots must
	// predate it.
	dbs, err := e.Databases(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	created := map[string]pg.LSN{}
	for _, d := range dbs {
		de := e.forDatabase(d)
		if e.DB != "" {
			de = e // a step of one database sees its own
		}
		for _, name := range de.Config.FeedNames() {
			names = append(names, name)
			v, ok := de.Value("slot_lsn." + name)
			if !ok {
				// slot_lsn is the greatest creation LSN: a bound for each slot.
				v, ok = de.Value("slot_lsn")
			}
			if !ok {
				continue
			}
			l, err := pg.ParseLSN(v)
			if err != nil {
				return nil, fmt.Errorf("recorded slot LSN of %s: %w", name, err)
			}
			created[name] = l
		}
		if e.DB != "" {
			break
		}
	}
	return pg.SeedProblems(seed, names, slots, created), nil
}

func (e *Env) seedRefusal(seed pg.LSN, problems []string) error {
	return e.refuse("seed %s: %s; drop the clone and run clone-local again (after create-slots; nothing may consume the slots until green subscribes)", seed, strings.Join(problems, "; "))
}

func checkGreenStartLSN(ctx context.Context, e *Env) (CheckResult, error) {
	rec, ok := e.Value("green_start_lsn")
	if !ok {
		return CheckResult{Detail: "green_start_lsn not recorded"}, nil
	}
	if e.Config.Strategy != "clone" {
		return CheckResult{Detail: "green_start_lsn recorded: " + rec}, nil
	}
	seed, _, err := e.seedFromClone()
	if err != nil {
		return CheckResult{Detail: err.Error()}, nil
	}
	if rec != seed.String() {
		return CheckResult{Detail: fmt.Sprintf("recorded green_start_lsn %s is not the clone's seed %s", rec, seed)}, nil
	}
	return e.checkRecordedSeed(ctx, seed)
}

// checkRecordedSeed is green-start-lsn's check once the seed is known (from
// the clone's log, Aurora or the RDS log): done when the seed is valid
// against blue's slots, or when green already streams from it.
func (e *Env) checkRecordedSeed(ctx context.Context, seed pg.LSN) (CheckResult, error) {
	rec := seed.String()
	problems, err := e.seedProblems(ctx, seed)
	if err != nil {
		return CheckResult{}, err
	}
	if len(problems) > 0 {
		// Once green streams from the seed, the slots are active and
		// confirmed past it: that is the seed used, not a problem.
		if used, err := e.originsStreamedFrom(ctx, seed); err != nil || !used {
			return CheckResult{Detail: strings.Join(problems, "; ")}, err
		}
		return CheckResult{Done: true, Detail: "green_start_lsn = " + rec + "; green streams from it"}, nil
	}
	return CheckResult{Done: true, Detail: "green_start_lsn = " + rec + ", after every slot"}, nil
}

// originsStreamedFrom reports whether every subscription is enabled with
// its origin at or past the seed: advanced to it, then streaming (enable-
// subscriptions refuses to enable an origin not at the seed).
func (e *Env) originsStreamedFrom(ctx context.Context, seed pg.LSN) (bool, error) {
	if e.Green == nil {
		return false, nil
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	for _, p := range e.Config.Publications {
		st, err := pg.ReadOrigin(ctx, e.Green, e.Config.Feed(p.Name))
		if err != nil {
			return false, err
		}
		if !st.Exists || !st.Enabled || !st.Progressed || st.RemoteLSN < seed {
			return false, nil
		}
	}
	return true, nil
}

func runGreenStartLSN(ctx context.Context, e *Env) error {
	if e.Config.Strategy != "clone" {
		return fmt.Errorf("green-start-lsn for strategy %s arrives with issue #7", e.Config.Strategy)
	}
	seed, redo, err := e.seedFromClone()
	if err != nil {
		return err
	}
	problems, err := e.seedProblems(ctx, seed)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return e.seedRefusal(seed, problems)
	}
	e.Logf("redo done at %s in the clone's recovery log: seed %s (+1 byte); slot_lsn %s", redo, seed, e.V("slot_lsn"))
	return e.Record("green_start_lsn", seed.String())
}

func checkClonedReplication(ctx context.Context, e *Env) (CheckResult, error) {
	if e.Green == nil {
		return CheckResult{}, fmt.Errorf("no connection to green: check green.conninfo in the configuration")
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	relics, err := pg.RelicReplication(ctx, e.Green)
	if err != nil {
		return CheckResult{}, err
	}
	if len(relics) > 0 {
		return CheckResult{Detail: "inherited from blue: " + strings.Join(relics, ", ")}, nil
	}
	return CheckResult{Done: true, Detail: "no publication or logical slot on green"}, nil
}

// dropRelicsOp is what drop-cloned-replication does now: drop the
// publications of green's database and green's logical slots, read live
// (offline: placeholders).
func dropRelicsOp(ctx context.Context, e *Env) (pg.DropRelicsParams, error) {
	op := pg.DropRelicsParams{On: "green"}
	if e.Green == nil {
		op.Publications = []string{pg.Placeholder("each publication on green")}
		op.Slots = []string{"each logical slot on green"}
		return op, nil
	}
	var err error
	op.Relics, err = pg.ReadRelics(ctx, e.Green)
	return op, err
}

func planDropClonedReplication(ctx context.Context, e *Env) ([]Action, error) {
	op, err := dropRelicsOp(ctx, e)
	if err != nil {
		return nil, err
	}
	ss := op.Statements()
	if e.Green == nil {
		ss[len(ss)-1].Args = []any{pg.Later("each logical slot on green")}
	}
	out := stmts(ss...)
	if len(ss) == 0 {
		out = append(out, note(Green, "no publication or logical slot on green: nothing to drop"))
	}
	if e.Config.Strategy == "clone" {
		out = append(out, note(Green, "clone: dropped on the clone before pg_upgrade already (clone-local); this checks none is left"))
	}
	return out, nil
}

func runDropClonedReplication(ctx context.Context, e *Env) error {
	if e.Green == nil {
		return fmt.Errorf("no connection to green: check green.conninfo in the configuration")
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	op, err := dropRelicsOp(ctx, e)
	if err != nil {
		return err
	}
	dropped, err := op.Exec(ctx, e.Green)
	for _, d := range dropped {
		e.Logf("dropped %s on green", d)
	}
	return err
}

// recordedSeed is green_start_lsn, checked again against the clone's
// evidence when there is one: a clone made again after green-start-lsn ran
// has another seed.
func (e *Env) recordedSeed() (pg.LSN, error) {
	v, ok := e.Value("green_start_lsn")
	if !ok {
		return 0, e.refuse("green_start_lsn is not recorded: run green-start-lsn first")
	}
	seed, err := pg.ParseLSN(v)
	if err != nil {
		return 0, fmt.Errorf("recorded green_start_lsn: %w", err)
	}
	if e.Config.Strategy == "clone" {
		fromLog, _, err := e.seedFromClone()
		if err != nil {
			return 0, err
		}
		if fromLog != seed {
			return 0, e.refuse("green_start_lsn %s is not the seed of the clone that exists now (%s): run green-start-lsn again", seed, fromLog)
		}
	}
	return seed, nil
}

// cloneSeedAction is green-start-lsn's plan line for the clone strategy.
func cloneSeedAction(e *Env) Action {
	return Action{Target: Green, Kind: "command", Text: fmt.Sprintf("first `redo done at X/Y` after the line %q in %s (written by the clone's first start, before the upgrade); seed = X/Y + 1 byte, computed in Go",
		pg.CloneStartMarker, e.cloneParams().Paths().RecoveryLog)}
}

// planCloneLocal is clone-local's plan: from the phase the clone is in,
// every command Clone runs and the statements it runs on the clone, with
// the facts read from blue (the clone is its copy) in a dry run.
func planCloneLocal(ctx context.Context, e *Env) ([]Action, error) {
	c := e.Config.Clone
	p := e.cloneParams()
	var in pg.ClonePlanInputs
	var err error
	if e.Blue == nil {
		in, err = p.ReadClonePlanInputs(ctx, nil)
	} else {
		in, err = p.ReadClonePlanInputs(ctx, e.Blue)
	}
	if err != nil {
		return nil, err
	}
	acts, err := p.Actions(in)
	if err != nil {
		return nil, err
	}
	out := []Action{
		note(Blue, "refused unless %s exist on blue (a clone taken before its slot loses rows)", strings.Join(e.Config.FeedNames(), ", ")),
		note(Green, "each command runs as OS user %s, from the phase the clone is in (%s): an interrupted run resumes", orPlaceholder(c.OSUser, "the current user"), in.From),
	}
	for _, a := range acts {
		switch {
		case a.Command != nil:
			out = append(out, commands(*a.Command)...)
		case a.Stmt != nil:
			out = append(out, stmts(*a.Stmt)...)
		default:
			out = append(out, note(Green, "%s", a.Note))
		}
	}
	return out, nil
}

// planGreenStartLSNClone is green-start-lsn's plan for the clone strategy:
// reads only; in a dry run, with the seed the clone's log gives now.
func planGreenStartLSNClone(ctx context.Context, e *Env) ([]Action, error) {
	out := []Action{cloneSeedAction(e)}
	if e.Blue != nil {
		if seed, redo, err := e.seedFromClone(); err == nil {
			out = append(out, note(Green, "now: redo done at %s, so the seed is %s", redo, seed))
		} else {
			out = append(out, note(Green, "now: %v", err))
		}
	}
	return append(out, planGreenStartLSN(e)[1:]...), nil
}

// planGreenStartLSN shows how the seed is read, for the clone and the AWS strategies.
func planGreenStartLSN(e *Env) []Action {
	first := []Action{cloneSeedAction(e)}
	if e.Config.IsAWS() {
		first = awsSeedPlan(e)
	}
	slots := stmts(pg.LogicalSlotsStmt("blue", "each slot: exists, inactive, not lost, confirmed_flush_lsn <= seed"))
	return append(append(first, slots...),
		note(Green, "refused unless seed > every slot's creation LSN (slot_lsn = %s); recorded: green_start_lsn = %s", e.V("slot_lsn"), e.V("green_start_lsn")))
}
