package steps

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgbluegreen/pgbluegreen/aws"
)

// switch-traffic: the application's secret, SSM parameter and DNS record
// pointed at green.

func switchTraffic() *Step {
	return &Step{ID: "switch-traffic", Phase: PhaseCutover, Target: AWSTarget, Title: "Switch traffic to green (optional)",
		Why:    "The application finds its database in a secret, an SSM parameter or a DNS name: point each configured one at green.",
		Source: "000, 002", Destructive: true, Optional: true, Records: []string{"traffic_switched_at"},
		Plan:  offline(switchTrafficPlan),
		Check: checkSwitchTraffic,
		Run:   runSwitchTraffic,
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

// switchValue is the secret's new value, from an environment variable or a
// secret holding green's settings. It is never logged.
func (e *Env) switchValue(ctx context.Context, c *aws.Client) (string, error) {
	from := e.Config.AWS.Switch.SecretValueFrom
	if strings.HasPrefix(from, "arn:") {
		res, err := c.GetSecret(ctx, aws.GetSecretParams{SecretID: from})
		if err != nil {
			return "", err
		}
		return res.Value, nil
	}
	v := os.Getenv(from)
	if v == "" {
		return "", fmt.Errorf("aws.switch.secret_value_from: environment variable %s is empty; export green's connection settings in it", from)
	}
	return v, nil
}

// trafficPlan is what switch-traffic sends, each part only when configured.
type trafficPlan struct {
	secret  *aws.PutSecretParams
	param   *aws.PutParameterParams
	deletes []aws.DeleteParameterParams
	cname   *aws.UpsertCNAMEParams
}

// trafficCalls builds the calls; secretValue is "" in a plan (shown as
// "(secret)" anyway) and host a placeholder when unknown.
func (e *Env) trafficCalls(secretValue, host string) trafficPlan {
	s := e.Config.AWS.Switch
	var p trafficPlan
	if s.SecretID != "" {
		p.secret = &aws.PutSecretParams{SecretID: s.SecretID, Value: secretValue}
	}
	if s.SSMParameter != "" {
		p.param = &aws.PutParameterParams{Name: s.SSMParameter, Value: or(s.SSMValue, host)}
	}
	for _, name := range s.SSMDelete {
		p.deletes = append(p.deletes, aws.DeleteParameterParams{Name: name})
	}
	if s.Route53.Record != "" {
		p.cname = &aws.UpsertCNAMEParams{HostedZoneID: s.Route53.HostedZoneID, Name: s.Route53.Record, Target: host,
			TTL: s.Route53.TTL, Comment: "pgbluegreen switch-traffic: " + e.Config.Strategy + " green"}
	}
	return p
}

func checkSwitchTraffic(ctx context.Context, e *Env) (CheckResult, error) {
	if !e.Config.AWS.Switch.configured() {
		return CheckResult{Detail: "no aws.switch configured: switch traffic yourself, then skip this step with the reason"}, nil
	}
	c, err := e.needAWS()
	if err != nil {
		return CheckResult{}, err
	}
	host := e.greenHost()
	var todo, done []string
	p := e.trafficCalls("", host)
	if p.secret != nil {
		want, err := e.switchValue(ctx, c)
		if err != nil {
			return CheckResult{}, err
		}
		cur, err := c.GetSecret(ctx, aws.GetSecretParams{SecretID: p.secret.SecretID})
		if err != nil {
			return CheckResult{}, err
		}
		sortInto(&todo, &done, cur.Value == want, "secret "+p.secret.SecretID)
	}
	if p.param != nil {
		cur, err := c.GetParameter(ctx, aws.GetParameterParams{Name: p.param.Name})
		if err != nil && aws.KindOf(err) != aws.KindNotFound {
			return CheckResult{}, err
		}
		sortInto(&todo, &done, err == nil && cur.Value == p.param.Value, "parameter "+p.param.Name)
	}
	for _, d := range p.deletes {
		_, err := c.GetParameter(ctx, aws.GetParameterParams{Name: d.Name})
		if err != nil && aws.KindOf(err) != aws.KindNotFound {
			return CheckResult{}, err
		}
		sortInto(&todo, &done, err != nil, "parameter "+d.Name+" deleted")
	}
	if p.cname != nil {
		rec, err := c.LookupRecord(ctx, aws.LookupRecordParams{HostedZoneID: p.cname.HostedZoneID, Name: p.cname.Name})
		if err != nil {
			return CheckResult{}, err
		}
		sortInto(&todo, &done, rec.Found && len(rec.Values) == 1 && strings.TrimSuffix(rec.Values[0], ".") == strings.TrimSuffix(host, "."), "CNAME "+p.cname.Name+" -> "+host)
	}
	if len(todo) > 0 {
		return CheckResult{Detail: "not pointing at green yet: " + strings.Join(todo, ", ")}, nil
	}
	return CheckResult{Done: true, Detail: "pointing at green: " + strings.Join(done, ", ")}, nil
}

func sortInto(todo, done *[]string, ok bool, what string) {
	if ok {
		*done = append(*done, what)
	} else {
		*todo = append(*todo, what)
	}
}

func runSwitchTraffic(ctx context.Context, e *Env) error { return e.switchTraffic(ctx) }

// switchTraffic points the application at green: the secret, the SSM
// parameter (and the deletions, 000's reader and proxy settings), the CNAME
// with a wait until every Route 53 server answers with it. The cutover
// method's own steps (writes stopped, green caught up) come first; a
// cutover method may call it as its switch.
func (e *Env) switchTraffic(ctx context.Context) error {
	if !e.Config.AWS.Switch.configured() {
		return e.refuse("no aws.switch configured (secret_id, ssm_parameter, route53): switch traffic yourself, then `pgbluegreen skip switch-traffic --reason ...`")
	}
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	host := e.greenHost()
	if host == "" {
		return e.refuse("green's endpoint is not known: record green_endpoint or set green.conninfo's host")
	}
	value := ""
	if e.Config.AWS.Switch.SecretID != "" {
		if value, err = e.switchValue(ctx, c); err != nil {
			return err
		}
	}
	p := e.trafficCalls(value, host)
	if p.secret != nil {
		res, err := c.PutSecret(ctx, *p.secret)
		if err != nil {
			return err
		}
		e.Logf("secret %s: new version %s", p.secret.SecretID, res.VersionID)
	}
	if p.param != nil {
		res, err := c.PutParameter(ctx, *p.param)
		if err != nil {
			return err
		}
		e.Logf("parameter %s = %s (version %d)", p.param.Name, p.param.Value, res.Version)
	}
	for _, d := range p.deletes {
		res, err := c.DeleteParameter(ctx, d)
		if err != nil {
			return err
		}
		if res.Deleted {
			e.Logf("parameter %s deleted", d.Name)
		} else {
			e.Logf("parameter %s did not exist", d.Name)
		}
	}
	if p.cname != nil {
		res, err := c.UpsertCNAME(ctx, *p.cname)
		if err != nil {
			return err
		}
		e.Logf("CNAME %s -> %s (change %s %s)", p.cname.Name, host, res.ChangeID, res.Status)
		if err := c.WaitChange(ctx, aws.WaitChangeParams{ChangeID: res.ChangeID, Progress: e.progress("DNS change " + res.ChangeID)}); err != nil {
			return err
		}
	}
	return e.Record("traffic_switched_at", time.Now().UTC().Format(time.RFC3339))
}

func switchTrafficPlan(e *Env) []Action {
	if !e.Config.AWS.Switch.configured() {
		return []Action{{Target: Operator, Kind: "operator", Text: "no aws.switch configured: switch the application's traffic to green yourself (DNS record, secret, configuration), then skip this step with the reason"}}
	}
	host := e.greenHost()
	if _, ok := e.Value("green_endpoint"); !ok && e.Config.isAWS() {
		host = "<green_endpoint>"
	}
	p := e.trafficCalls("", host)
	var out []Action
	if p.secret != nil {
		out = append(out, note(AWSTarget, "the secret's new value comes from %s; it is never shown or journaled", e.Config.AWS.Switch.SecretValueFrom))
		out = append(out, planned(p.secret.Plan())...)
	}
	if p.param != nil {
		out = append(out, planned(p.param.Plan())...)
	}
	for _, d := range p.deletes {
		out = append(out, planned(d.Plan())...)
	}
	if p.cname != nil {
		out = append(out, planned(p.cname.Plan())...)
		out = append(out, api("route53 GetChange Id=<the change>  -- every %s until INSYNC", e.Config.AWS.PollInterval))
	}
	return append(out, note(AWSTarget, "the check reads each back (secret, parameters, record): done when all point at green"))
}
