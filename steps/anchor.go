package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// Anchor replication on blue: create-publications, create-slots.

func createPublications() *Step {
	return &Step{ID: "create-publications", PerDatabase: true, Phase: PhaseAnchor, Target: Blue, Title: "Create publications",
		Why:    "The publication says what blue sends; it must exist before the slot, whose snapshot it is read at.",
		Source: "000, 001 §1.2, 002",
		Plan:   planCreatePublications,
		Check:  checkPublications,
		Run:    runCreatePublications,
	}
}

func createSlots() *Step {
	return &Step{ID: "create-slots", PerDatabase: true, Phase: PhaseAnchor, Target: Blue, Title: "Create logical replication slots",
		Why:    "The slot holds blue's WAL from this point until green consumes it; green's data must start at or after it.",
		Source: "000, 001 §1.3, 002", Records: []string{"slot_lsn"},
		Plan:  planCreateSlots,
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
	return CheckResult{Done: true, Detail: "publications on blue: " + strings.Join(e.Config.PublicationNames(), ", ")}, nil
}

func listIf(prefix string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	return prefix + strings.Join(items, "; ")
}

// publicationsOp is what create-publications does now: CREATE PUBLICATION
// for each configured publication missing on blue, with its live table
// list; offline, all of them, with placeholders for lists read from blue.
// refusal says why the step would refuse now ("" when it would not).
func publicationsOp(ctx context.Context, e *Env) (op pg.CreatePublicationsParams, refusal string, err error) {
	op.On = "blue"
	if e.Blue == nil {
		for _, p := range e.Config.Publications {
			spec := pg.PublicationSpec{Name: p.Name, AllTables: len(p.Tables) == 0 && !e.Config.HasDedicated()}
			for _, t := range p.Tables {
				spec.Tables = append(spec.Tables, configRel(t))
			}
			if !spec.AllTables && len(p.Tables) == 0 {
				spec.Tables = []pg.Rel{pg.PlaceholderRel("every table of schemas " + strings.Join(e.Config.Schemas, ", ") + " not listed in another publication")}
			}
			op.Publications = append(op.Publications, spec)
		}
		return op, "", nil
	}
	want, missing, wrong, err := publicationState(ctx, e)
	if err != nil {
		return op, "", err
	}
	if len(wrong) > 0 {
		return op, fmt.Sprintf("%s; drop or fix it by hand (DROP PUBLICATION ...), then run again", strings.Join(wrong, "; ")), nil
	}
	for _, w := range want {
		if contains(missing, w.Name) {
			op.Publications = append(op.Publications, pg.PublicationSpec{Name: w.Name, AllTables: w.AllTables, Tables: w.Tables})
		}
	}
	if len(op.Publications) == 0 {
		return op, "", nil
	}
	// Trap 1: what would be published, without a replica identity.
	var scope []string // nil: every user schema (FOR ALL TABLES)
	allTables := false
	published := map[pg.Rel]bool{}
	for _, w := range want {
		allTables = allTables || w.AllTables
		for _, t := range w.Tables {
			published[t] = true
		}
	}
	if !allTables {
		scope = e.Config.Schemas
	}
	bad, err := pg.TablesWithoutIdentity(ctx, e.Blue, scope)
	if err != nil {
		return op, "", err
	}
	var blocking []pg.Rel
	for _, t := range bad {
		if allTables || published[t] {
			blocking = append(blocking, t)
		}
	}
	if len(blocking) > 0 {
		refusal = relList(blocking) + " would be published with no primary key and no replica identity: every UPDATE and DELETE on them would then fail on blue; run replica-identity-full first (tables outside the configured schemas: ALTER TABLE ... REPLICA IDENTITY FULL by hand)"
	}
	return op, refusal, nil
}

func planCreatePublications(ctx context.Context, e *Env) ([]Action, error) {
	op, refusal, err := publicationsOp(ctx, e)
	if err != nil {
		return nil, err
	}
	out := []Action{note(Blue, "refused while a table to publish has neither a primary key nor a replica identity (run replica-identity-full)")}
	if refusal != "" {
		out = append(out, note(Blue, "refused now: %s", refusal))
	}
	if len(op.Publications) == 0 {
		return append(out, note(Blue, "every publication exists on blue: nothing to create")), nil
	}
	return append(out, stmts(op.Statements()...)...), nil
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
	op, refusal, err := publicationsOp(ctx, e)
	if err != nil {
		return err
	}
	if refusal != "" {
		return e.refuse("%s", refusal)
	}
	return op.Exec(ctx, e.Blue)
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
	if u := e.Config.Undecided(); len(u) > 0 {
		return CheckResult{Detail: fmt.Sprintf("how publication %s (copy: auto) is copied is not decided yet", u[0].Name)}, nil
	}
	var missing, lsns []string
	for _, p := range e.Config.SlotPublications() {
		name := e.Config.Feed(p.Name)
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
	if len(lsns) == 0 {
		return CheckResult{Done: true, Detail: "every publication is copied in a snapshot: copy-data makes their slots"}, nil
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
	var names []string
	for _, p := range e.Config.SlotPublications() {
		names = append(names, e.Config.Feed(p.Name))
	}
	return CheckResult{Done: true, Detail: "slots on blue: " + strings.Join(names, ", ") + "; slot_lsn = " + e.V("slot_lsn")}, nil
}

// slotsOp is what create-slots does now: a pgoutput slot for each
// configured publication whose slot is missing on blue (offline: all).
// refusal says why the step would refuse now ("" when it would not).
func slotsOp(ctx context.Context, e *Env) (op pg.CreateSlotsParams, refusal string, err error) {
	op.On = "blue"
	if e.Blue == nil {
		for _, p := range e.Config.SlotPublications() {
			op.Slots = append(op.Slots, e.Config.Feed(p.Name))
		}
		return op, "", nil
	}
	// Trap 2: pgoutput reads publications as of the slot's snapshot, so a
	// slot made first would not see a publication created after it.
	var missing []string
	for _, p := range e.Config.Publications {
		got, err := pg.ReadPublication(ctx, e.Blue, p.Name)
		if err != nil {
			return op, "", err
		}
		if !got.Exists {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) > 0 {
		return op, fmt.Sprintf("publication %s does not exist on blue; a slot must be created after its publication: run create-publications first", strings.Join(missing, ", ")), nil
	}
	slots, err := pg.LogicalSlots(ctx, e.Blue)
	if err != nil {
		return op, "", err
	}
	for _, p := range e.Config.SlotPublications() {
		name := e.Config.Feed(p.Name)
		s, ok := pg.FindSlot(slots, name)
		if !ok {
			op.Slots = append(op.Slots, name)
			continue
		}
		if s.Plugin != "pgoutput" {
			drop := pg.DropSlotParams{On: "blue", Name: name}.Statements()[0]
			return op, "", fmt.Errorf("slot %s exists on blue with plugin %s, not pgoutput: drop it (%s) and run again", name, s.Plugin, drop)
		}
		// An existing slot's LSN, if not recorded, is recorded by the check,
		// which tells of the interrupted run.
	}
	return op, "", nil
}

func planCreateSlots(ctx context.Context, e *Env) ([]Action, error) {
	op, refusal, err := slotsOp(ctx, e)
	if err != nil {
		return nil, err
	}
	out := []Action{note(Blue, "refused while a publication is missing (pgoutput reads publications as of the slot's snapshot)")}
	if refusal != "" {
		return append(out, note(Blue, "refused now: %s", refusal)), nil
	}
	if len(op.Slots) == 0 && len(e.Config.SlotPublications()) > 0 {
		out = append(out, note(Blue, "every slot exists on blue: nothing to create"))
	}
	for _, p := range e.Config.Undecided() {
		out = append(out, note(Blue, "publication %s (copy: auto): first decided and recorded in %s: by snapshot (copy-data makes its slot) when it holds under %s on blue or blue reads through this machine at %s/s or more (one timed COPY of %s of its largest table), else by table sync (its slot made here)",
			p.Name, copyModeKey(p.Name), pg.Bytes(autoSmallBytes), pg.Bytes(config.AutoSnapshotFloor), pg.Bytes(readRateSample)))
	}
	for _, p := range e.Config.SnapshotPublications() {
		out = append(out, note(Blue, "slot %s is made by copy-data, which copies publication %s's tables in the snapshot it exports", e.Config.Feed(p.Name), p.Name))
	}
	out = append(out, stmts(op.Statements()...)...)
	return append(out, note(Blue, "recorded: slot_lsn.<slot> per slot and slot_lsn = the highest = %s", e.V("slot_lsn"))), nil
}

// runCreateSlots refuses (trap 2) while a publication is missing, creates
// the missing slots, recording each one's LSN as soon as it exists, then
// slot_lsn, the highest.
func runCreateSlots(ctx context.Context, e *Env) error {
	if err := e.needBlue(); err != nil {
		return err
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	op, refusal, err := slotsOp(ctx, e)
	if err != nil {
		return err
	}
	if refusal != "" {
		return e.refuse("%s", refusal)
	}
	decided, err := e.decideCopyModes(ctx)
	if err != nil {
		return err
	}
	for _, d := range decided {
		e.Logf("publication %s (copy: auto) is copied by %s: %s", d.pub, map[string]string{config.CopySnapshot: "snapshot (copy-data)", config.CopyTableSync: "table sync"}[d.mode], d.why)
	}
	if len(decided) > 0 {
		if op, _, err = slotsOp(ctx, e); err != nil {
			return err
		}
	}
	err = op.Exec(ctx, e.Blue, func(slot, lsn string) error {
		e.Logf("slot %s created at %s", slot, lsn)
		return e.Record("slot_lsn."+slot, lsn)
	})
	if err != nil {
		return err
	}
	if _, err := checkSlots(ctx, e); err != nil {
		return err
	}
	var all []string
	for _, p := range e.Config.SlotPublications() {
		all = append(all, e.V0("slot_lsn."+e.Config.Feed(p.Name)))
	}
	if len(all) == 0 {
		return nil
	}
	high, err := pg.MaxLSN(ctx, e.Blue, all)
	if err != nil {
		return err
	}
	return e.Record("slot_lsn", high)
}
