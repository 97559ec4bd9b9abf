package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Reads of an Aurora clone that only Aurora answers: where the clone
// started in blue's WAL.

// auroraStartLSNQuery reads an Aurora clone's start point in the WAL of
// the cluster it was cloned from (Aurora PostgreSQL 12.10 and later); the
// text form parses as any pg_lsn.
const auroraStartLSNQuery = "SELECT aurora_volume_logical_start_lsn()::text"

// AuroraStartLSNStmt is AuroraStartLSN's read as a plan shows it, on on.
func AuroraStartLSNStmt(on, note string) Stmt {
	return Stmt{On: on, SQL: auroraStartLSNQuery, Note: note}
}

// AuroraStartFunctionStmt creates, on a server that is not Aurora, the
// function an Aurora clone answers auroraStartLSNQuery with, answering
// seed: the AWS stand-in (aws/awstest/awslab) dresses the lab's clone so.
// The LSN is a literal, not a parameter: it is the body of a function.
func AuroraStartFunctionStmt(on string, seed LSN) Stmt {
	return Stmt{On: on, SQL: "CREATE FUNCTION aurora_volume_logical_start_lsn() RETURNS pg_lsn LANGUAGE sql AS $$ SELECT " + QuoteLiteral(seed.String()) + "::pg_lsn $$"}
}

// auroraStartLSNExists says whether the function exists: Aurora 12.9 and
// older have none, and runbook 000 then reads the clone's log instead.
const auroraStartLSNExists = "SELECT to_regproc('aurora_volume_logical_start_lsn') IS NOT NULL"

// AuroraStartLSN reads aurora_volume_logical_start_lsn() on a clone;
// found=false when the server has no such function (Aurora 12.9 and older,
// or not Aurora).
func AuroraStartLSN(ctx context.Context, pool *pgxpool.Pool) (l LSN, found bool, err error) {
	if err := pool.QueryRow(ctx, auroraStartLSNExists).Scan(&found); err != nil {
		return 0, false, fmt.Errorf("look for aurora_volume_logical_start_lsn(): %w", err)
	}
	if !found {
		return 0, false, nil
	}
	var text string
	if err := pool.QueryRow(ctx, auroraStartLSNQuery).Scan(&text); err != nil {
		return 0, true, fmt.Errorf("read aurora_volume_logical_start_lsn(): %w", err)
	}
	l, err = ParseLSN(text)
	if err != nil {
		return 0, true, fmt.Errorf("aurora_volume_logical_start_lsn(): %w", err)
	}
	return l, true, nil
}
