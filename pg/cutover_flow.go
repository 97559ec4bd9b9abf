package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Cutover moves writes from blue to green with p.Method, after prechecks
// that change nothing. Any failure before the switch puts everything back
// and returns an *AbortError; a failed precheck returns a *PrecheckError.
// The report is returned in every case.
func Cutover(ctx context.Context, p CutoverParams) (*Report, error) {
	return execute(ctx, &p, false)
}

// Rollback is the cutover in reverse: writes move from green back to blue,
// through the reverse replication the cutover set up, sequences included.
// Blue's original slots are moved past what the reverse feed brought, and
// green's subscriptions are enabled again.
func Rollback(ctx context.Context, p CutoverParams) (*Report, error) {
	return execute(ctx, &p, true)
}

// undo is one thing to put back if the cutover stops before its switch.
type undo struct {
	name string
	fn   func(ctx context.Context) error
}

func execute(ctx context.Context, p *CutoverParams, rollback bool) (rep *Report, err error) {
	p.defaults()
	d := p.direction(rollback)
	rep = &Report{Direction: d.name, Method: p.Method, StartedAt: time.Now().UTC()}
	r := &run{p: p, rep: rep, j: newJournal(p.OnSubStep)}
	defer func() {
		r.j.close()
		rep.FinishedAt = time.Now().UTC()
		rep.TotalMs = ms(rep.FinishedAt.Sub(rep.StartedAt))
		if err != nil {
			rep.Error = err.Error()
		}
	}()
	switch p.Method {
	case MethodPgBouncer, MethodNologin, MethodReadonly:
	default:
		return rep, fmt.Errorf("unknown cutover method %q: use pgbouncer, nologin or readonly", p.Method)
	}
	if len(p.Subscriptions) == 0 {
		return rep, fmt.Errorf("no forward subscription named: the cutover drains and stops them")
	}
	e, err := r.open(ctx, d)
	defer e.close()
	if err != nil {
		return rep, err
	}
	rep.Prechecks = r.precheck(ctx, d, e, rollback)
	var failed []Check
	for _, c := range rep.Prechecks {
		if !c.OK {
			failed = append(failed, c)
		}
	}
	if len(failed) > 0 {
		return rep, &PrecheckError{Failed: failed}
	}
	var probe *prober
	if len(p.Bouncers) > 0 {
		probe = startProbe(ctx, p.Bouncers[0].ClientConninfo, p.ProbeInterval)
	}
	var undos []undo
	switched, err := r.switchover(ctx, d, e, rollback, &undos)
	if err != nil && !switched {
		restoreErr := r.putBack(ctx, d, e, undos)
		rep.Probe = probe.stop()
		rep.Aborted = true
		if restoreErr == nil {
			rep.FinalTarget, rep.FinalVersion = d.from.endpoint.String(), e.fromVersion
		}
		return rep, &AbortError{Err: err, RestoreErr: restoreErr}
	}
	rep.Probe = probe.stop()
	return rep, err
}

// putBack runs the undo list backwards, on a context that outlives a
// cancelled cutover, then checks writes go to the source again.
func (r *run) putBack(ctx context.Context, d direction, e *cutEnv, undos []undo) error {
	ctx = context.WithoutCancel(ctx)
	var errs []error
	for k := len(undos) - 1; k >= 0; k-- {
		u := undos[k]
		err := r.step(ctx, "undo: "+u.name, d.from.name, func(ctx context.Context) (string, error) {
			ctx, cancel := r.timeout(ctx)
			defer cancel()
			return "", u.fn(ctx)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.name, err))
		}
	}
	if r.p.Method == MethodPgBouncer {
		if err := r.step(ctx, "verify target is "+d.from.name, "pgbouncer", func(ctx context.Context) (string, error) {
			return r.verifyTarget(ctx, e, d.from, e.fromVersion)
		}); err != nil {
			errs = append(errs, err)
		}
		if err := r.restoreLoginRetry(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// switchover runs the sub-steps. It returns switched once writes go to the
// target: from then on a failure is reported, never undone.
func (r *run) switchover(ctx context.Context, d direction, e *cutEnv, rollback bool, undos *[]undo) (switched bool, err error) {
	p := r.p
	f := p.feeds(rollback)
	push := func(name string, fn func(ctx context.Context) error) { *undos = append(*undos, undo{name, fn}) }
	bounded := func(fn func(ctx context.Context) (string, error)) func(ctx context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			ctx, cancel := r.timeout(ctx)
			defer cancel()
			return fn(ctx)
		}
	}

	// Before writes stop: what can be prepared is, so the pause stays short.
	if !rollback {
		err := r.step(ctx, "prepare reverse replication", "blue, green", bounded(func(ctx context.Context) (string, error) {
			return r.prepareReverse(ctx, e, push)
		}))
		if err != nil {
			return false, err
		}
	} else {
		// Most of the WAL the reverse feed wrote on blue is skipped now; the
		// rest inside the pause.
		err := r.step(ctx, "advance blue's slots (first pass)", "blue", bounded(func(ctx context.Context) (string, error) {
			lsn, err := advanceSlots(ctx, e.to, f.startSlots)
			return "to " + lsn, err
		}))
		if err != nil {
			return false, err
		}
	}

	// Sequences are set once before writes stop, so the sync inside the
	// pause finds warm caches and pages already logged (a first change of a
	// page after a checkpoint logs the whole page). Values only grow: the
	// final sync moves them on.
	var pre []Sequence
	err = r.step(ctx, "sync sequences (first pass)", d.to.name, bounded(func(ctx context.Context) (string, error) {
		var err error
		if pre, err = ReadSequencesParallel(ctx, d.from.pool, SequenceSessions); err != nil {
			return "", err
		}
		res, err := ApplySequencesParallel(ctx, d.to.pool, pre, p.SequenceMargin, SequenceSessions)
		return fmt.Sprintf("%d sequences", res.Synced), err
	}))
	if err != nil {
		return false, err
	}

	// Stop writes on the source.
	pausedAt := time.Now()
	if err := r.stopWrites(ctx, d, e, push); err != nil {
		return false, err
	}

	// Drain, reading the sequences meanwhile (writes have stopped).
	var lsn string
	err = r.step(ctx, "drain target", d.from.name, bounded(func(ctx context.Context) (string, error) {
		var err error
		var lag int64
		lsn, lag, err = drainTarget(ctx, e.from, f.drainSlots)
		r.rep.LagAtPause, r.rep.DrainLSN = lag, lsn
		return fmt.Sprintf("%s, lag %d bytes", lsn, lag), err
	}))
	if err != nil {
		return false, err
	}
	var seqs []Sequence
	var seqErr error
	seqStart := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		seqErr = r.step(ctx, "read sequences", d.from.name, bounded(func(ctx context.Context) (string, error) {
			var err error
			seqs, err = ReadSequencesParallel(ctx, d.from.pool, SequenceSessions)
			return fmt.Sprintf("%d sequences", len(seqs)), err
		}))
	}()
	err = r.step(ctx, "drain", d.from.name+" -> "+d.to.name, func(ctx context.Context) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, p.DrainTimeout)
		defer cancel()
		polls, err := waitDrained(ctx, e.from, e.to, f.drainSlots, lsn)
		if err != nil {
			return "", fmt.Errorf("drain (timeout %s): %w", p.DrainTimeout, err)
		}
		return fmt.Sprintf("every slot at %s after %d polls", lsn, polls), nil
	})
	wg.Wait()
	if err != nil {
		return false, err
	}
	if seqErr != nil {
		return false, seqErr
	}

	// Stop the drained feed, start the opposite one.
	err = r.step(ctx, "stop "+d.from.name+" -> "+d.to.name+" replication", d.to.name, bounded(func(ctx context.Context) (string, error) {
		push("enable "+strings.Join(f.drainSubs, ", "), func(ctx context.Context) error { return enableSubscriptions(ctx, e.to, f.drainSubs) })
		return "disabled " + strings.Join(f.drainSubs, ", "), disableSubscriptions(ctx, e.to, f.drainSubs)
	}))
	if err != nil {
		return false, err
	}
	if err := r.startOpposite(ctx, d, e, f, push, rollback); err != nil {
		return false, err
	}
	err = r.step(ctx, "sync sequences", d.to.name, bounded(func(ctx context.Context) (string, error) {
		// Only what moved since the first pass is set again.
		changed := changedSequences(pre, seqs)
		res, err := ApplySequencesParallel(ctx, d.to.pool, changed, p.SequenceMargin, SequenceSessions)
		r.rep.Sequences, r.rep.SeqMissing = len(seqs)-len(changed)+res.Synced, res.Missing
		r.rep.SeqSyncMs = ms(time.Since(seqStart))
		if err == nil && len(res.Missing) > 0 {
			err = fmt.Errorf("sequences missing on %s: %s", d.to.name, strings.Join(res.Missing, ", "))
		}
		return fmt.Sprintf("%d sequences, %d set again since the first pass (margin %d)", r.rep.Sequences, res.Synced, p.SequenceMargin), err
	}))
	if err != nil {
		return false, err
	}
	if err := r.openWrites(ctx, d, e, push); err != nil {
		return false, err
	}

	// The switch.
	if p.Method == MethodPgBouncer {
		if err := r.repoint(ctx, d, e, push); err != nil {
			return false, err
		}
		err = r.step(ctx, "resume", "pgbouncer", bounded(func(ctx context.Context) (string, error) {
			r.liftLoginRetry(ctx, e)
			return "", r.eachBouncer(ctx, e, func(ctx context.Context, c *Console, b BouncerParams) error {
				return c.Resume(ctx, b.Database)
			})
		}))
		r.rep.PausedMs = ms(time.Since(pausedAt))
		if err != nil {
			return false, err
		}
		err = r.step(ctx, "verify target is "+d.to.name, "pgbouncer", func(ctx context.Context) (string, error) {
			return r.verifyTarget(ctx, e, d.to, e.toVersion)
		})
		if rerr := r.restoreLoginRetry(context.WithoutCancel(ctx), e); rerr != nil {
			r.rep.Warnings = append(r.rep.Warnings, "server_login_retry not restored: "+rerr.Error())
		}
		if err != nil {
			return true, err
		}
		r.rep.FinalTarget, r.rep.FinalVersion = d.to.endpoint.String(), e.toVersion
		err = r.step(ctx, "probe write on "+d.to.name, "pgbouncer", bounded(func(ctx context.Context) (string, error) {
			_, err := execThrough(ctx, p.Bouncers[0].ClientConninfo, probeSQL)
			return "a write through PgBouncer succeeded", err
		}))
	} else {
		r.rep.PausedMs = ms(time.Since(pausedAt))
		r.rep.FinalTarget, r.rep.FinalVersion = d.to.endpoint.String(), e.toVersion
		err = r.step(ctx, "probe write on "+d.to.name, d.to.name, bounded(func(ctx context.Context) (string, error) {
			return "a write on a new session succeeded", probeWrite(ctx, d.to.pool)
		}))
	}
	if err != nil {
		return true, err
	}
	if rollback {
		// The reverse feed is spent; its slot on green would hold WAL forever.
		if err := r.step(ctx, "drop reverse replication", "blue, green", bounded(func(ctx context.Context) (string, error) {
			return "", r.dropReverse(ctx, e.to, e.from) // rollback: to is blue
		})); err != nil {
			r.rep.Warnings = append(r.rep.Warnings, "reverse replication left in place: "+err.Error())
		}
	}
	return true, nil
}

// prepareReverse creates, before writes stop, green's publication and the
// disabled subscription on blue (its connection to green is proven now);
// the slot comes inside the pause, after the drain.
func (r *run) prepareReverse(ctx context.Context, e *cutEnv, push func(string, func(context.Context) error)) (string, error) {
	p := r.p
	blue, green := e.from, e.to
	if err := dropSubscription(ctx, blue, p.Reverse); err != nil { // left by a crashed attempt
		return "", err
	}
	if err := dropSlot(ctx, green, p.Reverse); err != nil {
		return "", err
	}
	push("drop reverse replication", func(ctx context.Context) error { return r.dropReverse(ctx, blue, green) })
	var has bool
	if err := green.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", p.Reverse).Scan(&has); err != nil {
		return "", fmt.Errorf("look for publication %s: %w", p.Reverse, err)
	}
	if !has {
		if _, err := green.Exec(ctx, "CREATE PUBLICATION "+qi(p.Reverse)+" FOR ALL TABLES"); err != nil {
			return "", fmt.Errorf("create publication %s on green: %w", p.Reverse, err)
		}
	}
	to := p.GreenEndpoint
	if p.GreenForBlue != nil {
		to = *p.GreenForBlue
	}
	// Created disabled, with no copy and no slot (the slot comes after the
	// drain); connect = true proves blue reaches green now.
	conninfo := fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s", QuoteConninfoValue(to.Host), to.Port,
		QuoteConninfoValue(to.DBName), QuoteConninfoValue(p.ReplicationRole), QuoteConninfoValue(p.ReplicationPassword))
	err := CreateSubscription(ctx, p.Blue, SubscriptionParams{Name: p.Reverse, Publication: p.Reverse, Slot: p.Reverse, Conninfo: conninfo})
	if err != nil {
		return "", scrubPassword(err, p.ReplicationPassword)
	}
	return fmt.Sprintf("publication %s on green, subscription %s on blue (disabled, connected to %s)", p.Reverse, p.Reverse, to), nil
}

// dropReverse removes the reverse subscription (on blue), then its slot
// and publication (on green).
func (r *run) dropReverse(ctx context.Context, blue, green *pgxpool.Conn) error {
	if err := dropSubscription(ctx, blue, r.p.Reverse); err != nil {
		return err
	}
	if err := dropSlot(ctx, green, r.p.Reverse); err != nil {
		return err
	}
	if _, err := green.Exec(ctx, "DROP PUBLICATION IF EXISTS "+qi(r.p.Reverse)); err != nil {
		return fmt.Errorf("drop publication %s on green: %w", r.p.Reverse, err)
	}
	return nil
}

// changedSequences are the sequences of now that differ from before (or
// were not in it).
func changedSequences(before, now []Sequence) []Sequence {
	seen := make(map[[2]string]Sequence, len(before))
	for _, s := range before {
		seen[[2]string{s.Schema, s.Name}] = s
	}
	var out []Sequence
	for _, s := range now {
		if b, ok := seen[[2]string{s.Schema, s.Name}]; !ok || b != s {
			out = append(out, s)
		}
	}
	return out
}
