package steps

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

// The AWS section's validation and the identifiers derived from it.

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validateAWS returns the AWS section's problems, one line each, naming the key.
func (c *Config) validateAWS() []string {
	var p []string
	bad := func(format string, args ...any) { p = append(p, "config: "+fmt.Sprintf(format, args...)) }
	a := c.AWS
	if a.PollInterval.Duration < 0 {
		bad("aws.poll_interval %s must not be negative", a.PollInterval)
	}
	if a.BlueCluster != "" && a.BlueCluster == a.GreenCluster {
		bad("aws.green_cluster %q is blue's cluster; the clone needs its own identifier", a.GreenCluster)
	}
	if a.BlueInstance != "" && a.BlueInstance == a.GreenInstance {
		bad("aws.green_instance %q is blue's instance; green needs its own identifier", a.GreenInstance)
	}
	if len(a.Readers) > 0 && c.Strategy != "aurora-clone" {
		bad("aws.readers: only the aurora-clone strategy adds readers to green's cluster")
	}
	seen := map[string]bool{}
	for i, r := range a.Readers {
		switch {
		case r.ID == "":
			bad("aws.readers[%d].id is missing", i)
		case seen[r.ID]:
			bad("aws.readers[%d].id %q is used twice", i, r.ID)
		case r.ID == c.greenWriterID():
			bad("aws.readers[%d].id %q is green's writer", i, r.ID)
		}
		seen[r.ID] = true
	}
	if a.DeleteBlue && !c.isAWS() {
		bad("aws.delete_blue: only the AWS strategies delete blue; with %s the operator does it", c.Strategy)
	}
	s := a.Switch
	switch {
	case s.SecretID != "" && s.SecretValueFrom == "":
		bad("aws.switch.secret_id needs aws.switch.secret_value_from (an environment variable's name, or the ARN of the secret holding green's settings)")
	case s.SecretID == "" && s.SecretValueFrom != "":
		bad("aws.switch.secret_value_from is set but aws.switch.secret_id (the secret to update) is not")
	case s.SecretValueFrom != "" && !strings.HasPrefix(s.SecretValueFrom, "arn:") && !envName.MatchString(s.SecretValueFrom):
		bad("aws.switch.secret_value_from %q is neither an environment variable's name nor an ARN; the value itself never goes in this file", s.SecretValueFrom)
	}
	if s.SSMValue != "" && s.SSMParameter == "" {
		bad("aws.switch.ssm_value is set but aws.switch.ssm_parameter is not")
	}
	for i, name := range s.SSMDelete {
		if name == "" || name == s.SSMParameter {
			bad("aws.switch.ssm_delete[%d] %q must name another parameter than aws.switch.ssm_parameter", i, name)
		}
	}
	r := s.Route53
	if (r.HostedZoneID == "") != (r.Record == "") {
		bad("aws.switch.route53 needs both hosted_zone_id and record")
	}
	if r.TTL < 0 {
		bad("aws.switch.route53.ttl %d must be 0 (60 s) or more", r.TTL)
	}
	return p
}

// UseAWS gives the configuration the client its replication.password
// secret_arn is read with. Call it once, before the configuration is shared.
func (c *Config) UseAWS(client *aws.Client) { c.aws = client }

// greenWriterID is green's writer instance: aws.green_instance, or the
// clone's "<green_cluster>-writer" as CloneCluster names it by default.
func (c *Config) greenWriterID() string {
	if c.AWS.GreenInstance != "" {
		return c.AWS.GreenInstance
	}
	if c.AWS.GreenCluster == "" {
		return ""
	}
	return c.AWS.GreenCluster + "-writer"
}

// snapshotID is the rds-snapshot strategy's snapshot of blue. It never
// depends on the time, so a second run finds the first run's snapshot.
func (c *Config) snapshotID() string {
	if c.AWS.Snapshot != "" {
		return c.AWS.Snapshot
	}
	return c.AWS.GreenInstance + "-from-blue"
}

// finalSnapshotID is blue's snapshot taken by decommission.
func (c *Config) finalSnapshotID() string {
	if c.AWS.FinalSnapshot != "" {
		return c.AWS.FinalSnapshot
	}
	blue := c.AWS.BlueCluster
	if c.Strategy == "rds-snapshot" {
		blue = c.AWS.BlueInstance
	}
	return blue + "-final-pgbg"
}

// deletionProtection is the clone's: on unless the file turns it off.
func (a AWS) deletionProtection() bool { return a.DeletionProtection == nil || *a.DeletionProtection }
