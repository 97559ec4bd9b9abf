package aws

import (
	"context"
	"errors"
	"strings"
	"time"
)

// ProgressFunc is told the status seen at every poll of a wait, and the time
// since the wait began, so a screen can show "creating (4m10s)".
type ProgressFunc func(status string, elapsed time.Duration)

// WaitParams describe one wait for a resource to become available.
type WaitParams struct {
	// ID is the cluster, instance or snapshot identifier.
	ID string
	// EngineVersion, when set, also waits for the resource to report this
	// engine version: after an upgrade a resource can be "available" for a
	// moment on the old version.
	EngineVersion string
	// Started says the change waited for has begun (the modify's answer
	// showed a busy status): seen "available" again at another version than
	// EngineVersion, the change has failed (Aurora's upgrade precheck
	// refused it, for one), and waiting longer is pointless.
	Started bool
	// Interval between polls; 0 uses the client's PollInterval.
	Interval time.Duration
	// Progress, when set, is called after every poll.
	Progress ProgressFunc
}

// Statuses after which waiting for "available" is pointless: the operator
// has to act (or the resource is going away).
var (
	failedClusterStatuses = map[string]bool{
		"failed": true, "incompatible-parameters": true, "incompatible-restore": true,
		"inaccessible-encryption-credentials": true, "deleting": true, "stopped": true,
		"stopping": true,
	}
	failedInstanceStatuses = map[string]bool{
		"failed": true, "incompatible-parameters": true, "incompatible-restore": true,
		"incompatible-network": true, "incompatible-option-group": true,
		"inaccessible-encryption-credentials": true, "storage-full": true,
		"restore-error": true, "deleting": true, "stopped": true, "stopping": true,
	}
	failedSnapshotStatuses = map[string]bool{"failed": true, "error": true, "deleting": true}
)

// ErrChangeNotMade is the wait's error when a resource became available
// again at its old engine version: the change did not happen.
var ErrChangeNotMade = errors.New("the change did not happen")

// WaitClusterAvailable polls DescribeDBClusters until the cluster is
// "available" (and at EngineVersion, if set). It stops on a failed status, on
// a non-transient error, or when ctx ends. An upgrade that ended with the
// cluster at its old version is an error carrying the cluster's latest
// event (rds DescribeEvents), where RDS says why.
func (c *Client) WaitClusterAvailable(ctx context.Context, p WaitParams) (Cluster, error) {
	var cl Cluster
	err := c.poll(ctx, "DB cluster "+p.ID, p, func(ctx context.Context) (string, string, error) {
		var err error
		cl, err = c.DescribeCluster(ctx, DescribeClusterParams{ClusterID: p.ID})
		return cl.Status, cl.EngineVersion, err
	}, failedClusterStatuses)
	if errors.Is(err, ErrChangeNotMade) {
		err = c.withLatestEvent(ctx, err, EventsParams{SourceID: p.ID, SourceType: "db-cluster"})
	}
	return cl, err
}

// WaitInstanceAvailable polls DescribeDBInstances until the instance is
// "available" (and at EngineVersion, if set).
func (c *Client) WaitInstanceAvailable(ctx context.Context, p WaitParams) (Instance, error) {
	var in Instance
	err := c.poll(ctx, "DB instance "+p.ID, p, func(ctx context.Context) (string, string, error) {
		var err error
		in, err = c.DescribeInstance(ctx, DescribeInstanceParams{InstanceID: p.ID})
		return in.Status, in.EngineVersion, err
	}, failedInstanceStatuses)
	return in, err
}

// WaitSnapshotAvailable polls DescribeDBSnapshots until the snapshot is
// "available" (and at EngineVersion, if set: after ModifyDBSnapshot).
func (c *Client) WaitSnapshotAvailable(ctx context.Context, p WaitParams) (Snapshot, error) {
	var s Snapshot
	err := c.poll(ctx, "DB snapshot "+p.ID, p, func(ctx context.Context) (string, string, error) {
		var err error
		s, err = c.DescribeSnapshot(ctx, DescribeSnapshotParams{SnapshotID: p.ID})
		return s.Status, s.EngineVersion, err
	}, failedSnapshotStatuses)
	if errors.Is(err, ErrChangeNotMade) {
		err = c.withLatestEvent(ctx, err, EventsParams{SourceID: p.ID, SourceType: "db-snapshot"})
	}
	return s, err
}

// WaitClusterSnapshotAvailable polls DescribeDBClusterSnapshots until the
// cluster snapshot is "available".
func (c *Client) WaitClusterSnapshotAvailable(ctx context.Context, p WaitParams) (ClusterSnapshot, error) {
	var s ClusterSnapshot
	err := c.poll(ctx, "DB cluster snapshot "+p.ID, p, func(ctx context.Context) (string, string, error) {
		var err error
		s, err = c.DescribeClusterSnapshot(ctx, DescribeClusterSnapshotParams{SnapshotID: p.ID})
		return s.Status, s.EngineVersion, err
	}, failedSnapshotStatuses)
	return s, err
}

// WaitAppliedParams name the instance whose parameter status is awaited:
// a member of an Aurora cluster (ClusterID and InstanceID), or an RDS
// instance (InstanceID alone).
type WaitAppliedParams struct {
	ClusterID  string
	InstanceID string
	Interval   time.Duration
	Progress   ProgressFunc
}

// Plan is the call each poll of WaitParametersApplied makes.
func (p WaitAppliedParams) Plan() []PlannedCall {
	if p.ClusterID != "" {
		return DescribeClusterParams{ClusterID: p.ClusterID}.Plan()
	}
	return DescribeInstanceParams{InstanceID: p.InstanceID}.Plan()
}

// WaitParametersApplied polls until the instance's parameter status is no
// longer "applying" and returns it ("pending-reboot" or "in-sync"). A reboot
// while RDS is still applying a change can come up without it: this wait
// comes between a parameter change and the reboot that applies it.
func (c *Client) WaitParametersApplied(ctx context.Context, p WaitAppliedParams) (string, error) {
	var status string
	err := c.poll(ctx, "parameters of "+p.InstanceID, WaitParams{ID: p.InstanceID, Interval: p.Interval, Progress: p.Progress},
		func(ctx context.Context) (string, string, error) {
			if p.ClusterID != "" {
				cl, err := c.DescribeCluster(ctx, DescribeClusterParams{ClusterID: p.ClusterID})
				m, _ := cl.Member(p.InstanceID)
				status = m.ParameterGroupStatus
				return settled(status), "", err
			}
			in, err := c.DescribeInstance(ctx, DescribeInstanceParams{InstanceID: p.InstanceID})
			status = ApplyStatus(nil, in)
			return settled(status), "", err
		}, nil)
	return status, err
}

// settled maps a parameter status onto poll's notion of done.
func settled(status string) string {
	if status == "applying" {
		return status
	}
	return "available"
}

// poll runs describe at once and then every interval until the status is
// "available" (at the wanted version). Throttling that outlasted the SDK's
// retries does not end a wait of half an hour: the next poll tries again.
func (c *Client) poll(ctx context.Context, what string, p WaitParams, describe func(context.Context) (status, version string, err error), failed map[string]bool) error {
	call := "wait " + what
	interval := p.Interval
	if interval <= 0 {
		interval = c.pollEvery
	}
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	busy := p.Started
	for {
		select {
		case <-ctx.Done():
			return &Error{Call: call, Kind: KindCanceled, Message: ctx.Err().Error(), Err: ctx.Err()}
		case <-timer.C:
		}
		status, version, err := describe(ctx)
		if err != nil && KindOf(err) != KindThrottling {
			if ctx.Err() != nil {
				return &Error{Call: call, Kind: KindCanceled, Message: ctx.Err().Error(), Err: ctx.Err()}
			}
			return err
		}
		if err == nil {
			if p.Progress != nil {
				p.Progress(status, time.Since(start))
			}
			if failed[status] {
				return &Error{Call: call, Kind: KindInvalidState,
					Message: "status is " + status + ", it will not become available by itself",
					Hint:    "see the resource's events (aws rds describe-events --source-identifier " + p.ID + ") and fix the cause"}
			}
			if status == "available" && (p.EngineVersion == "" || version == p.EngineVersion) {
				return nil
			}
			if status == "available" && busy {
				return &Error{Call: call, Kind: KindInvalidState, Err: ErrChangeNotMade,
					Message: "available again at " + version + ", not " + p.EngineVersion + ": " + ErrChangeNotMade.Error(),
					Hint:    "fix the cause RDS gives and run the step again"}
			}
			busy = busy || status != "available"
		}
		timer.Reset(interval)
	}
}

// withLatestEvent adds the resource's latest RDS event to a failed wait's
// message: where RDS says why an upgrade did not happen.
func (c *Client) withLatestEvent(ctx context.Context, err error, p EventsParams) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	events, eerr := c.Events(ctx, p)
	if eerr != nil || len(events) == 0 {
		return err
	}
	last := events[len(events)-1].Message
	out := *e
	out.Message = strings.TrimSuffix(out.Message, ".") + "; RDS says: " + oneLine(last)
	return &out
}
