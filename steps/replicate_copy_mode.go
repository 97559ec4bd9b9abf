package steps

import (
	"context"
	"fmt"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// copy: auto, the default: each publication of the copy strategy is copied
// by snapshot (copy-data: a few sessions in one snapshot, a large table in
// ranges, its indexes built after its data) unless the bytes would cross
// this machine too slowly, where the table sync, from blue to green
// directly, is the faster way. create-slots decides once, before any slot
// is made (a table sync's slot is made there, a snapshot copy's by
// copy-data), and records it; until then a plan shows the snapshot copy.

// copyModeKey records the way copy: auto copies a publication
// (config.CopySnapshot or config.CopyTableSync), per database.
func copyModeKey(pub string) string { return "copy_mode." + pub }

// autoSmallBytes is the size under which copy: auto copies a publication
// by snapshot without measuring anything: at the floor's rate it crosses
// this machine in under half a minute, and a snapshot copy of many small
// tables is far less work than a table sync of each (issue 15).
const autoSmallBytes int64 = 1 << 30

// copyLabel is publication p's copy setting as the operator reads it.
func copyLabel(p config.Publication) string {
	if p.Copy == "" {
		return config.CopyAuto
	}
	return p.Copy
}

// withCopyModes sets e's configuration's copy: auto publications to the
// ways decided for e's database.
func (e *Env) withCopyModes() {
	if e.Config == nil {
		return
	}
	e.Config = e.Config.WithCopyModes(func(pub string) (string, bool) { return e.Value(copyModeKey(pub)) })
}

// copyModeDecision is how copy: auto copies one publication, and why.
type copyModeDecision struct {
	pub, mode, why string
}

// decideCopyModes decides the way of each copy: auto publication not
// decided yet: by snapshot when it is small, or blue reads through this
// machine at config.AutoSnapshotFloor or more (read once, on the largest
// table of the publications large enough to measure); else by table sync.
// A publication copy-data has copied already stays by snapshot.
func (e *Env) decideCopyModes(ctx context.Context) ([]copyModeDecision, error) {
	pubs := e.Config.Undecided()
	if len(pubs) == 0 {
		return nil, nil
	}
	names := make([]string, len(pubs))
	for i, p := range pubs {
		names[i] = p.Name
	}
	sizes, err := pg.PublicationSizes(ctx, e.Blue, names)
	if err != nil {
		return nil, err
	}
	var rate float64 // bytes a second through here, read once
	var out []copyModeDecision
	for _, p := range pubs {
		d := copyModeDecision{pub: p.Name, mode: config.CopySnapshot}
		bytes := sizes[p.Name].Bytes
		_, copied := e.Value(snapshotCopiedKey(p.Name))
		switch {
		case copied:
			d.why = "copy-data has copied it already"
		case bytes < autoSmallBytes:
			d.why = fmt.Sprintf("%s in all, under %s: by snapshot whatever the way", pg.Bytes(bytes), pg.Bytes(autoSmallBytes))
		default:
			if rate == 0 {
				if rate, err = e.readRateOf(ctx, p.Name); err != nil {
					return nil, err
				}
			}
			d.why = fmt.Sprintf("%s; blue reads through this machine at %s/s", pg.Bytes(bytes), pg.Bytes(int64(rate)))
			if rate < config.AutoSnapshotFloor {
				d.mode = config.CopyTableSync
				d.why += fmt.Sprintf(", under %s/s: the table sync copies from blue to green directly", pg.Bytes(config.AutoSnapshotFloor))
			} else {
				d.why += fmt.Sprintf(", at least %s/s", pg.Bytes(config.AutoSnapshotFloor))
			}
		}
		if err := e.Record(copyModeKey(p.Name), d.mode); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	e.withCopyModes()
	return out, nil
}

// readRateOf measures how fast blue reads through this machine, on the
// largest table of publication pub.
func (e *Env) readRateOf(ctx context.Context, pub string) (float64, error) {
	tables, err := pg.SnapshotTables(ctx, e.Blue, pub)
	if err != nil || len(tables) == 0 {
		return 0, err
	}
	sized, err := pg.TableSizes(ctx, e.Blue, []string{tables[0].Rel.Schema})
	if err != nil {
		return 0, err
	}
	t := pg.SizedTable{Rel: tables[0].Rel, Bytes: tables[0].Bytes}
	for _, s := range sized {
		if s.Rel == t.Rel {
			t = s
		}
	}
	return e.readRate(ctx, t)
}

// readRate times one COPY of readRateSample of table t read from blue
// through this machine, in bytes a second.
func (e *Env) readRate(ctx context.Context, t pg.SizedTable) (float64, error) {
	n, took, err := pg.ReadRate(ctx, e.Blue, t, readRateSample)
	if err != nil {
		return 0, err
	}
	return float64(n) / max(took.Seconds(), 0.001), nil
}
