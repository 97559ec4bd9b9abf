package monitor

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps/cutover"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// Alerts: nobody stares at a gauge for six hours. The screen and the
// headless `watch --alerts` feed what they read into an Alerter, which
// decides when a condition becomes an alert: once per episode (a
// condition that starts, lasts, and ends), after it lasted long enough
// for lag, and once for events (a step finished). Sending (webhook,
// command) is the sender's, off the caller's goroutine, retried with
// backoff and journaled.

// Alert is one alert: the webhook's JSON body, the command's stdin.
type Alert struct {
	// Text is what a person reads; Slack shows it as the message.
	Text  string `json:"text"`
	Event string `json:"event"`
	// State is "firing" when an episode starts, "resolved" when it ends
	// (with send_resolved), "event" for a one-off (a step finished).
	State    string    `json:"state"`
	Severity string    `json:"severity"` // info, warning, critical
	Subject  string    `json:"subject"`  // the slot, subscription, step or server
	At       time.Time `json:"at"`
	// Since is when the condition started.
	Since time.Time `json:"since,omitzero"`
	// Run names the run: its strategy and configuration file.
	Run string `json:"run"`
}

// AlerterParams builds an Alerter.
type AlerterParams struct {
	Config *config.Config
	// Journal records every send and its outcome; may be nil.
	Journal *state.Journal
	// Now is the clock (tests fix it); default time.Now.
	Now func() time.Time
	// Backoff is the first wait before a retry (default 1 s), doubling.
	Backoff time.Duration
	// Logf, when set, is told of each send in a line (watch prints it).
	Logf func(format string, args ...any)
}

// Alerter turns observations into alerts.
type Alerter struct {
	cfg  config.Alerts
	run  string
	now  func() time.Time
	send *sender

	mu sync.Mutex
	// since is when each condition was first seen on, by key; open the
	// episodes an alert was sent for.
	since map[string]time.Time
	open  map[string]Alert
	// steps and attempts are the last state observed (nil: none yet, so
	// history is never alerted on); errs the subscriptions' error counts.
	steps    map[string]state.Status
	attempts int
	errs     map[string]int64
	// grew is when each subscription's error count last grew.
	grew map[string]time.Time
}

// NewAlerter builds an Alerter and starts its sender; nil when alerts go
// nowhere (every method of a nil Alerter does nothing).
func NewAlerter(p AlerterParams) *Alerter {
	if p.Config == nil || !p.Config.Alerts.Enabled() {
		return nil
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Backoff <= 0 {
		p.Backoff = time.Second
	}
	c := p.Config
	run := fmt.Sprintf("pgbluegreen %s run", c.Strategy)
	if c.Path != "" {
		run += " (" + c.Path + ")"
	}
	return &Alerter{cfg: c.Alerts, run: run, now: p.Now, since: map[string]time.Time{}, open: map[string]Alert{}, grew: map[string]time.Time{},
		send: newSender(c.Alerts, p.Journal, p.Backoff, p.Logf)}
}

// alertsDrain bounds how long Close waits for the alerts in flight.
const alertsDrain = 20 * time.Second

// Close stops the sender once every alert queued is sent or given up,
// waiting 20 s at most; an alert still being tried then is journaled as
// tried, not sent.
func (a *Alerter) Close() {
	if a != nil && !a.send.close(alertsDrain) {
		a.send.record(Alert{Event: "alerts", State: "stopped", Text: "stopped with alerts still being tried"}, "queue", 0, errors.New("gave up waiting 20s for the destinations"))
	}
}

// condition folds one observation of a condition: on, it opens an episode
// once it has lasted d (an alert is sent); off, it closes it (resolved is
// sent when asked for).
func (a *Alerter) condition(key string, on bool, d time.Duration, mk func(since time.Time) Alert) {
	now := a.now()
	if !on {
		delete(a.since, key)
		if al, ok := a.open[key]; ok {
			delete(a.open, key)
			if a.cfg.SendResolved {
				al.State, al.At, al.Severity = "resolved", now.UTC(), "info"
				al.Text = "✓ resolved: " + al.Text
				a.emit(al)
			}
		}
		return
	}
	since, ok := a.since[key]
	if !ok {
		since = now
		a.since[key] = now
	}
	if _, sent := a.open[key]; sent || now.Sub(since) < d {
		return
	}
	al := mk(since)
	al.State, al.At, al.Since = "firing", now.UTC(), since.UTC()
	a.open[key] = al
	a.emit(al)
}

// emit queues an alert its event is configured for.
func (a *Alerter) emit(al Alert) {
	if !a.cfg.Wants(al.Event) {
		return
	}
	al.Run = a.run
	al.Text = fmt.Sprintf("[%s] %s", a.run, al.Text)
	a.send.queue(al)
}

// ObserveLag takes one lag sample; feed is the direction in use ("blue ->
// green", or "green -> blue" after a cutover): lag alerts watch its slots,
// WAL alerts every slot (an idle slot still holds WAL on its server).
func (a *Alerter) ObserveLag(s LagSample, feed string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sl := range s.Slots {
		where := fmt.Sprintf("slot %s on %s (%s)", sl.Slot, orWordS(sl.Server, "blue"), orWordS(sl.Direction, "blue -> green"))
		inUse := sl.Direction == feed || sl.Direction == "" && feed != "green -> blue"
		key := sl.Server + "/" + sl.Slot
		if lim := a.cfg.LagBytes.Int64(); lim > 0 {
			a.condition("lag_bytes/"+key, inUse && sl.BehindBytes > lim, a.cfg.For.Duration, func(since time.Time) Alert {
				return Alert{Event: "lag_bytes", Severity: "warning", Subject: sl.Slot,
					Text: fmt.Sprintf("⚠ lag: %s is %s behind (over %s) since %s", where, Bytes(sl.BehindBytes), Bytes(lim), since.UTC().Format(time.TimeOnly+" UTC"))}
			})
		}
		if lim := a.cfg.LagTime.Duration; lim > 0 {
			secs := -1.0
			if sl.LagSeconds != nil {
				secs = *sl.LagSeconds
			}
			a.condition("lag_time/"+key, inUse && secs > lim.Seconds(), a.cfg.For.Duration, func(since time.Time) Alert {
				return Alert{Event: "lag_time", Severity: "warning", Subject: sl.Slot,
					Text: fmt.Sprintf("⚠ lag: %s is %.1fs behind (over %s) since %s", where, secs, lim, since.UTC().Format(time.TimeOnly+" UTC"))}
			})
		}
		past := sl.WALStatus == "extended" || sl.WALStatus == "unreserved" || sl.WALStatus == "lost"
		a.condition("wal_status/"+key, past, 0, func(time.Time) Alert {
			sev := "warning"
			if sl.WALStatus != "extended" {
				sev = "critical"
			}
			return Alert{Event: "wal_status", Severity: sev, Subject: sl.Slot,
				Text: fmt.Sprintf("⚠ %s: wal_status %s (past reserved), holding %s of WAL", where, sl.WALStatus, Bytes(sl.RetainedBytes))}
		})
		low := sl.SafeWALBytes >= 0 && sl.SafeWALBytes < a.cfg.SafeWALBytes.Int64()
		a.condition("safe_wal/"+key, low, 0, func(time.Time) Alert {
			return Alert{Event: "safe_wal", Severity: "critical", Subject: sl.Slot,
				Text: fmt.Sprintf("⚠ %s: only %s of WAL left before it is invalidated (safe_wal_size; bound %s), %s held",
					where, Bytes(sl.SafeWALBytes), Bytes(a.cfg.SafeWALBytes.Int64()), Bytes(sl.RetainedBytes))}
		})
	}
}

// ObserveSubscriptions takes green's subscriptions: apply or sync errors
// counted since the first observation open an episode, which ends when
// the count stays still for `for`.
func (a *Alerter) ObserveSubscriptions(subs []Subscription) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	first := a.errs == nil
	if first {
		a.errs = map[string]int64{}
	}
	for _, s := range subs {
		if s.ApplyErrors < 0 {
			continue // not readable (PostgreSQL 15+ has the counts)
		}
		n := s.ApplyErrors + s.SyncErrors
		key := "subscription_errors/" + s.Name
		prev, seen := a.errs[s.Name]
		a.errs[s.Name] = n
		switch {
		case first || !seen:
		case n > prev:
			a.grew[s.Name] = now
			a.condition(key, true, 0, func(time.Time) Alert {
				return Alert{Event: "subscription_errors", Severity: "critical", Subject: s.Name,
					Text: fmt.Sprintf("✗ subscription %s on green: errors counted (apply %d, sync %d; %d new): replication is failing, see green's log", s.Name, s.ApplyErrors, s.SyncErrors, n-prev)}
			})
		case now.Sub(a.grew[s.Name]) >= a.cfg.For.Duration:
			a.condition(key, false, 0, nil)
		}
	}
}

// ObserveDrift takes a comparison of the schemas.
func (a *Alerter) ObserveDrift(d Drift) {
	if a == nil || !d.Compared {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.condition("schema_drift", d.Drifted(), 0, func(time.Time) Alert {
		return Alert{Event: "schema_drift", Severity: "critical", Subject: "schemas",
			Text: "⚠ schema drift: " + d.Summary(5) + ". The cutover refuses until they match."}
	})
}

// ObserveReach takes whether a server answered (err nil) at its last poll:
// one that does not answer for `for` alerts.
func (a *Alerter) ObserveReach(server string, err error) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.condition("unreachable/"+server, err != nil, a.cfg.For.Duration, func(since time.Time) Alert {
		return Alert{Event: "unreachable", Severity: "critical", Subject: server,
			Text: fmt.Sprintf("✗ %s has not answered since %s: %s", server, since.UTC().Format(time.TimeOnly+" UTC"), state.Redact(strings.TrimSpace(err.Error())))}
	})
}

// ObserveState takes the state file: a step that became done, failed or
// interrupted since the last observation, and a cutover or rollback
// attempt that ended, each alert once. The first observation only sets
// what is known, so history is never alerted on.
func (a *Alerter) ObserveState(st *state.State) {
	if a == nil || st == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	first := a.steps == nil
	prev := a.steps
	a.steps = map[string]state.Status{}
	ids := make([]string, 0, len(st.Steps))
	for id, r := range st.Steps {
		a.steps[id] = r.Status
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if !first {
		for _, id := range ids {
			r := st.Steps[id]
			if r.Status == prev[id] || id == cutover.NameCutover || id == cutover.NameRollback {
				continue // the attempts say more of these two
			}
			switch r.Status {
			case state.Done:
				a.emit(Alert{Event: "step_done", State: "event", Severity: "info", Subject: id, At: a.now().UTC(),
					Text: fmt.Sprintf("✓ step %s done%s", id, detailText(r.Result))})
			case state.Failed, state.Interrupted:
				a.emit(Alert{Event: "step_failed", State: "event", Severity: "critical", Subject: id, At: a.now().UTC(),
					Text: fmt.Sprintf("✗ step %s %s%s", id, r.Status, detailText(r.LastError))})
			}
		}
		for _, at := range st.Attempts {
			if at.N <= a.attempts || at.Outcome == state.AttemptRunning {
				continue
			}
			switch at.Outcome {
			case state.AttemptDone:
				a.emit(Alert{Event: "cutover_done", State: "event", Severity: "info", Subject: at.Step, At: a.now().UTC(),
					Text: fmt.Sprintf("✓ %s done (attempt %d%s, method %s): report %s", at.Step, at.N, wayText(at.Way), at.Method, orWordS(at.Report, "-"))})
			case state.AttemptAborted, state.AttemptFailed, state.AttemptInterrupted:
				a.emit(Alert{Event: "cutover_aborted", State: "event", Severity: "critical", Subject: at.Step, At: a.now().UTC(),
					Text: fmt.Sprintf("✗ %s %s (attempt %d%s)%s; report %s", at.Step, at.Outcome, at.N, wayText(at.Way), detailText(at.Error), orWordS(at.Report, "-"))})
			}
		}
	}
	for _, at := range st.Attempts {
		if at.Outcome != state.AttemptRunning {
			a.attempts = max(a.attempts, at.N)
		}
	}
}

func wayText(way string) string {
	if way == "" {
		return ""
	}
	return ", way out " + way
}

func detailText(s string) string {
	s = strings.Join(strings.Fields(state.Redact(s)), " ")
	if s == "" {
		return ""
	}
	if r := []rune(s); len(r) > 300 {
		s = string(r[:299]) + "…"
	}
	return ": " + s
}
