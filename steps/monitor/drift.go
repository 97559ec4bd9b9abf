package monitor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// The schema drift guard: while replication runs, blue's and green's
// schemas are compared by fingerprint on a slow tick (the screen, `watch`,
// `status`), object by object when they differ, and the cutover refuses
// while they do.

// Drift is one comparison of blue's and green's schemas.
type Drift struct {
	At time.Time `json:"at"`
	// Compared is false while no replication runs (before the
	// subscriptions exist green's schema is still being built); Why says so.
	Compared bool     `json:"compared"`
	Why      string   `json:"why,omitempty"`
	Schemas  []string `json:"schemas"`
	// Objects is how many objects blue's fingerprint covers.
	Objects          int64  `json:"objects"`
	BlueFingerprint  string `json:"blue_fingerprint,omitempty"`
	GreenFingerprint string `json:"green_fingerprint,omitempty"`
	// Differences are the objects that differ, one line each: "only on
	// blue: column public.accounts.note text null".
	Differences []string `json:"differences"`
	// Recording says the optional DDL recorder (record-ddl) is on blue;
	// Recorded are the newest statements it logged (up to ddlShown,
	// newest first), so the operator sees what ran and when.
	Recording     bool          `json:"ddl_recording,omitempty"`
	Recorded      []pg.DDLEntry `json:"ddl_recorded,omitempty"`
	RecorderError string        `json:"ddl_recorder_error,omitempty"`
	Took          time.Duration `json:"took_ns"`
}

// ddlShown is how many recorded DDL statements a drift carries.
const ddlShown = 5

// RecordedLines are the recorded DDL statements, one line each, newest
// first: "14:02:11 deploy ALTER TABLE public.accounts: ALTER TABLE ...",
// times in loc, the query's first line, redacted.
func (d Drift) RecordedLines(loc *time.Location) []string {
	out := make([]string, 0, len(d.Recorded))
	for _, r := range d.Recorded {
		what := r.CommandTag
		if r.Object != "" {
			what += " " + r.Object
		}
		out = append(out, fmt.Sprintf("%s %s %s: %s", r.At.In(loc).Format("15:04:05"), r.User, what, state.Redact(r.FirstLine())))
	}
	return out
}

// Drifted reports whether the comparison found differences.
func (d Drift) Drifted() bool { return d.Compared && len(d.Differences) > 0 }

// Summary is the drift in one line, naming up to n objects.
func (d Drift) Summary(n int) string {
	if !d.Drifted() {
		return ""
	}
	shown := d.Differences
	more := ""
	if len(shown) > n {
		shown, more = shown[:n], fmt.Sprintf("; and %d more", len(d.Differences)-n)
	}
	return fmt.Sprintf("blue's and green's schemas differ (%d object(s)): %s%s", len(d.Differences), strings.Join(shown, "; "), more)
}

// Drift compares blue's and green's schemas once, bounded like every read
// of the monitor.
func (m *Monitor) Drift(ctx context.Context) (Drift, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*m.timeout)
	defer cancel()
	if m.blue == nil || m.green == nil {
		return Drift{At: time.Now().UTC(), Differences: []string{}}, errNoPool
	}
	dbs, err := m.databases(ctx)
	if err != nil {
		return Drift{At: time.Now().UTC(), Differences: []string{}}, err
	}
	return ReadDriftAll(ctx, m.cfg, dbs)
}

// ReadDrift compares the configured schemas (every schema of blue's when
// the configuration names none) of blue and green: one fingerprint query
// on each; the objects are listed only when the fingerprints differ. It
// compares only while replication runs into green (or back into blue).
func ReadDrift(ctx context.Context, c *config.Config, blue, green *pgxpool.Pool) (Drift, error) {
	start := time.Now()
	d := Drift{At: start.UTC(), Differences: []string{}}
	if blue == nil || green == nil {
		return d, errNoPool
	}
	// The recorder's log is read first and on its own: a failure to read
	// it is said, and never stops the comparison.
	if log, err := pg.ReadDDLLog(ctx, blue, ddlShown); err != nil {
		d.RecorderError = state.Redact(err.Error())
	} else {
		d.Recording, d.Recorded = log != nil, log
	}
	running, err := pg.HasSubscription(ctx, green)
	if err == nil && !running {
		running, err = pg.HasSubscription(ctx, blue)
	}
	if err != nil {
		return d, err
	}
	if !running {
		d.Why = "no replication runs yet: the schemas are compared once the subscriptions exist"
		return d, nil
	}
	d.Schemas = c.Schemas
	if len(d.Schemas) == 0 {
		if d.Schemas, err = pg.UserSchemas(ctx, blue); err != nil {
			return d, err
		}
	}
	var gobjects int64
	if d.BlueFingerprint, d.Objects, err = pg.SchemaFingerprint(ctx, blue, d.Schemas); err != nil {
		return d, fmt.Errorf("blue: %w", err)
	}
	if d.GreenFingerprint, gobjects, err = pg.SchemaFingerprint(ctx, green, d.Schemas); err != nil {
		return d, fmt.Errorf("green: %w", err)
	}
	d.Compared = true
	if d.BlueFingerprint != d.GreenFingerprint || d.Objects != gobjects {
		b, err := pg.SchemaObjects(ctx, blue, d.Schemas)
		if err != nil {
			return d, fmt.Errorf("blue: %w", err)
		}
		g, err := pg.SchemaObjects(ctx, green, d.Schemas)
		if err != nil {
			return d, fmt.Errorf("green: %w", err)
		}
		onlyBlue, onlyGreen := pg.DiffLines(b, g)
		for _, l := range onlyBlue {
			d.Differences = append(d.Differences, "only on blue: "+l)
		}
		for _, l := range onlyGreen {
			d.Differences = append(d.Differences, "only on green: "+l)
		}
	}
	d.Took = time.Since(start)
	return d, nil
}
