package config

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
		case r.ID == c.GreenWriterID():
			bad("aws.readers[%d].id %q is green's writer", i, r.ID)
		}
		seen[r.ID] = true
	}
	if a.DeleteBlue && !c.IsAWS() {
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
	p = append(p, validateTraffic("aws.pre_cutover", a.PreCutover, a.PreCutover)...)
	p = append(p, validateTraffic("aws.post_cutover", a.PostCutover, a.PreCutover)...)
	if len(a.PreCutover.SSMRestore) > 0 {
		bad("aws.pre_cutover.ssm_restore: parameters are put back after the cutover, in aws.post_cutover")
	}
	if (a.PreCutover.Configured() || a.PostCutover.Configured()) && !c.IsAWS() {
		bad("aws.pre_cutover and aws.post_cutover are steps of the AWS strategies; with %s change the application's settings yourself", c.Strategy)
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

// GreenWriterID is green's writer instance: aws.green_instance, or the
// clone's "<green_cluster>-writer" as CloneCluster names it by default.
func (c *Config) GreenWriterID() string {
	if c.AWS.GreenInstance != "" {
		return c.AWS.GreenInstance
	}
	if c.AWS.GreenCluster == "" {
		return ""
	}
	return c.AWS.GreenCluster + "-writer"
}

// SnapshotID is the rds-snapshot strategy's snapshot of blue. It never
// depends on the time, so a second run finds the first run's snapshot.
func (c *Config) SnapshotID() string {
	if c.AWS.Snapshot != "" {
		return c.AWS.Snapshot
	}
	return c.AWS.GreenInstance + "-from-blue"
}

// FinalSnapshotID is blue's snapshot taken by decommission.
func (c *Config) FinalSnapshotID() string {
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
func (a AWS) DeletionProtectionOn() bool { return a.DeletionProtection == nil || *a.DeletionProtection }

// TrafficChanges are runbook 000's changes of where the application finds
// its database before the cutover (its proxy and reader settings removed,
// its secret pointed at PgBouncer) and after it (green's readers given to
// it). Each part is used only when set; every change is recorded with what
// it replaced, so a rollback can put it back.
type TrafficChanges struct {
	// SecretID is a secret given a new value from SecretValueFrom (an
	// environment variable's name, or the ARN of a secret to copy: 000's
	// "DB secret w/ pgbouncer", "reader DB secret w/ green").
	SecretID        string `yaml:"secret_id"`
	SecretValueFrom string `yaml:"secret_value_from"`
	// SSMDelete are SSM parameters deleted (000: the RDS Proxy endpoint,
	// the reader settings); their values are kept in the state (never a
	// SecureString's: those are refused) so they can be put back.
	SSMDelete []string `yaml:"ssm_delete"`
	// SSMRestore are parameters pre_cutover deleted, put back after the
	// cutover with the value they had (000: ReaderDatabaseSecrets).
	SSMRestore []string `yaml:"ssm_restore"`
	// SSMPut are parameters written (000:
	// readonlyDatabase.disableConnectionConfiguration = true).
	SSMPut []SSMValue `yaml:"ssm_put"`
}

// SSMValue is one SSM parameter and the value it gets.
type SSMValue struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

func (t TrafficChanges) Configured() bool {
	return t.SecretID != "" || len(t.SSMDelete) > 0 || len(t.SSMRestore) > 0 || len(t.SSMPut) > 0
}

// validateTraffic returns the problems of one traffic section.
func validateTraffic(key string, t TrafficChanges, pre TrafficChanges) []string {
	var p []string
	bad := func(format string, args ...any) { p = append(p, "config: "+fmt.Sprintf(format, args...)) }
	switch {
	case t.SecretID != "" && t.SecretValueFrom == "":
		bad("%s.secret_id needs %s.secret_value_from (an environment variable's name, or the ARN of the secret holding the new value)", key, key)
	case t.SecretID == "" && t.SecretValueFrom != "":
		bad("%s.secret_value_from is set but %s.secret_id (the secret to update) is not", key, key)
	case t.SecretValueFrom != "" && !strings.HasPrefix(t.SecretValueFrom, "arn:") && !envName.MatchString(t.SecretValueFrom):
		bad("%s.secret_value_from %q is neither an environment variable's name nor an ARN; the value itself never goes in this file", key, t.SecretValueFrom)
	}
	for i, n := range t.SSMRestore {
		found := false
		for _, d := range pre.SSMDelete {
			found = found || d == n
		}
		if !found {
			bad("%s.ssm_restore[%d] %q is not among aws.pre_cutover.ssm_delete: only what pre_cutover deleted can be put back", key, i, n)
		}
	}
	for i, v := range t.SSMPut {
		if v.Name == "" {
			bad("%s.ssm_put[%d].name is missing", key, i)
		}
	}
	return p
}
