package steps

import (
	"context"
	"fmt"

	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// refuseSchemaDrift is the cutover's guard: a new attempt refuses while
// blue's and green's schemas differ, naming the objects (the reverse feed
// and the application would break on them). A rollback only warns: it is
// the way back, and refusing it would leave writes on a side that drifted.
// A way out of an attempt that stopped half way is never held back.
func (e *Env) refuseSchemaDrift(ctx context.Context, rollback bool) error {
	if e.way != "" {
		return nil
	}
	cctx, cancel := e.bounded(ctx)
	defer cancel()
	d, err := monitor.ReadDrift(cctx, e.Config, e.Blue, e.Green)
	switch {
	case err != nil:
		return fmt.Errorf("compare blue's and green's schemas before the switch: %w", err)
	case !d.Drifted():
		if d.Compared {
			e.Logf("schemas: blue and green match (%d objects, fingerprint %s)", d.Objects, d.BlueFingerprint)
		}
		return nil
	case rollback:
		e.Warnf("schema drift, rolling back anyway: %s", d.Summary(10))
		return nil
	}
	return e.refuse("schema drift: %s. Logical replication does not carry DDL: apply the same change on green (or undo it on blue), then run the cutover again", d.Summary(10))
}
