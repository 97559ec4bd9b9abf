package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// refuseLoginsThatFail is the cutover's guard on roles: after the switch
// the application logs in to the target through PgBouncer with the
// credentials it has today, so before anything is paused every
// application role must be able to. Where both servers let the stored
// passwords be read, each role's must be the same on both (PgBouncer's
// SCRAM pass-through replays blue's verifier: a password set again on
// green, with another salt, would not do); elsewhere (RDS, Cloud SQL)
// each role logs in to the target with the password its PgBouncer client
// uses. A rollback checks blue the same way.
func (e *Env) refuseLoginsThatFail(ctx context.Context, rollback bool) error {
	if e.way != "" || len(e.Config.AppRoles) == 0 {
		return nil
	}
	ctx, cancel := e.bounded(ctx)
	defer cancel()
	from, to, toName, toConninfo := e.Blue, e.Green, "green", e.Config.Green.Conninfo
	if rollback {
		from, to, toName, toConninfo = e.Green, e.Blue, "blue", e.Config.Blue.Conninfo
	}
	roles := e.Config.AppRoles
	src, serr := pg.RoleVerifiers(ctx, from, roles)
	dst, derr := pg.RoleVerifiers(ctx, to, roles)
	if serr == nil && derr == nil {
		var bad []string
		for _, r := range roles {
			switch {
			case dst[r] == "" && src[r] != "":
				bad = append(bad, r+" has no password on "+toName)
			case dst[r] != src[r]:
				bad = append(bad, r+" has another stored password on "+toName)
			}
		}
		if len(bad) > 0 {
			return e.refuse("%s: the application could not log in there through PgBouncer after the switch (PgBouncer logs in with the verifier it holds); run copy-roles, or give %s the stored password %s has (ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...' with %s's verifier), then run again",
				strings.Join(bad, "; "), toName, e.otherSide(toName), e.otherSide(toName))
		}
		e.Logf("application roles: %s have the same stored password on blue and green", strings.Join(roles, ", "))
		return nil
	}
	// The stored passwords cannot be read: each role logs in to the
	// target with the password its PgBouncer client would use.
	if len(e.Config.Cutover.PgBouncer) == 0 {
		return nil
	}
	b := e.Config.Cutover.PgBouncer[0]
	var bad []string
	for _, r := range roles {
		client, err := clientFor(b.AdminConninfo, r)
		if err != nil {
			return err
		}
		pw, _ := pgconn.ParseConfig(client)
		if pw == nil || pw.Password == "" {
			continue // no password here: PgBouncer's own auth decides; the precheck's probe shows it
		}
		target := toConninfo + " user=" + pg.QuoteConninfoValue(r) + " password=" + pg.QuoteConninfoValue(pw.Password)
		if err := pg.CheckPassword(ctx, target); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", r, pg.ScrubPassword(err, pw.Password)))
		}
	}
	if len(bad) > 0 {
		return e.refuse("application roles cannot log in to %s with the password they use today: %s; set it there (ALTER ROLE ... PASSWORD), then run again", toName, strings.Join(bad, "; "))
	}
	return nil
}

// otherSide names blue for green and green for blue.
func (e *Env) otherSide(side string) string {
	if side == "green" {
		return "blue"
	}
	return "green"
}

// clientFor is a PgBouncer console's connection string as role: where the
// application's password for it is looked up (PGPASSWORD, the passfile).
func clientFor(admin, role string) (string, error) {
	if _, err := pgconn.ParseConfig(admin); err != nil {
		return "", fmt.Errorf("cutover.pgbouncer admin_conninfo: %w", err)
	}
	return admin + " user=" + pg.QuoteConninfoValue(role), nil
}
