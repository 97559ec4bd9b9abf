package steps

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

// Putting back what the traffic steps changed, from their records: what a
// rollback does once the databases are back on blue.

// revertedSteps are the steps whose changes a rollback puts back, the
// latest first. traffic-to-pgbouncer's are not: after a rollback the
// application reaches blue through PgBouncer, which is what it set up.
var revertedSteps = []string{readersToGreenID, switchTrafficID}

// revertPlan is one recorded change and how it is put back.
type revertPlan struct {
	step   string
	index  int
	change trafficChange
	calls  []aws.PlannedCall
	skip   string // why nothing is sent ("" when calls are)
	run    func(ctx context.Context, c *aws.Client) error
}

func (e *Env) planRevert(ctx context.Context, r *awsReads, ch trafficChange) (revertPlan, error) {
	p := revertPlan{change: ch}
	switch ch.Kind {
	case "secret":
		cur, err := r.secret(ctx, aws.GetSecretParams{SecretID: ch.ID}, "which version is current")
		if err != nil {
			return p, err
		}
		if r.live() && cur.VersionID == ch.PrevVersion {
			p.skip = "its previous version " + ch.PrevVersion + " is current again"
			return p, nil
		}
		mv := aws.MoveStageParams{SecretID: ch.ID, Stage: aws.StageCurrent, MoveTo: ch.PrevVersion, RemoveFrom: cur.VersionID}
		p.calls = mv.Plan()
		p.run = func(ctx context.Context, c *aws.Client) error { return c.MoveStage(ctx, mv) }
	case "ssm-put", "ssm-delete":
		cur, found, err := r.parameter(ctx, aws.GetParameterParams{Name: ch.ID}, "as it is now")
		if err != nil {
			return p, err
		}
		var put *aws.PutParameterParams
		switch {
		case ch.Kind == "ssm-delete" && found:
			p.skip = "it exists again"
		case ch.Kind == "ssm-delete":
			put = &aws.PutParameterParams{Name: ch.ID, Value: ch.PrevValue, Type: ch.PrevType}
		case !ch.Existed && !found:
			p.skip = "it is gone already"
		case !ch.Existed:
			del := aws.DeleteParameterParams{Name: ch.ID}
			p.calls = del.Plan()
			p.run = func(ctx context.Context, c *aws.Client) error { _, err := c.DeleteParameter(ctx, del); return err }
		default:
			v, _ := strconv.ParseInt(ch.PrevVersion, 10, 64)
			prev, pfound, err := r.parameter(ctx, aws.GetParameterParams{Name: ch.ID, Version: v, Decrypt: true}, "the value it had (from its history)")
			if err != nil {
				return p, err
			}
			switch {
			case r.live() && !pfound:
				return p, fmt.Errorf("parameter %s: version %s is no longer in its history; put its value back by hand", ch.ID, ch.PrevVersion)
			case r.live() && found && cur.Value == prev.Value:
				p.skip = "it holds its previous value again"
			default:
				put = &aws.PutParameterParams{Name: ch.ID, Value: prev.Value, Type: or(prev.Type, ch.PrevType)}
			}
		}
		if put != nil {
			p.calls = put.Plan()
			p.run = func(ctx context.Context, c *aws.Client) error { _, err := c.PutParameter(ctx, *put); return err }
		}
	case "dns":
		cur, err := r.record(ctx, aws.LookupRecordParams{HostedZoneID: ch.Zone, Name: ch.ID}, "as it is now")
		if err != nil {
			return p, err
		}
		var change aws.ChangeRecordParams
		switch {
		case ch.Existed && r.live() && cur.Found && cur.TTL == ch.PrevTTL && strings.Join(cur.Values, ",") == strings.Join(ch.PrevValues, ","):
			p.skip = "it holds its previous values again"
			return p, nil
		case ch.Existed:
			change = aws.ChangeRecordParams{HostedZoneID: ch.Zone, Name: ch.ID, Type: ch.PrevType, TTL: ch.PrevTTL, Values: ch.PrevValues,
				Comment: "pgbluegreen rollback: the record as it was"}
		case !cur.Found:
			p.skip = "it is gone already"
			return p, nil
		default:
			// It did not exist: delete it, named exactly as it is now.
			change = aws.ChangeRecordParams{HostedZoneID: ch.Zone, Action: "DELETE", Name: ch.ID, Type: cur.Type, TTL: cur.TTL, Values: cur.Values}
		}
		p.calls = append(change.Plan(), aws.WaitChangeParams{ChangeID: "<the change>"}.Plan()...)
		p.run = func(ctx context.Context, c *aws.Client) error {
			res, err := c.ChangeRecord(ctx, change)
			if err != nil {
				return err
			}
			return c.WaitChange(ctx, aws.WaitChangeParams{ChangeID: res.ChangeID, Progress: e.progress("DNS change " + res.ChangeID)})
		}
	default:
		return p, fmt.Errorf("recorded change of unknown kind %q", ch.Kind)
	}
	return p, nil
}

// planReverts builds the reverts of every recorded change not reverted yet,
// the latest step first and, in each, the latest change first.
func (e *Env) planReverts(ctx context.Context) (*awsReads, []revertPlan, error) {
	r := e.awsReads()
	var out []revertPlan
	for _, step := range revertedSteps {
		record, err := e.loadChanges(step)
		if err != nil {
			return r, nil, err
		}
		for i := len(record) - 1; i >= 0; i-- {
			if record[i].Reverted {
				continue
			}
			p, err := e.planRevert(ctx, r, record[i])
			if err != nil {
				return r, nil, err
			}
			p.step, p.index = step, i
			out = append(out, p)
		}
	}
	return r, out, nil
}

// revertTraffic puts back every change switch-traffic and readers-to-green
// recorded: a secret's AWSCURRENT moved back to its previous version (its
// value never read), an SSM parameter re-put with the value of its
// previous version (or deleted, if it did not exist; re-created, if it was
// deleted), a DNS record UPSERTed as it was (or deleted, if it did not
// exist) with a wait until Route 53 answers with it everywhere. What is
// back already is not sent again; each change is marked reverted as it is.
// The rollback calls it once the databases are back on blue.
func (e *Env) revertTraffic(ctx context.Context) error {
	_, plans, err := e.planReverts(ctx)
	if err != nil {
		return err
	}
	if len(plans) == 0 {
		return nil
	}
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	var done []string
	for i, p := range plans {
		what := p.change.what()
		if p.run != nil {
			if err := p.run(ctx, c); err != nil {
				var left []string
				for _, q := range plans[i:] {
					left = append(left, q.change.what())
				}
				return fmt.Errorf("putting the traffic back stopped half-way: put back: %s; NOT put back: %s, failed with: %w; run the rollback again (what is back is not sent again)",
					orNone(strings.Join(done, ", ")), strings.Join(left, ", "), err)
			}
			e.Logf("%s put back (%s)", what, p.change.before())
		} else {
			e.Logf("%s: %s", what, p.skip)
		}
		record, err := e.loadChanges(p.step)
		if err != nil {
			return err
		}
		record[p.index].Reverted = true
		if err := e.saveChanges(p.step, record); err != nil {
			return err
		}
		done = append(done, what)
	}
	return nil
}

// revertTrafficPlan shows what revertTraffic would do now: for the
// rollback's plan and dry run.
func (e *Env) revertTrafficPlan(ctx context.Context) ([]Action, error) {
	r, plans, err := e.planReverts(ctx)
	if err != nil {
		return nil, err
	}
	if len(plans) == 0 {
		return []Action{note(AWSTarget, "no traffic change recorded by switch-traffic or readers-to-green: nothing to put back")}, nil
	}
	out := r.acts
	for _, p := range plans {
		if p.run == nil {
			out = append(out, note(AWSTarget, "%s: %s: nothing is sent", p.change.what(), p.skip))
			continue
		}
		for i, c := range p.calls {
			text := c.String()
			if i == 0 {
				text += "  -- puts back " + p.change.what() + ": " + p.change.before()
			} else if strings.HasPrefix(c.Call, "route53 GetChange") {
				text += "  -- every " + e.Config.AWS.PollInterval.String() + " until INSYNC"
			}
			out = append(out, Action{Target: AWSTarget, Kind: "api", Text: text})
		}
	}
	return out, nil
}

// revertsPending reports whether a recorded traffic change is not put
// back yet (read from the state alone).
func (e *Env) revertsPending() (bool, error) {
	for _, step := range revertedSteps {
		record, err := e.loadChanges(step)
		if err != nil {
			return false, err
		}
		for _, ch := range record {
			if !ch.Reverted {
				return true, nil
			}
		}
	}
	return false, nil
}
