package lab

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/jackc/pgx/v5"
)

// workload queues one transaction's writes besides its ledger row.
type workload func(b *pgx.Batch, rng *rand.Rand, client int, n int64)

// workloads are each lab database's writes.
var workloads = map[string]workload{AppDB: appWrites, BillingDB: billingWrites}

// transaction is one unit of the workload: a ledger row (its identity id is
// returned) and the database's writes, sent in one round trip.
func transaction(ctx context.Context, conn *pgx.Conn, writes workload, rng *rand.Rand, client int, n int64) (int64, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	b := &pgx.Batch{}
	var id int64
	b.Queue("INSERT INTO public.ledger (client, n, payload) VALUES ($1, $2, $3) RETURNING id",
		client, n, fmt.Sprintf("c%d-n%d-%x", client, n, rng.Uint32())).QueryRow(func(row pgx.Row) error { return row.Scan(&id) })
	writes(b, rng, client, n)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit (outcome unknown): %w", err)
	}
	return id, nil
}

// appWrites touch database app's hard cases: jsonb, a table with no key,
// a partitioned table, a mixed-case name.
func appWrites(b *pgx.Batch, rng *rand.Rand, client int, n int64) {
	b.Queue("UPDATE public.accounts SET balance = balance + 1, attrs = jsonb_set(attrs, '{last}', to_jsonb($2::bigint)) WHERE id = $1",
		1+rng.IntN(3000), n)
	b.Queue("INSERT INTO public.events_log (kind, body) VALUES ($1, jsonb_build_object('client', $2::int, 'n', $3::bigint))",
		fmt.Sprintf("load-%d", client%16), client, n)
	// events_log has no key: delete by ctid, skipping rows another client holds.
	b.Queue("DELETE FROM public.events_log WHERE ctid = ANY (ARRAY(SELECT ctid FROM public.events_log LIMIT 1 FOR UPDATE SKIP LOCKED))")
	if n%4 == 0 {
		b.Queue("INSERT INTO public.measurements (taken_on, value) VALUES (current_date, $1)", rng.Float64()*100)
	}
	if n%8 == 0 {
		b.Queue(`UPDATE public."OrderItems" SET qty = qty + 1 WHERE id = $1`, 1+rng.IntN(1500))
	}
}

// billingWrites issue an invoice and pay one of the seed's, taking a
// receipt number from the sequence owned by no column.
func billingWrites(b *pgx.Batch, rng *rand.Rand, client int, n int64) {
	b.Queue("INSERT INTO public.invoices (customer, amount, issued_on) VALUES ($1, $2, current_date)",
		fmt.Sprintf("customer %d", client%97), float64(rng.IntN(100000))/100)
	b.Queue("UPDATE public.invoices SET status = 'paid', receipt = nextval('public.receipt_no') WHERE id = $1 AND status = 'open'",
		1+rng.IntN(1000))
}
