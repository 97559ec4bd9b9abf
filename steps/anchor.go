package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Anchor replication on blue: create-publications, create-slots.

func createPublications() *Step {
	return &Step{ID: "create-publications", Phase: PhaseAnchor, Target: Blue, Title: "Create publications",
		Why:    "The publication says what blue sends; it must exist before the slot, whose snapshot it is read at.",
		Source: "000, 001 §1.2, 002",
		Plan: offline(func(e *Env) []Action {
			out := []Action{note(Blue, "refused while a table to publish has neither a primary key nor a replica identity (run replica-identity-full)")}
			for _, p := range e.Config.Publications {
				out = append(out, sql(Blue, "CREATE PUBLICATION %s %s", ident(p.Name), e.Config.publicationTables(p)))
			}
			return out
		}),
		Check: checkPublications,
		Run:   runCreatePublications,
	}
}

func createSlots() *Step {
	return &Step{ID: "create-slots", Phase: PhaseAnchor, Target: Blue, Title: "Create logical replication slots",
		Why:    "The slot holds blue's WAL from this point until green consumes it; green's data must start at or after it.",
		Source: "000, 001 §1.3, 002", Records: []string{"slot_lsn"},
		Plan: offline(func(e *Env) []Action {
			out := []Action{note(Blue, "refused while a publication is missing (pgoutput reads publications as of the slot's snapshot)")}
			for _, p := range e.Config.Publications {
				out = append(out, sql(Blue, "SELECT lsn FROM pg_create_logical_replication_slot(%s, 'pgoutput')", quoteLiteral(slotName(p.Name))))
			}
			return append(out, note(Blue, "recorded: slot_lsn.<slot> per slot and slot_lsn = the highest = %s", e.V("slot_lsn")))
		}),
		Check: checkSlots,
		Run:   runCreateSlots,
	}
}

// publicationState compares each configured publication with blue.
// missing are absent; wrong exist with other tables (an operator's edit or
// another run's leftover: never changed silently).
func publicationState(ctx context.Context, e *Env) (want []wantPublication, missing, wrong []string, err error) {
	want, err = e.desiredPublications(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, w := range want {
		got, err := pg.ReadPublication(ctx, e.Blue, w.Name)
		if err != nil {
			return nil, nil, nil, err
		}
		switch {
		case !got.Exists:
			missing = append(missing, w.Name)
		case got.AllTables != w.AllTables || (!w.AllTables && !sameRels(got.Tables, w.Tables)):
			desc := "FOR ALL TABLES"
			if !got.AllTables {
				desc = "FOR TABLE " + relList(got.Tables)
			}
			wantDesc := "FOR ALL TABLES"
			if !w.AllTables {
				wantDesc = "FOR TABLE " + relList(w.Tables)
			}
			wrong = append(wrong, fmt.Sprintf("%s is %s, want %s", w.Name, desc, wantDesc))
		}
	}
	return want, missing, wrong, nil
}

func checkPublications(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBlue(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	_, missing, wrong, err := publicationState(ctx, e)
	if err != nil {
		return CheckResult{}, err
	}
	if len(missing)+len(wrong) > 0 {
		return CheckResult{Detail: strings.TrimSpace(listIf("missing: ", missing) + " " + listIf("different: ", wrong))}, nil
	}
	return CheckResult{Done: true, Detail: "publications on blue: " + strings.Join(e.Config.publicationNames(), ", ")}, nil
}

func listIf(prefix string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	return prefix + strings.Join(items, "; ")
}

// runCreatePublications refuses (trap 1) while any table the publications
// would publish has neither a primary key nor a replica identity: once
// published, every UPDATE and DELETE on it would fail on blue, in production.
func runCreatePublications(ctx context.Context, e *Env) error {
	if err := e.needBlue(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	want, missing, wrong, err := publicationState(ctx, e)
	if err != nil {
		return err
	}
	if len(wrong) > 0 {
		return e.refuse("%s; drop or fix it by hand (DROP PUBLICATION ...), then run again", strings.Join(wrong, "; "))
	}
	// Trap 1: what would be published, without a replica identity.
	var scope []string // nil: every user schema (FOR ALL TABLES)
	allTables := false
	published := map[pg.Rel]bool{}
	for _, w := range want {
		if w.AllTables {
			allTables = true
		}
		for _, t := range w.Tables {
			published[t] = true
		}
	}
	if !allTables {
		scope = e.Config.Schemas
	}
	bad, err := pg.TablesWithoutIdentity(ctx, e.Blue, scope)
	if err != nil {
		return err
	}
	var blocking []pg.Rel
	for _, t := range bad {
		if allTables || published[t] {
			blocking = append(blocking, t)
		}
	}
	if len(blocking) > 0 {
		return e.refuse("%s would be published with no primary key and no replica identity: every UPDATE and DELETE on them would then fail on blue; run replica-identity-full first (tables outside the configured schemas: ALTER TABLE ... REPLICA IDENTITY FULL by hand)", relList(blocking))
	}
	for _, w := range want {
		if !contains(missing, w.Name) {
			continue
		}
		e.Logf("%s", pg.CreatePublicationSQL(w.Name, w.AllTables, w.Tables))
		if err := pg.CreatePublication(ctx, e.Blue, w.Name, w.AllTables, w.Tables); err != nil {
			return err
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkSlots(ctx context.Context, e *Env) (CheckResult, error) {
	if err := e.needBlue(); err != nil {
		return CheckResult{}, err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	slots, err := pg.LogicalSlots(ctx, e.Blue)
	if err != nil {
		return CheckResult{}, err
	}
	var missing, lsns []string
	for _, p := range e.Config.Publications {
		name := slotName(p.Name)
		s, ok := pg.FindSlot(slots, name)
		if !ok {
			missing = append(missing, name)
			continue
		}
		lsn, recorded := e.Value("slot_lsn." + name)
		if !recorded {
			// A crash between creating the slot and recording its LSN: the
			// slot's confirmed_flush_lsn is where it was created as long as
			// nothing has consumed it yet.
			lsn = s.ConfirmedFlushLSN
			if lsn == "" {
				lsn = s.RestartLSN
			}
			e.Warnf("slot %s exists but its LSN was not recorded (interrupted run?): recording %s from pg_replication_slots", name, lsn)
			if err := e.Record("slot_lsn."+name, lsn); err != nil {
				return CheckResult{}, err
			}
		}
		lsns = append(lsns, lsn)
	}
	if len(missing) > 0 {
		return CheckResult{Detail: "slots missing on blue: " + strings.Join(missing, ", ")}, nil
	}
	if _, ok := e.Value("slot_lsn"); !ok {
		high, err := pg.MaxLSN(ctx, e.Blue, lsns)
		if err != nil {
			return CheckResult{}, err
		}
		if err := e.Record("slot_lsn", high); err != nil {
			return CheckResult{}, err
		}
	}
	return CheckResult{Done: true, Detail: "slots on blue: " + strings.Join(e.Config.publicationNames(), ", ") + "; slot_lsn = " + e.V("slot_lsn")}, nil
}

// runCreateSlots refuses (trap 2) while a publication is missing: pgoutput
// reads publications as of the slot's snapshot, so a slot made first would
// not see a publication created after it.
func runCreateSlots(ctx context.Context, e *Env) error {
	if err := e.needBlue(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	var missing []string
	for _, p := range e.Config.Publications {
		got, err := pg.ReadPublication(ctx, e.Blue, p.Name)
		if err != nil {
			return err
		}
		if !got.Exists {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) > 0 {
		return e.refuse("publication %s does not exist on blue; a slot must be created after its publication: run create-publications first", strings.Join(missing, ", "))
	}
	slots, err := pg.LogicalSlots(ctx, e.Blue)
	if err != nil {
		return err
	}
	for _, p := range e.Config.Publications {
		name := slotName(p.Name)
		if s, ok := pg.FindSlot(slots, name); ok {
			if s.Plugin != "pgoutput" {
				return fmt.Errorf("slot %s exists on blue with plugin %s, not pgoutput: drop it (SELECT pg_drop_replication_slot('%s')) and run again", name, s.Plugin, name)
			}
			// Its LSN, if not recorded, is recorded by the check below,
			// which tells of the interrupted run.
			continue
		}
		lsn, err := pg.CreateLogicalSlot(ctx, e.Blue, name)
		if err != nil {
			return err
		}
		e.Logf("slot %s created at %s", name, lsn)
		if err := e.Record("slot_lsn."+name, lsn); err != nil {
			return err
		}
	}
	if _, err := checkSlots(ctx, e); err != nil {
		return err
	}
	all := make([]string, 0, len(e.Config.Publications))
	for _, p := range e.Config.Publications {
		all = append(all, e.Values["slot_lsn."+slotName(p.Name)])
	}
	high, err := pg.MaxLSN(ctx, e.Blue, all)
	if err != nil {
		return err
	}
	return e.Record("slot_lsn", high)
}
