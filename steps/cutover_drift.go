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
	dbs, err := e.Databases(cctx)
	if err != nil {
		return err
	}
	pools := make([]monitor.DatabasePools, len(dbs))
	for i, db := range dbs {
		pools[i] = monitor.DatabasePools{Name: db.Name, Blue: db.Blue, Green: db.Green}
	}
	d, err := monitor.ReadDriftAll(cctx, e.Config, pools)
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
