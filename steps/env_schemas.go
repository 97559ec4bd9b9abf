package steps

import (
	"context"
	"fmt"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// everySchema is how a plan made without blue names the schemas when the
// configuration omits them.
const everySchema = "<every schema of blue>"

// withSchemas resolves an omitted `schemas` in one place, so no step has
// to: it returns e as it is when the configuration lists its schemas, else
// a copy whose Config holds every non-system schema of blue, read now
// (pg.UserSchemas), or, with no connection to blue (an offline plan), the
// placeholder everySchema. Values are shared with e, so a record made
// through the copy is seen by both.
func (e *Env) withSchemas(ctx context.Context) (*Env, error) {
	if e.Config == nil || len(e.Config.Schemas) > 0 {
		return e, nil
	}
	c := *e.Config
	c.SchemasFromBlue = true
	if e.Blue == nil {
		c.Schemas = []string{everySchema}
	} else {
		rctx, cancel := e.bounded(ctx)
		defer cancel()
		schemas, err := pg.UserSchemas(rctx, e.Blue)
		if err != nil {
			return e, fmt.Errorf("schemas is omitted (every schema of blue) and blue's schemas could not be read: %w; blue must be reachable, or list schemas in the configuration", err)
		}
		if len(schemas) == 0 {
			return e, fmt.Errorf("schemas is omitted (every schema of blue) and blue has no schema besides the system's: check blue.conninfo's database")
		}
		c.Schemas = schemas
	}
	out := *e
	out.Config = &c
	return &out, nil
}
