package pg

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Sequence is one sequence's state, as read on the source.
type Sequence struct {
	Schema    string `json:"schema"`
	Name      string `json:"name"`
	LastValue int64  `json:"last_value"`
	IsCalled  bool   `json:"is_called"`
	// Increment's sign says which way the safety margin moves the value.
	Increment int64 `json:"increment"`
}

// Qualified is the sequence's quoted name.
func (s Sequence) Qualified() string { return Ident(s.Schema, s.Name) }

// SequenceSync is what one sync did.
type SequenceSync struct {
	Synced int `json:"synced"`
	// Missing are sequences of the source that the target does not have.
	Missing []string `json:"missing,omitempty"`
	// Read and Apply are the two round trips' durations.
	Read  time.Duration `json:"read_ns"`
	Apply time.Duration `json:"apply_ns"`
}

// Querier is what the sequence functions need: a pool, a connection or a
// transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// readSequencesQuery reads every sequence in one statement (PG10+), from
// the catalogs (the pg_sequences view formats and checks privileges per
// row: slower). pg_sequence_last_value is NULL when the sequence was never
// called (or was set with is_called = false); those are read from the
// relations themselves by readUncalled. Columns: schema, name, last value
// or NULL, increment.
const readSequencesQuery = `
SELECT n.nspname::text, c.relname::text, pg_sequence_last_value(c.oid), s.seqincrement
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'`

// ReadSequences reads every sequence of the database with its last_value
// and is_called, whether a column owns it or not.
func ReadSequences(ctx context.Context, q Querier) ([]Sequence, error) {
	return readSequencesPart(ctx, q, 1, 0)
}

// readSequencesPart reads the sequences whose oid is part modulo parts.
func readSequencesPart(ctx context.Context, q Querier, parts, part int) ([]Sequence, error) {
	rows, err := q.Query(ctx, readSequencesQuery+" AND c.oid::bigint % $1 = $2", parts, part)
	if err != nil {
		return nil, fmt.Errorf("read sequences: %w", err)
	}
	var seqs []Sequence
	var uncalled []int
	for rows.Next() {
		var s Sequence
		var last *int64
		if err := rows.Scan(&s.Schema, &s.Name, &last, &s.Increment); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read sequences: %w", err)
		}
		if last != nil {
			s.LastValue, s.IsCalled = *last, true
		} else {
			uncalled = append(uncalled, len(seqs))
		}
		seqs = append(seqs, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read sequences: %w", err)
	}
	if err := readUncalled(ctx, q, seqs, uncalled); err != nil {
		return nil, err
	}
	return seqs, nil
}

// readUncalled reads last_value of never-called sequences from the
// sequence relations, up to 500 per statement (a UNION ALL of quoted names:
// a value nextval will return next, which pg_sequences does not show).
func readUncalled(ctx context.Context, q Querier, seqs []Sequence, idx []int) error {
	for len(idx) > 0 {
		chunk := idx[:min(len(idx), 500)]
		idx = idx[len(chunk):]
		parts := make([]string, len(chunk))
		for k, i := range chunk {
			parts[k] = fmt.Sprintf("SELECT %d, last_value, is_called FROM %s", i, seqs[i].Qualified())
		}
		rows, err := q.Query(ctx, strings.Join(parts, " UNION ALL "))
		if err != nil {
			return fmt.Errorf("read never-called sequences: %w", err)
		}
		for rows.Next() {
			var i int
			var v int64
			var called bool
			if err := rows.Scan(&i, &v, &called); err != nil {
				rows.Close()
				return fmt.Errorf("read never-called sequences: %w", err)
			}
			seqs[i].LastValue, seqs[i].IsCalled = v, called
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read never-called sequences: %w", err)
		}
	}
	return nil
}

// applySequencesQuery sets every sequence in one statement: values are
// parameters, names are matched exactly against the catalogs (a hash join:
// cheaper than resolving 5,000 quoted names one by one), and the margin
// moves each value in its increment's direction, kept inside the target's
// bounds. It returns how many were set and the names the target lacks.
const applySequencesQuery = `
WITH i AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bool[], $5::bigint[]) AS i(s, n, v, c, inc)
), r AS (
  SELECT i.*, q.seqrelid AS seq, q.seqmin, q.seqmax
  FROM i
  LEFT JOIN pg_namespace ns ON ns.nspname = i.s
  LEFT JOIN pg_class cl ON cl.relnamespace = ns.oid AND cl.relname = i.n AND cl.relkind = 'S'
  LEFT JOIN pg_sequence q ON q.seqrelid = cl.oid
)
SELECT count(setval(r.seq, least(greatest(r.v + sign(r.inc)::bigint * $6::bigint, r.seqmin), r.seqmax), r.c))
         FILTER (WHERE r.seq IS NOT NULL),
       coalesce(array_agg(format('%I.%I', r.s, r.n)) FILTER (WHERE r.seq IS NULL), '{}')
FROM r`

// ApplySequencesStmts are what ApplySequences sends, in one round trip:
// BEGIN READ WRITE (the target may be a database a readonly cutover set
// read-only), the setval statement, COMMIT. With seqs nil (a plan) the
// values are Later: read from the source when it runs.
func ApplySequencesStmts(on string, seqs []Sequence, margin int64) []Stmt {
	var args []any
	if seqs == nil {
		args = []any{Later("schemas"), Later("names"), Later("last values"), Later("is_called"), Later("increments, each sequence's as read from the source"), margin}
	} else {
		n := len(seqs)
		schemas, names := make([]string, n), make([]string, n)
		values, incs := make([]int64, n), make([]int64, n)
		called := make([]bool, n)
		for i, s := range seqs {
			schemas[i], names[i], values[i], called[i], incs[i] = s.Schema, s.Name, s.LastValue, s.IsCalled, s.Increment
		}
		args = []any{schemas, names, values, called, incs, margin}
	}
	return []Stmt{
		{On: on, SQL: "BEGIN READ WRITE"},
		{On: on, SQL: applySequencesQuery, Args: args},
		{On: on, SQL: "COMMIT"},
	}
}

// ApplySequences sets every sequence of seqs on the target (on names it)
// in one round trip: setval(seq, last_value (+ margin), is_called).
// Sequences the target does not have are returned in Missing, not treated
// as an error here.
func ApplySequences(ctx context.Context, q Querier, on string, seqs []Sequence, margin int64) (SequenceSync, error) {
	if len(seqs) == 0 {
		return SequenceSync{}, nil
	}
	start := time.Now()
	var res SequenceSync
	err := execBatch(ctx, q, ApplySequencesStmts(on, seqs, margin), map[int]func(pgx.Row) error{1: func(row pgx.Row) error {
		return row.Scan(&res.Synced, &res.Missing)
	}})
	if err != nil {
		return res, fmt.Errorf("set sequences: %w", err)
	}
	res.Apply = time.Since(start)
	return res, nil
}

// SyncSequences copies every sequence of from onto to: one read round trip
// (two when some sequence was never called), one write round trip.
func SyncSequences(ctx context.Context, from, to Querier, on string, margin int64) (SequenceSync, error) {
	start := time.Now()
	seqs, err := ReadSequences(ctx, from)
	if err != nil {
		return SequenceSync{}, err
	}
	read := time.Since(start)
	res, err := ApplySequences(ctx, to, on, seqs, margin)
	res.Read = read
	return res, err
}

// SequenceSessions is how many sessions the cutover splits the sequence
// read and apply over, on each side.
const SequenceSessions = 2

// ReadSequencesParallel is ReadSequences split over k sessions of the pool
// at once: each sequence costs the server a relation open, and the pause
// waits for the read.
func ReadSequencesParallel(ctx context.Context, pool *pgxpool.Pool, k int) ([]Sequence, error) {
	k = max(k, 1)
	parts := make([][]Sequence, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i], errs[i] = readSequencesPart(ctx, pool, k, i)
		}()
	}
	wg.Wait()
	var out []Sequence
	for i := range k {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out = append(out, parts[i]...)
	}
	return out, nil
}

// ApplySequencesParallel is ApplySequences split over k sessions of the
// pool, each one statement.
func ApplySequencesParallel(ctx context.Context, pool *pgxpool.Pool, on string, seqs []Sequence, margin int64, k int) (SequenceSync, error) {
	k = max(1, min(k, len(seqs)/500)) // small sets: one statement is faster
	start := time.Now()
	results := make([]SequenceSync, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i := range k {
		lo, hi := i*len(seqs)/k, (i+1)*len(seqs)/k
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = ApplySequences(ctx, pool, on, seqs[lo:hi], margin)
		}()
	}
	wg.Wait()
	var res SequenceSync
	for i := range k {
		if errs[i] != nil {
			return res, errs[i]
		}
		res.Synced += results[i].Synced
		res.Missing = append(res.Missing, results[i].Missing...)
	}
	res.Apply = time.Since(start)
	return res, nil
}

// SyncSequencesParallel is SyncSequences with the read and the apply each
// split over k sessions: what the cutover runs while writes are paused.
func SyncSequencesParallel(ctx context.Context, from, to *pgxpool.Pool, on string, margin int64, k int) (SequenceSync, error) {
	start := time.Now()
	seqs, err := ReadSequencesParallel(ctx, from, k)
	if err != nil {
		return SequenceSync{}, err
	}
	read := time.Since(start)
	res, err := ApplySequencesParallel(ctx, to, on, seqs, margin, k)
	res.Read = read
	return res, err
}

// SequenceCollisions compares the sequences of from and to before a sync:
// a sequence missing on to, or one that is further on to than on from
// (something wrote to the target: setting it back would reuse values), is
// listed with the reason.
func SequenceCollisions(ctx context.Context, from, to Querier) ([]string, error) {
	src, err := ReadSequences(ctx, from)
	if err != nil {
		return nil, err
	}
	dst, err := ReadSequences(ctx, to)
	if err != nil {
		return nil, err
	}
	have := make(map[string]Sequence, len(dst))
	for _, s := range dst {
		have[s.Qualified()] = s
	}
	var out []string
	for _, s := range src {
		d, ok := have[s.Qualified()]
		switch {
		case !ok:
			out = append(out, s.Qualified()+": missing on the target")
		case d.IsCalled && ahead(d, s):
			out = append(out, fmt.Sprintf("%s: %d on the target is past %d on the source (something wrote to the target)", s.Qualified(), d.LastValue, s.LastValue))
		}
	}
	return out, nil
}

// ahead reports whether d has moved beyond s in the increment's direction.
func ahead(d, s Sequence) bool {
	if !s.IsCalled {
		return s.Increment >= 0 && d.LastValue >= s.LastValue || s.Increment < 0 && d.LastValue <= s.LastValue
	}
	if s.Increment >= 0 {
		return d.LastValue > s.LastValue
	}
	return d.LastValue < s.LastValue
}
