package config

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Alerts is the `alerts:` section of the configuration: where an alert goes
// (a webhook and/or a command) and when one is due.
type Alerts struct {
	// Webhook receives each alert as a JSON POST whose "text" field is what
	// Slack shows. A webhook URL usually holds a secret (Slack's path, a
	// token in the query): the journal and the screen show it redacted.
	// WebhookEnv names an environment variable holding the URL instead,
	// which keeps it out of the file.
	Webhook    string `yaml:"webhook"`
	WebhookEnv string `yaml:"webhook_env"`
	// Command runs for each alert, without a shell: a program and its
	// arguments; the alert's JSON on its stdin, PGBG_ALERT_EVENT,
	// PGBG_ALERT_STATE and PGBG_ALERT_TEXT in its environment.
	Command []string `yaml:"command"`
	// LagBytes and LagTime: the feed in use behind by more than this (0:
	// never) for For alerts once.
	LagBytes Size     `yaml:"lag_bytes"`
	LagTime  Duration `yaml:"lag_time"`
	// For is how long a lag must last before it alerts (default 5m).
	For Duration `yaml:"for"`
	// SafeWALBytes: a slot whose server may write less than this before
	// invalidating it alerts (default 1GB; a wal_status past reserved
	// always alerts).
	SafeWALBytes Size `yaml:"safe_wal_bytes"`
	// Events limits the alerts sent to these (default: every one of
	// AlertEvents).
	Events []string `yaml:"events"`
	// SendResolved also sends an alert when an episode ends.
	SendResolved bool `yaml:"send_resolved"`
	// Retries is how many times a failed send is tried again, with a
	// doubling wait from 1 s (default 5); Timeout bounds each try (10s).
	Retries int      `yaml:"retries"`
	Timeout Duration `yaml:"timeout"`
}

// AlertEvents are the events an alert is sent for.
var AlertEvents = []string{
	"lag_bytes",           // the feed in use behind by more than lag_bytes, for `for`
	"lag_time",            // the feed in use behind by more than lag_time, for `for`
	"wal_status",          // a slot's wal_status past reserved (extended, unreserved, lost)
	"safe_wal",            // a slot's safe_wal_size below safe_wal_bytes
	"subscription_errors", // apply or sync errors counted on green
	"schema_drift",        // blue's and green's schemas differ
	"step_done",           // a step finished
	"step_failed",         // a step failed or was interrupted
	"cutover_done",        // a cutover or rollback went through
	"cutover_aborted",     // a cutover or rollback aborted or failed
	"unreachable",         // blue or green did not answer for `for`
}

// Enabled reports whether alerts go anywhere.
func (a Alerts) Enabled() bool { return a.Webhook != "" || a.WebhookEnv != "" || len(a.Command) > 0 }

// WebhookURL is the webhook's URL, from the file or the environment.
func (a Alerts) WebhookURL() string {
	if a.WebhookEnv != "" {
		return os.Getenv(a.WebhookEnv)
	}
	return a.Webhook
}

// Wants reports whether event is one to send.
func (a Alerts) Wants(event string) bool {
	if len(a.Events) == 0 {
		return true
	}
	for _, e := range a.Events {
		if e == event {
			return true
		}
	}
	return false
}

// validateAlerts returns the problems of the alerts section.
func (c *Config) validateAlerts() []string {
	a := c.Alerts
	var p []string
	if a.Webhook != "" && a.WebhookEnv != "" {
		p = append(p, "config: alerts: webhook and webhook_env are two places for one URL: keep one")
	}
	if a.Webhook != "" {
		if u, err := url.Parse(a.Webhook); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p = append(p, fmt.Sprintf("config: alerts.webhook %s is not an http(s) URL", RedactURL(a.Webhook)))
		}
	}
	if len(a.Command) > 0 && a.Command[0] == "" {
		p = append(p, "config: alerts.command: the first word is the program to run")
	}
	for _, e := range a.Events {
		known := false
		for _, k := range AlertEvents {
			known = known || e == k
		}
		if !known {
			p = append(p, fmt.Sprintf("config: alerts.events: %q is not one of %s", e, strings.Join(AlertEvents, ", ")))
		}
	}
	for key, v := range map[string]Size{"lag_bytes": a.LagBytes, "safe_wal_bytes": a.SafeWALBytes} {
		if _, err := v.Bytes(); err != nil {
			p = append(p, fmt.Sprintf("config: alerts.%s: %v", key, err))
		}
	}
	if a.Retries < 0 {
		p = append(p, "config: alerts.retries is 0 or more")
	}
	return p
}

// RedactURL keeps a URL's scheme, host and port and hides the rest, where
// webhooks keep their secret: https://hooks.slack.com/********.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "********"
	}
	out := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		out += "/********"
	}
	return out
}

// Size is a size written as a number of bytes or with a unit: 512kB,
// 100MB, 2GB (1024-based, as PostgreSQL's settings). "" is 0.
type Size string

var sizeRe = regexp.MustCompile(`^\s*([0-9]+)\s*(B|kB|KB|MB|GB|TB)?\s*$`)

// Bytes is the size in bytes.
func (s Size) Bytes() (int64, error) {
	if s == "" {
		return 0, nil
	}
	m := sizeRe.FindStringSubmatch(string(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size (e.g. 104857600, 100MB, 2GB)", string(s))
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %v", string(s), err)
	}
	shift := map[string]uint{"": 0, "B": 0, "kB": 10, "KB": 10, "MB": 20, "GB": 30, "TB": 40}[m[2]]
	return v << shift, nil
}

// bytes is Bytes for a size that validated; 0 for one that did not.
func (s Size) Int64() int64 {
	b, _ := s.Bytes()
	return b
}
