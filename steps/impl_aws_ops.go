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

// The operator-side AWS steps: readers for green (optional), the traffic
// switch (optional, any strategy), and decommission (a checklist; blue is
// deleted only on request, always with a final snapshot).

func init() {
	implementations["create-green-readers"] = func(s *Step) { s.Check, s.Run = checkGreenReaders, runGreenReaders }
	implementations["switch-traffic"] = func(s *Step) { s.Check, s.Run = checkSwitchTraffic, runSwitchTraffic }
	implementations["decommission"] = func(s *Step) { s.Check, s.Run = checkDecommission, runDecommission }
}

// readerParams are the readers to add; an empty class is the writer's
// (writerClass, a placeholder in a plan).
func (c *Config) readerParams(writerClass string) []aws.CreateClusterInstanceParams {
	out := make([]aws.CreateClusterInstanceParams, len(c.AWS.Readers))
	for i, r := range c.AWS.Readers {
		out[i] = aws.CreateClusterInstanceParams{ClusterID: c.AWS.GreenCluster, InstanceID: r.ID,
			Class: or(r.Class, or(c.AWS.GreenInstanceClass, writerClass)), ParameterGroup: c.AWS.InstanceParameterGroup}
	}
	return out
}

func checkGreenReaders(ctx context.Context, e *Env) (CheckResult, error) {
	c, err := e.needAWS()
	if err != nil {
		return CheckResult{}, err
	}
	if len(e.Config.AWS.Readers) == 0 {
		return CheckResult{Done: true, Detail: "no aws.readers configured: green keeps its writer only"}, nil
	}
	var ready []string
	for _, r := range e.Config.AWS.Readers {
		in, found, err := c.FindInstance(ctx, aws.DescribeInstanceParams{InstanceID: r.ID})
		if err != nil {
			return CheckResult{}, err
		}
		if !found || in.Status != "available" {
			return CheckResult{Detail: fmt.Sprintf("reader %s is not available yet", r.ID)}, nil
		}
		ready = append(ready, in.ID+" ("+in.Class+")")
	}
	return CheckResult{Done: true, Detail: "readers available: " + strings.Join(ready, ", ")}, nil
}

func runGreenReaders(ctx context.Context, e *Env) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	if len(e.Config.AWS.Readers) == 0 {
		e.Logf("no aws.readers configured: nothing to add")
		return nil
	}
	w, err := c.DescribeInstance(ctx, aws.DescribeInstanceParams{InstanceID: e.Config.greenWriterID()})
	if err != nil {
		return err
	}
	params := e.Config.readerParams(w.Class)
	for _, p := range params {
		res, err := c.CreateClusterInstance(ctx, p)
		if err != nil {
			return err
		}
		e.Logf("reader %s (%s) %s", p.InstanceID, p.Class, createdOrFound(res.Created))
	}
	for _, p := range params {
		if _, err := c.WaitInstanceAvailable(ctx, e.wait(p.InstanceID, "", "reader "+p.InstanceID)); err != nil {
			return err
		}
	}
	return nil
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
		return e.refusal("no aws.switch configured (secret_id, ssm_parameter, route53): switch traffic yourself, then `pgbluegreen skip switch-traffic --reason ...`")
	}
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	host := e.greenHost()
	if host == "" {
		return e.refusal("green's endpoint is not known: record green_endpoint or set green.conninfo's host")
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

// decommissionChecklist is what the operator does by hand, in 000's order.
func decommissionChecklist(e *Env) []string {
	out := []string{
		"rectify your infrastructure code (CDK, Terraform) with green as the database, without replacing it",
		"shut down PgBouncer and the jumpbox made for the run, delete their security groups and the rules added to the database's",
		"update the dashboards and alarms to green",
		"optionally turn logical replication off on green (a reboot) once no reverse replication is needed",
	}
	if !e.Config.isAWS() {
		out = append([]string{"take a final backup of blue (pg_basebackup or your backup tool), then stop and remove blue"}, out...)
	} else if !e.Config.AWS.DeleteBlue {
		out = append([]string{"delete blue yourself once the application has run well on green (its final snapshot is " + e.Config.finalSnapshotID() + "); aws.delete_blue: true makes this step delete it instead"}, out...)
	}
	return out
}

func checkDecommission(ctx context.Context, e *Env) (CheckResult, error) {
	if v, ok := e.Value("decommission_confirmed"); ok {
		return CheckResult{Done: true, Detail: v}, nil
	}
	return CheckResult{Detail: "not confirmed yet"}, nil
}

// runDecommission: AWS strategies take blue's final snapshot and wait for
// it; with aws.delete_blue they delete blue instead, RDS taking the final
// snapshot as part of the deletion (the aws package has no way to skip it).
// Either way the operator's confirmation (the step is destructive) and the
// checklist are recorded.
func runDecommission(ctx context.Context, e *Env) error {
	if e.Config.isAWS() {
		if err := e.awsDecommission(ctx); err != nil {
			return err
		}
	}
	for _, line := range decommissionChecklist(e) {
		e.Logf("[operator] %s", line)
	}
	return e.Record("decommission_confirmed", "confirmed by the operator at "+time.Now().UTC().Format(time.RFC3339))
}

func (e *Env) awsDecommission(ctx context.Context) error {
	c, err := e.needAWS()
	if err != nil {
		return err
	}
	a, final := e.Config.AWS, e.Config.finalSnapshotID()
	aurora := e.Config.Strategy == "aurora-clone"
	if a.DeleteBlue {
		if aurora {
			res, err := c.DeleteCluster(ctx, aws.DeleteClusterParams{ClusterID: a.BlueCluster, FinalSnapshotID: final})
			if err != nil {
				return err
			}
			e.Logf("deleting blue cluster %s (instances %s); final snapshot %s", a.BlueCluster, strings.Join(res.DeletedInstances, ", "), final)
		} else {
			if _, err := c.DeleteInstance(ctx, aws.DeleteInstanceParams{InstanceID: a.BlueInstance, FinalSnapshotID: final}); err != nil {
				return err
			}
			e.Logf("deleting blue instance %s; final snapshot %s", a.BlueInstance, final)
		}
		return e.Record("final_snapshot_id", final)
	}
	if aurora {
		res, err := c.CreateClusterSnapshot(ctx, aws.CreateClusterSnapshotParams{ClusterID: a.BlueCluster, SnapshotID: final})
		if err != nil {
			return err
		}
		e.Logf("final snapshot %s of blue cluster %s %s", final, a.BlueCluster, createdOrFound(res.Created))
		if _, err := c.WaitClusterSnapshotAvailable(ctx, e.wait(final, "", "final snapshot "+final)); err != nil {
			return err
		}
	} else {
		res, err := c.CreateSnapshot(ctx, aws.CreateSnapshotParams{InstanceID: a.BlueInstance, SnapshotID: final})
		if err != nil {
			return err
		}
		e.Logf("final snapshot %s of blue instance %s %s", final, a.BlueInstance, createdOrFound(res.Created))
		if _, err := c.WaitSnapshotAvailable(ctx, e.wait(final, "", "final snapshot "+final)); err != nil {
			return err
		}
	}
	e.Logf("blue is not deleted: aws.delete_blue is off")
	return e.Record("final_snapshot_id", final)
}
