package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// readDrift compares blue's and green's schemas for `status`, through
// read-only sessions of its own, bounded; nil when a server cannot be
// read (status still answers).
func readDrift(cfg *config.Config) *monitor.Drift {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Connect.Duration+cfg.Timeouts.Statement.Duration)
	defer cancel()
	blue, green, closePools, err := readOnlyPools(cfg)
	if err != nil {
		return &monitor.Drift{At: time.Now().UTC(), Why: state.Redact(err.Error()), Differences: []string{}}
	}
	defer closePools()
	d, err := monitor.ReadDrift(ctx, cfg, blue, green)
	if err != nil {
		d.Why = "not compared: " + state.Redact(err.Error())
	}
	return &d
}

// writeDriftText is status's line about schema drift.
func writeDriftText(w io.Writer, d *monitor.Drift) {
	switch {
	case d == nil:
	case d.Drifted():
		fmt.Fprintf(w, "⚠ SCHEMA DRIFT: %d object(s) differ; the cutover refuses until they match:\n", len(d.Differences))
		for _, l := range d.Differences {
			fmt.Fprintf(w, "  %s\n", l)
		}
	case d.Compared:
		fmt.Fprintf(w, "schemas: blue and green match (%d objects in %v)\n", d.Objects, d.Schemas)
	case d.Why != "":
		fmt.Fprintf(w, "schemas: %s\n", d.Why)
	}
	switch {
	case d == nil:
	case d.RecorderError != "":
		fmt.Fprintf(w, "DDL recorded on blue: not read: %s\n", d.RecorderError)
	case d.Recording && len(d.Recorded) == 0:
		fmt.Fprintf(w, "DDL recorded on blue: none yet (record-ddl)\n")
	case d.Recording:
		fmt.Fprintf(w, "DDL recorded on blue, newest first (record-ddl):\n")
		for _, l := range d.RecordedLines(time.Local) {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

// alertsLock lets one process send the alerts of a run: the driving screen
// or `watch --alerts`, never both (each alert would arrive twice). It is
// a flock on a file beside the state file, released when the process ends.
type alertsLock struct{ f *os.File }

// takeAlertsLock takes the lock without waiting; when another process
// holds it, it returns nil and that process's description.
func takeAlertsLock(statePath, me string) (*alertsLock, string) {
	path := strings.TrimSuffix(statePath, filepath.Ext(statePath)) + ".alerts.lock"
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, "unknown (" + err.Error() + ")"
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		return nil, strings.TrimSpace(string(b))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%s (pid %d) since %s\n", me, os.Getpid(), time.Now().Format("15:04:05"))), 0)
	return &alertsLock{f: f}, ""
}

func (l *alertsLock) release() {
	if l != nil {
		_ = l.f.Truncate(0)
		_ = l.f.Close()
	}
}

// alertsDest says where alerts go, secrets redacted.
func alertsDest(a config.Alerts) string {
	var d []string
	if u := a.WebhookURL(); u != "" {
		d = append(d, "webhook "+config.RedactURL(u))
	}
	if len(a.Command) > 0 {
		d = append(d, "command "+a.Command[0])
	}
	return strings.Join(d, " and ")
}

// runWatch is `watch --alerts`: headless, for days, with no terminal. It
// polls what the screen polls (lag, subscriptions, where the traffic is,
// the schemas, the state file of the instance that drives) and sends the
// configured alerts. Another process sending them (the driving screen)
// leaves it on standby until that one ends. It reads only, and survives
// SIGHUP; SIGINT or SIGTERM stop it after the alerts in flight are sent.
func runWatch(g globals, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("watch", "watch --alerts", stderr)
	alerts := fs.Bool("alerts", false, "send the alerts configured in the config's alerts: section")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !*alerts {
		fmt.Fprintln(stderr, "pgbluegreen: watch needs --alerts (a second person's read-only screen is `pgbluegreen --watch`)")
		return exitUsage
	}
	cfg, ok := loadConfig(g, stderr)
	if !ok {
		return exitUsage
	}
	if !cfg.Alerts.Enabled() {
		fmt.Fprintln(stderr, "pgbluegreen: alerts: has no webhook, webhook_env or command: nothing to send alerts to (see pgbluegreen.example.yaml)")
		return exitUsage
	}
	if cfg.Alerts.WebhookEnv != "" && cfg.Alerts.WebhookURL() == "" && len(cfg.Alerts.Command) == 0 {
		fmt.Fprintf(stderr, "pgbluegreen: alerts.webhook_env: %s is empty; export it first\n", cfg.Alerts.WebhookEnv)
		return exitUsage
	}
	store, j, ok := openStateJournal(g, true, stderr)
	if !ok {
		return exitFailed
	}
	defer store.Close()
	defer j.Close()
	blue, green, closePools, ok := openReadOnlyPools(cfg, stderr)
	if !ok {
		return exitUsage
	}
	defer closePools()
	// No SIGHUP: a terminal closing must not end a watch meant to outlive it.
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stdout, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	mon := monitor.NewMonitor(blue, green, cfg)
	logf("watching %s; alerts to %s; lag over %s or %s for %s; Ctrl+C or SIGTERM stops", g.state, alertsDest(cfg.Alerts),
		orOff(cfg.Alerts.LagBytes != "" && cfg.Alerts.LagBytes != "0", string(cfg.Alerts.LagBytes)), orOff(cfg.Alerts.LagTime.Duration > 0, cfg.Alerts.LagTime.String()), cfg.Alerts.For)
	var lock *alertsLock
	defer func() { lock.release() }()
	var a *monitor.Alerter
	defer func() { a.Close() }()
	feed := "blue -> green"
	tick := time.NewTicker(cfg.Lag.Interval.Duration)
	defer tick.Stop()
	var lastSlow time.Time
	standby := ""
	for {
		if a == nil {
			var holder string
			if lock, holder = takeAlertsLock(g.state, "pgbluegreen watch --alerts"); lock == nil {
				if holder != standby {
					logf("standby: alerts are sent by %s; this watch takes over when it ends", holder)
					standby = holder
				}
			} else {
				if standby != "" {
					logf("taking over the alerts from %s", standby)
				}
				a = monitor.NewAlerter(monitor.AlerterParams{Config: cfg, Journal: j, Logf: logf})
			}
		}
		if a != nil {
			s, err := mon.Lag(ctx)
			a.ObserveReach("blue", err)
			if err == nil {
				a.ObserveLag(s, feed)
			}
			subs, err := mon.Subscriptions(ctx)
			a.ObserveReach("green", err)
			if err == nil {
				a.ObserveSubscriptions(subs)
			}
			if st, err := store.Reload(); err == nil {
				a.ObserveState(st)
			}
			if time.Since(lastSlow) >= 5*time.Second {
				lastSlow = time.Now()
				if t, err := mon.Traffic(ctx); err == nil {
					switch t.Target {
					case "green":
						feed = "green -> blue"
					case "blue":
						feed = "blue -> green"
					}
				}
				if d, err := mon.Drift(ctx); err == nil {
					a.ObserveDrift(d)
				}
			}
		}
		select {
		case <-ctx.Done():
			logf("stopping: sending the alerts in flight")
			return exitOK
		case <-tick.C:
		}
	}
}

func orOff(on bool, s string) string {
	if on {
		return s
	}
	return "(off)"
}
