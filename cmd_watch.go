package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps/config"
	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// watch is `watch --alerts`: headless, for days, with no terminal. It
// polls what the screen polls (lag, subscriptions, where the traffic is,
// the schemas, the state file of the instance that drives) and sends the
// configured alerts. Another process sending them (the driving screen)
// leaves it on standby until that one ends. It reads only, and survives
// SIGHUP; SIGINT or SIGTERM stop it after the alerts in flight are sent.
var watchCommand = command{name: "watch", synopsis: "watch --alerts", run: runWatch}

func runWatch(c *call, args []string) int {
	fs := c.flags()
	alerts := fs.Bool("alerts", false, "send the alerts configured in the config's alerts: section")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if !*alerts {
		fmt.Fprintln(c.stderr, "pgbluegreen: watch needs --alerts (a second person's read-only screen is `pgbluegreen --watch`)")
		return exitUsage
	}
	// The state is read, as a second screen reads it; the journal records
	// the alerts sent.
	s, code := c.open(needs{check: alertsSendable, state: readState, journal: true, pools: readPools})
	if s == nil {
		return code
	}
	defer s.close()
	g, cfg, store, stdout := c.g, s.cfg, s.store, c.stdout
	// No SIGHUP: a terminal closing must not end a watch meant to outlive it.
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stdout, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	mon := monitor.NewMonitor(s.blue, s.green, cfg)
	defer mon.Close()
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
				a = monitor.NewAlerter(monitor.AlerterParams{Config: cfg, Journal: s.journal, Logf: logf})
			}
		}
		if a != nil {
			sample, err := mon.Lag(ctx)
			a.ObserveReach("blue", err)
			if err == nil {
				a.ObserveLag(sample, feed)
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

// alertsSendable refuses a configuration with nowhere to send alerts.
func alertsSendable(cfg *config.Config) error {
	if !cfg.Alerts.Enabled() {
		return errors.New("alerts: has no webhook, webhook_env or command: nothing to send alerts to (see pgbluegreen.example.yaml)")
	}
	if cfg.Alerts.WebhookEnv != "" && cfg.Alerts.WebhookURL() == "" && len(cfg.Alerts.Command) == 0 {
		return fmt.Errorf("alerts.webhook_env: %s is empty; export it first", cfg.Alerts.WebhookEnv)
	}
	return nil
}
