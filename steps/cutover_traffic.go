package steps

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The steps that change where the application finds its database: runbook
// 000's traffic-to-pgbouncer before the cutover, switch-traffic after it
// (the secret, SSM parameter and DNS record pointed at green), and 000's
// readers-to-green. Each records what it replaces before changing it
// (traffic_record.go), so the rollback can put it back (traffic_revert.go).

// The traffic steps' IDs.
const (
	trafficToPgBouncerID = "traffic-to-pgbouncer"
	switchTrafficID      = "switch-traffic"
	readersToGreenID     = "readers-to-green"
)

func trafficToPgBouncer() *Step {
	return &Step{ID: trafficToPgBouncerID, Phase: PhaseCutover, Target: AWSTarget, Title: "Point the application at PgBouncer (optional)",
		Why:    "Runbook 000 before the cutover: the proxy and reader settings removed, the application's secret pointed at PgBouncer, so the cutover moves all of its traffic.",
		Source: "000", Destructive: true, Optional: true, Records: []string{trafficRecordKey(trafficToPgBouncerID)},
		Plan: func(ctx context.Context, e *Env) ([]Action, error) {
			return e.trafficStepPlan(ctx, trafficToPgBouncerID)
		},
		Check: func(ctx context.Context, e *Env) (CheckResult, error) {
			return e.trafficStepCheck(ctx, trafficToPgBouncerID)
		},
		Run: func(ctx context.Context, e *Env) error { return e.trafficStepRun(ctx, trafficToPgBouncerID) },
	}
}

func switchTraffic() *Step {
	return &Step{ID: switchTrafficID, Phase: PhaseCutover, Target: AWSTarget, Title: "Switch traffic to green (optional)",
		Why:    "The application finds its database in a secret, an SSM parameter or a DNS name: point each configured one at green. Each previous value is recorded, so a rollback puts it back.",
		Source: "000, 002", Destructive: true, Optional: true, Records: []string{trafficRecordKey(switchTrafficID), "traffic_switched_at"},
		Plan:  planSwitchTraffic,
		Check: checkSwitchTraffic,
		Run:   runSwitchTraffic,
	}
}

func readersToGreen() *Step {
	return &Step{ID: readersToGreenID, Phase: PhaseCutover, Target: AWSTarget, Title: "Give the application green's readers (optional)",
		Why:    "Runbook 000 after the cutover: the reader secret pointed at green's readers, the reader settings 000 removed before the cutover put back.",
		Source: "000", Destructive: true, Optional: true, Records: []string{trafficRecordKey(readersToGreenID)},
		Plan: func(ctx context.Context, e *Env) ([]Action, error) { return e.trafficStepPlan(ctx, readersToGreenID) },
		Check: func(ctx context.Context, e *Env) (CheckResult, error) {
			return e.trafficStepCheck(ctx, readersToGreenID)
		},
		Run: func(ctx context.Context, e *Env) error { return e.trafficStepRun(ctx, readersToGreenID) },
	}
}

// greenHost is where the switch points: the endpoint recorded by the AWS
// provisioning steps, else green.conninfo's host.
func (e *Env) greenHost() string {
	if v, ok := e.Value("green_endpoint"); ok {
		return v
	}
	if pc, err := pgconn.ParseConfig(e.Config.Green.Conninfo); err == nil {
		return pc.Host
	}
	return ""
}

// trafficTargets are the changes a traffic step is configured to make, in
// the order they are made. host is green's endpoint.
func (e *Env) trafficTargets(step, host string) []trafficTarget {
	a := e.Config.AWS
	var out []trafficTarget
	secret := func(id, from string) {
		if id != "" {
			out = append(out, trafficTarget{kind: "secret", id: id, from: from})
		}
	}
	switch step {
	case trafficToPgBouncerID:
		for _, n := range a.PreCutover.SSMDelete {
			out = append(out, trafficTarget{kind: "ssm-delete", id: n})
		}
		secret(a.PreCutover.SecretID, a.PreCutover.SecretValueFrom)
	case switchTrafficID:
		s := a.Switch
		secret(s.SecretID, s.SecretValueFrom)
		if s.SSMParameter != "" {
			out = append(out, trafficTarget{kind: "ssm-put", id: s.SSMParameter, value: or(s.SSMValue, host)})
		}
		for _, n := range s.SSMDelete {
			out = append(out, trafficTarget{kind: "ssm-delete", id: n})
		}
		if s.Route53.Record != "" {
			out = append(out, trafficTarget{kind: "dns", id: s.Route53.Record, zone: s.Route53.HostedZoneID, value: host,
				ttl: s.Route53.TTL, comment: "pgbluegreen switch-traffic: " + e.Config.Strategy + " green"})
		}
	case readersToGreenID:
		p := a.PostCutover
		secret(p.SecretID, p.SecretValueFrom)
		for _, n := range p.SSMRestore {
			v, existed := e.deletedValue(n)
			if !existed {
				continue // it did not exist before the cutover: nothing to put back
			}
			out = append(out, trafficTarget{kind: "ssm-put", id: n, value: v})
		}
		for _, v := range p.SSMPut {
			out = append(out, trafficTarget{kind: "ssm-put", id: v.Name, value: v.Value})
		}
	}
	return out
}

// deletedValue is the value traffic-to-pgbouncer recorded for a parameter
// it deleted (a placeholder until it has run), and whether there was one.
func (e *Env) deletedValue(name string) (string, bool) {
	record, _ := e.loadChanges(trafficToPgBouncerID)
	if k := findChange(record, "ssm-delete", name); k >= 0 {
		return record[k].PrevValue, record[k].Existed
	}
	return "<" + name + "'s value, as traffic-to-pgbouncer records it>", true
}

// trafficHost is green's host for a plan or a run: a placeholder in an
// offline plan before it is known.
func (e *Env) trafficHost() string {
	if _, ok := e.Value("green_endpoint"); !ok && e.Config.IsAWS() {
		return "<green_endpoint>"
	}
	return e.greenHost()
}

func (e *Env) trafficStepPlan(ctx context.Context, step string) ([]Action, error) {
	targets := e.trafficTargets(step, e.trafficHost())
	if len(targets) == 0 {
		return []Action{note(AWSTarget, "nothing configured for %s: nothing to change", step)}, nil
	}
	r, plans, err := e.planTraffic(ctx, targets)
	if err != nil {
		return nil, err
	}
	return append(trafficActions(e, r, plans),
		note(AWSTarget, "each change is recorded (%s) before it is sent; a re-run sends only what is not done; the check reads each back", trafficRecordKey(step))), nil
}

func (e *Env) trafficStepCheck(ctx context.Context, step string) (CheckResult, error) {
	targets := e.trafficTargets(step, e.greenHost())
	if len(targets) == 0 {
		return CheckResult{Done: true, Detail: "nothing configured for " + step}, nil
	}
	return e.trafficDone(ctx, targets)
}

func (e *Env) trafficStepRun(ctx context.Context, step string) error {
	targets := e.trafficTargets(step, e.greenHost())
	if len(targets) == 0 {
		e.Logf("nothing configured for %s", step)
		return nil
	}
	for _, t := range targets {
		if strings.HasPrefix(t.value, "<") {
			return e.refuse("%s cannot be put back: %s; run %s first", t.id, t.value, trafficToPgBouncerID)
		}
	}
	return e.applyTraffic(ctx, step, targets)
}

// pgbouncerMovedTraffic says whether the cutover moved the traffic itself:
// method pgbouncer, cutover done, so nothing is left to switch.
func (e *Env) pgbouncerMovedTraffic() bool {
	_, done := e.Value(CutoverDoneAtKey)
	return e.Config.Cutover.Method == "pgbouncer" && done
}

func checkSwitchTraffic(ctx context.Context, e *Env) (CheckResult, error) {
	if !e.Config.AWS.Switch.Configured() {
		if e.pgbouncerMovedTraffic() {
			return CheckResult{Done: true, Detail: "nothing configured to switch: the cutover moved the traffic through PgBouncer"}, nil
		}
		return CheckResult{Detail: "no aws.switch configured: switch traffic yourself, then skip this step with the reason"}, nil
	}
	return e.trafficDone(ctx, e.trafficTargets(switchTrafficID, e.greenHost()))
}

func runSwitchTraffic(ctx context.Context, e *Env) error { return e.switchTraffic(ctx) }

func planSwitchTraffic(ctx context.Context, e *Env) ([]Action, error) {
	if !e.Config.AWS.Switch.Configured() {
		if e.Config.Cutover.Method == "pgbouncer" {
			return []Action{note(AWSTarget, "nothing configured to switch: with cutover method pgbouncer the cutover moves the traffic, and this step is done once it has")}, nil
		}
		return []Action{{Target: Operator, Kind: "operator", Text: "no aws.switch configured: switch the application's traffic to green yourself (DNS record, secret, configuration), then skip this step with the reason"}}, nil
	}
	return e.trafficStepPlan(ctx, switchTrafficID)
}

// switchTraffic points the application at green: the secret, the SSM
// parameter (and deletions), the CNAME with a wait until every Route 53
// server answers with it, each recorded first. The cutover method's own
// steps (writes stopped, green caught up) come first; a cutover method may
// call it as its switch.
func (e *Env) switchTraffic(ctx context.Context) error {
	if !e.Config.AWS.Switch.Configured() {
		if e.pgbouncerMovedTraffic() {
			e.Logf("nothing configured to switch: the cutover moved the traffic through PgBouncer")
			return nil
		}
		return e.refuse("no aws.switch configured (secret_id, ssm_parameter, route53): switch traffic yourself, then `pgbluegreen skip switch-traffic --reason ...`")
	}
	if e.greenHost() == "" {
		return e.refuse("green's endpoint is not known: record green_endpoint or set green.conninfo's host")
	}
	if err := e.applyTraffic(ctx, switchTrafficID, e.trafficTargets(switchTrafficID, e.greenHost())); err != nil {
		return err
	}
	return e.Record("traffic_switched_at", time.Now().UTC().Format(time.RFC3339))
}
