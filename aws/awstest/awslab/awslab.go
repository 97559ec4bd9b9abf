// Package awslab puts the local lab's real PostgreSQL servers behind the
// AWS stand-in (awstest.Backend): an Aurora clone is a pg_basebackup of
// blue recovered with blue's binaries, running as green with blue's
// publications and logical slots (an Aurora clone carries them) and an
// aurora_volume_logical_start_lsn() answering the clone's real start
// point; its major upgrade is pg_upgrade; an RDS snapshot is a base backup
// taken at CreateDBSnapshot, restored (recovered, upgraded, started) at
// RestoreDBInstanceFromDBSnapshot, its real `redo done at` line written to
// the instance's log files. Tests then run the AWS strategies end to end,
// with data.
//
// It is test support: it imports pg (the clone machinery, and the
// statements it dresses a clone with) and pgx, and only tests import it.
package awslab

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
	"github.com/pgbluegreen/pgbluegreen/pg"
)

// Params say where green is made: the lab's clone settings (blue's and
// green's binaries, green's data folder and port, the OS user) and how
// the clone of an Aurora cluster is dressed.
type Params struct {
	Clone pg.CloneParams
	// Relics are re-created on an Aurora clone, as Aurora clones carry
	// blue's (pg_basebackup carries neither slot nor, once the clone is
	// prepared, publication): in each database named, a publication FOR
	// ALL TABLES and a slot of each name.
	Relics map[string][]string
	// NoStartFunction leaves aurora_volume_logical_start_lsn() out, as on
	// Aurora PostgreSQL 12.9 and older.
	NoStartFunction bool
	// Timeout bounds each hook (default 5 minutes).
	Timeout time.Duration
}

func (p Params) ctx() (context.Context, context.CancelFunc) {
	d := p.Timeout
	if d <= 0 {
		d = 5 * time.Minute
	}
	return context.WithTimeout(context.Background(), d)
}

// Aurora is the backend of the aurora-clone strategy.
func Aurora(p Params) awstest.Backend {
	return awstest.Backend{
		CloneCluster: func(_, _ string) (string, error) {
			ctx, cancel := p.ctx()
			defer cancel()
			c := p.Clone
			c.StopAfter = pg.ClonePrepared
			if _, err := pg.Clone(ctx, c); err != nil {
				return "", fmt.Errorf("clone: %w", err)
			}
			redo, err := c.RedoDone()
			if err != nil {
				return "", err
			}
			u, err := pg.LookupOSUser(c.OSUser)
			if err != nil {
				return "", err
			}
			ps := c.Paths()
			// The prepared clone runs again with blue's binaries, on green's
			// port: Aurora's clone, before its upgrade.
			if err := pg.PgCtlStart(ctx, u, c.BlueBindir, ps.Basebackup, filepath.Join(ps.Work, "aurora-clone.log"), "-c logging_collector=off"); err != nil {
				return "", fmt.Errorf("start the clone: %w", err)
			}
			seed, err := redo.Add(1)
			if err != nil {
				return "", err
			}
			if err := p.dress(ctx, seed); err != nil {
				return "", err
			}
			return redo.String(), nil
		},
		LogicalSlots: func(string) (int, error) {
			ctx, cancel := p.ctx()
			defer cancel()
			conn, err := pgx.Connect(ctx, p.Clone.GreenConninfo)
			if err != nil {
				return 0, fmt.Errorf("count green's slots: %w", err)
			}
			defer conn.Close(context.Background())
			r, err := pg.ReadRelics(ctx, conn)
			return len(r.Slots), err
		},
		UpgradeCluster: func(string, string) error {
			ctx, cancel := p.ctx()
			defer cancel()
			c := p.Clone
			u, err := pg.LookupOSUser(c.OSUser)
			if err != nil {
				return err
			}
			ps := c.Paths()
			if err := pg.PgCtlStop(ctx, u, c.BlueBindir, ps.Basebackup, filepath.Join(ps.Work, "aurora-stop.out")); err != nil {
				return err
			}
			if _, err := pg.Clone(ctx, c); err != nil {
				return fmt.Errorf("upgrade: %w", err)
			}
			return nil
		},
	}
}

// dress gives the running clone what an Aurora clone has: blue's
// publications and slots in each database, and the function telling where
// it started.
func (p Params) dress(ctx context.Context, seed pg.LSN) error {
	conn, err := pgx.Connect(ctx, p.Clone.GreenConninfo)
	if err != nil {
		return fmt.Errorf("connect to the clone: %w", err)
	}
	defer conn.Close(context.Background())
	for db, names := range p.Relics {
		if err := relics(ctx, pg.WithDatabase(p.Clone.GreenConninfo, db), names); err != nil {
			return fmt.Errorf("the clone's %s: %w", db, err)
		}
	}
	if p.NoStartFunction {
		return nil
	}
	if err := pg.AuroraStartFunctionStmt("green", seed).Exec(ctx, conn); err != nil {
		return fmt.Errorf("aurora_volume_logical_start_lsn() on the clone: %w", err)
	}
	return nil
}

// relics makes, in the database conninfo names, a publication FOR ALL
// TABLES and a logical slot of each name.
func relics(ctx context.Context, conninfo string, names []string) error {
	conn, err := pgx.Connect(ctx, conninfo)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, name := range names {
		if err := pg.CreatePublicationStmt("green", pg.PublicationSpec{Name: name, AllTables: true}).Exec(ctx, conn); err != nil {
			return fmt.Errorf("publication %s: %w", name, err)
		}
		var lsn string
		if err := pg.CreateSlotStmt("green", name).QueryRow(ctx, conn, &lsn); err != nil {
			return fmt.Errorf("slot %s: %w", name, err)
		}
	}
	return nil
}

// RDS is the backend of the rds-snapshot strategy.
func RDS(p Params) awstest.Backend {
	return awstest.Backend{
		SnapshotInstance: func(string, string) error {
			ctx, cancel := p.ctx()
			defer cancel()
			c := p.Clone
			c.StopAfter = pg.CloneBackedUp
			if _, err := pg.Clone(ctx, c); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			return nil
		},
		RestoreInstance: func(string, string, string) (string, error) {
			ctx, cancel := p.ctx()
			defer cancel()
			res, err := pg.Clone(ctx, p.Clone)
			if err != nil {
				return "", fmt.Errorf("restore: %w", err)
			}
			return res.RedoDone.String(), nil
		},
	}
}
