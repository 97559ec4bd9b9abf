package steps

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

// The record-and-revert mechanism of every step that changes where the
// application finds its database (switch-traffic, and runbook 000's
// traffic-to-pgbouncer and readers-to-green): each change is recorded in
// the state with what it replaced BEFORE it is sent, marked done after,
// never sent again when AWS already holds the new value (so a secret's
// AWSPREVIOUS keeps blue's version), and put back by revertTraffic.

// trafficChange is one change, with what was there before. A secret's
// value is never recorded: its previous version ID is, and the revert
// moves AWSCURRENT back to it. An SSM parameter's previous version is (its
// history keeps the value; a SecureString's value passes through memory
// only); a deleted parameter's value is (its history is deleted with it,
// and SecureStrings are never deleted for that reason).
type trafficChange struct {
	Kind string `json:"kind"` // "secret", "ssm-put", "ssm-delete", "dns"
	ID   string `json:"id"`   // secret ID, parameter name or record name
	Zone string `json:"zone,omitempty"`
	// Existed says whether there was anything before (a parameter, a record).
	Existed     bool     `json:"existed"`
	PrevVersion string   `json:"prev_version,omitempty"`
	PrevValue   string   `json:"prev_value,omitempty"`
	PrevType    string   `json:"prev_type,omitempty"`
	PrevTTL     int64    `json:"prev_ttl,omitempty"`
	PrevValues  []string `json:"prev_values,omitempty"`
	NewVersion  string   `json:"new_version,omitempty"`
	Done        bool     `json:"done"`
	Reverted    bool     `json:"reverted,omitempty"`
}

func (c trafficChange) what() string {
	switch c.Kind {
	case "secret":
		return "secret " + c.ID
	case "ssm-put":
		return "parameter " + c.ID
	case "ssm-delete":
		return "parameter " + c.ID + " deleted"
	}
	return "DNS record " + c.ID
}

// trafficTarget is one change a step is configured to make.
type trafficTarget struct {
	kind string // "secret", "ssm-put", "ssm-delete", "dns"
	id   string
	// value: an SSM parameter's or a DNS record's new value; for a secret,
	// from (an environment variable or a secret's ARN) gives it at run time.
	value, from, typ string
	zone             string
	ttl              int64
	comment          string
}

// trafficRecordKey is the state value holding a step's changes.
func trafficRecordKey(step string) string { return strings.ReplaceAll(step, "-", "_") + "_changes" }

// loadChanges reads a step's recorded changes.
func (e *Env) loadChanges(step string) ([]trafficChange, error) {
	v, ok := e.Value(trafficRecordKey(step))
	if !ok {
		return nil, nil
	}
	var out []trafficChange
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		return nil, fmt.Errorf("recorded %s: %w", trafficRecordKey(step), err)
	}
	return out, nil
}

func (e *Env) saveChanges(step string, cs []trafficChange) error {
	b, err := json.Marshal(cs)
	if err != nil {
		return err
	}
	return e.Record(trafficRecordKey(step), string(b))
}

// findChange returns the index of a live (not reverted) change of kind and id.
func findChange(cs []trafficChange, kind, id string) int {
	for i, c := range cs {
		if c.Kind == kind && c.ID == id && !c.Reverted {
			return i
		}
	}
	return -1
}

// secretValue is a secret's new value: from an environment variable, or
// read from the secret whose ARN is given. It is never logged.
func (e *Env) secretValue(ctx context.Context, r *awsReads, from string) (string, error) {
	if strings.HasPrefix(from, "arn:") {
		res, err := r.secret(ctx, aws.GetSecretParams{SecretID: from}, "the new value (never shown, never journaled)")
		return res.Value, err
	}
	r.note("the new value comes from $%s; it is never shown or journaled", from)
	if !r.live() {
		return "", nil
	}
	v := os.Getenv(from)
	if v == "" {
		return "", fmt.Errorf("environment variable %s is empty; export the new settings in it", from)
	}
	return v, nil
}

// trafficPlan is one target as it stands: the reads made, the calls that
// will change it (none when AWS holds the new value already), and the
// change recorded before them.
type trafficPlan struct {
	target trafficTarget
	calls  []aws.PlannedCall
	change trafficChange
	at     bool // already at the new value
	// run sends the calls; waitChange is a DNS change to wait for.
	run func(ctx context.Context, c *aws.Client) (newVersion string, err error)
}

// planTarget reads one target's current state and builds its change.
func (e *Env) planTarget(ctx context.Context, r *awsReads, t trafficTarget) (trafficPlan, error) {
	p := trafficPlan{target: t, change: trafficChange{Kind: t.kind, ID: t.id, Zone: t.zone}}
	switch t.kind {
	case "secret":
		value, err := e.secretValue(ctx, r, t.from)
		if err != nil {
			return p, err
		}
		cur, err := r.secret(ctx, aws.GetSecretParams{SecretID: t.id}, "its current version: recorded before the change, put back by a rollback; nothing is sent if it holds the new value")
		if err != nil {
			return p, err
		}
		p.at = r.live() && cur.Value == value
		p.change.Existed, p.change.PrevVersion = true, cur.VersionID
		put := aws.PutSecretParams{SecretID: t.id, Value: value}
		p.calls = put.Plan()
		p.run = func(ctx context.Context, c *aws.Client) (string, error) {
			res, err := c.PutSecret(ctx, put)
			return res.VersionID, err
		}
	case "ssm-put":
		cur, found, err := r.parameter(ctx, aws.GetParameterParams{Name: t.id}, "its current version: recorded before the change, put back by a rollback")
		if err != nil {
			return p, err
		}
		p.at = r.live() && found && cur.Value == t.value
		p.change.Existed = found
		if found {
			p.change.PrevVersion, p.change.PrevType = strconv.FormatInt(cur.Version, 10), cur.Type
			if cur.Type != "SecureString" {
				p.change.PrevValue = cur.Value
			}
		}
		put := aws.PutParameterParams{Name: t.id, Value: t.value, Type: t.typ}
		p.calls = put.Plan()
		p.run = func(ctx context.Context, c *aws.Client) (string, error) {
			res, err := c.PutParameter(ctx, put)
			return strconv.FormatInt(res.Version, 10), err
		}
	case "ssm-delete":
		cur, found, err := r.parameter(ctx, aws.GetParameterParams{Name: t.id}, "its value and type: recorded before the deletion, put back by a rollback")
		if err != nil {
			return p, err
		}
		if found && cur.Type == "SecureString" {
			return p, e.refuse("parameter %s is a SecureString: deleting it would lose its value, which pgbluegreen never stores; delete it yourself, or leave it out of ssm_delete", t.id)
		}
		p.at = r.live() && !found
		p.change.Existed, p.change.PrevValue, p.change.PrevType = found, cur.Value, cur.Type
		if found {
			p.change.PrevVersion = strconv.FormatInt(cur.Version, 10)
		}
		del := aws.DeleteParameterParams{Name: t.id}
		p.calls = del.Plan()
		p.run = func(ctx context.Context, c *aws.Client) (string, error) {
			_, err := c.DeleteParameter(ctx, del)
			return "", err
		}
	case "dns":
		cur, err := r.record(ctx, aws.LookupRecordParams{HostedZoneID: t.zone, Name: t.id}, "the record as it is: recorded before the change, put back by a rollback")
		if err != nil {
			return p, err
		}
		p.at = r.live() && cur.Found && len(cur.Values) == 1 && aws.SameName(cur.Values[0], t.value) && cur.TTL == aws.RecordTTL(t.ttl)
		p.change.Existed, p.change.PrevType, p.change.PrevTTL, p.change.PrevValues = cur.Found, cur.Type, cur.TTL, cur.Values
		up := aws.ChangeRecordParams{HostedZoneID: t.zone, Name: t.id, Values: []string{t.value}, TTL: t.ttl, Comment: t.comment}
		p.calls = append(up.Plan(), aws.WaitChangeParams{ChangeID: "<the change>"}.Plan()...)
		p.run = func(ctx context.Context, c *aws.Client) (string, error) {
			res, err := c.ChangeRecord(ctx, up)
			if err != nil {
				return "", err
			}
			e.Logf("DNS %s -> %s (change %s %s)", t.id, t.value, res.ChangeID, res.Status)
			return "", c.WaitChange(ctx, aws.WaitChangeParams{ChangeID: res.ChangeID, Progress: e.progress("DNS change " + res.ChangeID)})
		}
	default:
		return p, fmt.Errorf("unknown traffic change %q", t.kind)
	}
	return p, nil
}

// planTraffic reads every target of a step.
func (e *Env) planTraffic(ctx context.Context, targets []trafficTarget) (*awsReads, []trafficPlan, error) {
	r := e.awsReads()
	var out []trafficPlan
	for _, t := range targets {
		p, err := e.planTarget(ctx, r, t)
		if err != nil {
			return r, out, err
		}
		out = append(out, p)
	}
	return r, out, nil
}

// trafficActions renders a step's plan: reads, then each target's calls,
// or why none is sent.
func trafficActions(e *Env, r *awsReads, plans []trafficPlan) []Action {
	out := r.acts
	for _, p := range plans {
		if p.at {
			out = append(out, note(AWSTarget, "%s holds the new value already: nothing is sent (and its previous version stays the one a rollback puts back)", p.change.what()))
			continue
		}
		for i, c := range p.calls {
			text := c.String()
			if i == 0 {
				text += "  -- recorded first: " + p.change.before()
			} else if strings.HasPrefix(c.Call, "route53 GetChange") {
				text += "  -- every " + e.Config.AWS.PollInterval.String() + " until INSYNC"
			}
			out = append(out, Action{Target: AWSTarget, Kind: "api", Text: text})
		}
	}
	return out
}

// before says what the record keeps of a change.
func (c trafficChange) before() string {
	switch {
	case c.Kind == "secret":
		return "previous version " + c.PrevVersion
	case !c.Existed:
		return "it did not exist"
	case c.Kind == "dns":
		return fmt.Sprintf("%s TTL %d %s", c.PrevType, c.PrevTTL, strings.Join(c.PrevValues, ","))
	case c.Kind == "ssm-delete":
		return "its value and type (" + c.PrevType + ")"
	}
	return "version " + c.PrevVersion
}

// applyTraffic makes a step's changes, recording each before it is sent.
// A failure says what was done and what was not.
func (e *Env) applyTraffic(ctx context.Context, step string, targets []trafficTarget) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	_, plans, err := e.planTraffic(ctx, targets)
	if err != nil {
		return err
	}
	record, err := e.loadChanges(step)
	if err != nil {
		return err
	}
	var done []string
	for i, p := range plans {
		what := p.change.what()
		k := findChange(record, p.change.Kind, p.change.ID)
		if p.at {
			if k >= 0 && !record[k].Done {
				record[k].Done = true // sent before a crash, its answer lost
				if err := e.saveChanges(step, record); err != nil {
					return err
				}
			}
			e.Logf("%s holds the new value already: not sent again", what)
			done = append(done, what)
			continue
		}
		// The first recorded previous value is the one to put back: a
		// re-run after a partial switch keeps it.
		if k < 0 {
			record = append(record, p.change)
			k = len(record) - 1
		}
		record[k].Done = false
		if err := e.saveChanges(step, record); err != nil {
			return err
		}
		nv, err := p.run(ctx, c)
		if err != nil {
			return e.halfDone(step, done, plans[i:], err)
		}
		record[k].Done, record[k].NewVersion = true, nv
		if err := e.saveChanges(step, record); err != nil {
			return err
		}
		e.Logf("%s changed (before: %s)", what, record[k].before())
		done = append(done, what)
	}
	return nil
}

// halfDone is the error of a traffic step that stopped part of the way.
func (e *Env) halfDone(step string, done []string, left []trafficPlan, err error) error {
	var not []string
	for _, p := range left {
		not = append(not, p.change.what())
	}
	if len(done) == 0 {
		return fmt.Errorf("nothing changed: %s failed (%w); %s: run %s again once fixed", not[0], err, strings.Join(not, ", "), step)
	}
	return fmt.Errorf("%s stopped half-way: done: %s; NOT done: %s, failed with: %w; run %s again to finish (what is done is not sent again), or roll back to put back what was done",
		step, strings.Join(done, ", "), strings.Join(not, ", "), err, step)
}

// trafficDone reports which targets hold their new value, for a check.
func (e *Env) trafficDone(ctx context.Context, targets []trafficTarget) (CheckResult, error) {
	if _, err := e.needAWS(); err != nil {
		return CheckResult{}, err
	}
	_, plans, err := e.planTraffic(ctx, targets)
	if err != nil {
		return CheckResult{}, err
	}
	var todo, done []string
	for _, p := range plans {
		if p.at {
			done = append(done, p.change.what())
		} else {
			todo = append(todo, p.change.what())
		}
	}
	if len(todo) > 0 {
		return CheckResult{Detail: "not changed yet: " + strings.Join(todo, ", ")}, nil
	}
	return CheckResult{Done: true, Detail: "changed: " + strings.Join(done, ", ")}, nil
}
