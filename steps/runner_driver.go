package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
)

// driverApplication names this driver's lock session on blue: the host
// and process that drive it, as a second driver is told.
func driverApplication() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s host=%s pid=%d", pg.DriverApplicationPrefix, host, os.Getpid())
}

// holdBlue takes the driver lock on blue for a step (or a run of steps:
// calls nest, the lock is taken once) and returns its release. Another
// driver holding it is a refusal naming it. When blue cannot be reached
// the run goes on with a warning: only the state file's lock guards it
// then, and a step that needs blue fails on its own.
func (r *Runner) holdBlue(ctx context.Context, id string) (release func(), err error) {
	if r.Blue == nil {
		return func() {}, nil
	}
	r.lockMu.Lock()
	defer r.lockMu.Unlock()
	if r.lockDepth > 0 {
		r.lockDepth++
		return r.releaseBlue, nil
	}
	cctx, cancel := context.WithTimeout(ctx, r.connectTimeout())
	defer cancel()
	l, err := pg.AcquireDriverLock(cctx, r.Blue.Config().ConnConfig, driverApplication())
	var held *pg.DriverHeldError
	switch {
	case errors.As(err, &held):
		return nil, &RefusedError{Step: id, Reason: held.Error()}
	case err != nil && pg.IsConnectError(err):
		r.emit(Line{Time: time.Now(), Step: id, Level: "warn", Text: fmt.Sprintf("could not take the driver lock on blue (%v): nothing stops a driver on another host from driving blue meanwhile", err)})
	case err != nil:
		return nil, err
	}
	r.lock, r.lockDepth = l, 1
	return r.releaseBlue, nil
}

func (r *Runner) releaseBlue() {
	r.lockMu.Lock()
	defer r.lockMu.Unlock()
	if r.lockDepth--; r.lockDepth == 0 {
		r.lock.Release(context.Background())
		r.lock = nil
	}
}

func (r *Runner) connectTimeout() time.Duration {
	if r.Config != nil && r.Config.Timeouts.Connect.Duration > 0 {
		return r.Config.Timeouts.Connect.Duration
	}
	return 5 * time.Second
}
