package monitor

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// webhook is a local HTTP server that records every alert it receives;
// its first fail answers are 503.
type webhook struct {
	*httptest.Server
	mu     sync.Mutex
	alerts []Alert
	tries  int
	fail   int
}

func newWebhook(t *testing.T, fail int) *webhook {
	w := &webhook{fail: fail}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.tries++
		if w.tries <= w.fail {
			http.Error(rw, "busy", http.StatusServiceUnavailable)
			return
		}
		var a Alert
		if err := json.Unmarshal(body, &a); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(rw, "bad payload", http.StatusBadRequest)
			return
		}
		w.alerts = append(w.alerts, a)
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhook) received() []Alert {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Alert(nil), w.alerts...)
}

// alertClock is a clock the test moves.
type alertClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *alertClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *alertClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func alertConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(`blue: {conninfo: "host=blue dbname=app"}
green: {conninfo: "host=green dbname=app"}
replication: {password: {env: PGBG_TEST_PW}}
cutover: {method: nologin}
` + yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAlertsOnceEach: a local HTTP server receives the alert JSON for lag
// over a threshold (once it lasted `for`) and for a finished step, once
// each, however often the condition is observed; a 503 is tried again;
// the webhook's secret path is never journaled.
func TestAlertsOnceEach(t *testing.T) {
	wh := newWebhook(t, 1)
	secret := "/services/T000/B000/XXXXSECRETXXXX"
	c := alertConfig(t, "alerts:\n  webhook: "+wh.URL+secret+"\n  lag_bytes: 1MB\n  for: 1m\n")
	j, err := state.OpenJournal(filepath.Join(t.TempDir(), "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	clock := &alertClock{now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	a := NewAlerter(AlerterParams{Config: c, Journal: j, Now: clock.Now, Backoff: 5 * time.Millisecond})
	st := &state.State{Steps: map[string]*state.StepRecord{"preflight": {ID: "preflight", Status: state.Pending}}}
	a.ObserveState(st)
	lag := func(behind int64) LagSample {
		return LagSample{Slots: []SlotLag{
			{Slot: "pgbg_all", Server: "blue", Direction: "blue -> green", Active: true, BehindBytes: behind, WALStatus: "reserved", SafeWALBytes: -1},
			// The idle feed's slot: its lag never alerts.
			{Slot: "pgbg_reverse", Server: "green", Direction: "green -> blue", BehindBytes: 50 << 20, WALStatus: "reserved", SafeWALBytes: -1},
		}}
	}
	for _, step := range []time.Duration{0, 30 * time.Second, 31 * time.Second, time.Second, 10 * time.Second} {
		clock.add(step)
		a.ObserveLag(lag(5<<20), "blue -> green")
	}
	st.Steps["preflight"] = &state.StepRecord{ID: "preflight", Status: state.Done, Result: "12 pass · 1 warn"}
	a.ObserveState(st)
	a.ObserveState(st)
	a.Close()

	got := wh.received()
	if len(got) != 2 {
		t.Fatalf("the webhook received %d alerts, want 2 (lag, step done): %+v", len(got), got)
	}
	l, s := got[0], got[1]
	if l.Event != "lag_bytes" || l.State != "firing" || !strings.Contains(l.Text, "slot pgbg_all on blue (blue -> green) is 5.0 MB behind (over 1.0 MB) since 12:00:00 UTC") {
		t.Errorf("lag alert: %+v", l)
	}
	if s.Event != "step_done" || !strings.Contains(s.Text, "✓ step preflight done: 12 pass · 1 warn") {
		t.Errorf("step alert: %+v", s)
	}
	for _, x := range got {
		if !strings.HasPrefix(x.Text, "[pgbluegreen copy run]") {
			t.Errorf("text %q does not name the run", x.Text)
		}
	}
	t.Logf("alert body received: %s", mustJSON(t, l))
	journal, _ := os.ReadFile(j.Path())
	if strings.Contains(string(journal), "SECRET") {
		t.Errorf("the webhook's secret reached the journal:\n%s", journal)
	}
	entries, _, _ := state.ReadJournal(j.Path(), 0)
	var tries []string
	for _, e := range entries {
		if e.Kind == "alert" {
			tries = append(tries, e.Outcome+" "+e.Target+" "+e.Error)
		}
	}
	if len(tries) != 3 || !strings.HasPrefix(tries[0], "error webhook "+wh.URL+"/******** webhook answered 503") {
		t.Errorf("journaled tries: %q", tries)
	}
}

// TestAlertsEpisodes: an episode ends when its condition does (resolved is
// sent when asked for); a new one alerts again; WAL and drift alert at
// once; errors counted on green alert when they grow, not for history.
func TestAlertsEpisodes(t *testing.T) {
	wh := newWebhook(t, 0)
	c := alertConfig(t, "alerts:\n  webhook: "+wh.URL+"\n  lag_bytes: 1048576\n  for: 1m\n  send_resolved: true\n  safe_wal_bytes: 100MB\n")
	clock := &alertClock{now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	a := NewAlerter(AlerterParams{Config: c, Now: clock.Now, Backoff: time.Millisecond})
	slot := SlotLag{Slot: "pgbg_all", Server: "blue", Direction: "blue -> green", Active: true, BehindBytes: 5 << 20, WALStatus: "reserved", SafeWALBytes: -1}
	obs := func(sl SlotLag, d time.Duration) {
		clock.add(d)
		a.ObserveLag(LagSample{Slots: []SlotLag{sl}}, "blue -> green")
	}
	obs(slot, 0)
	obs(slot, 2*time.Minute) // fires
	small := slot
	small.BehindBytes = 100
	obs(small, time.Second) // resolved
	obs(slot, time.Second)
	obs(slot, 30*time.Second) // not yet: a new episode waits its minute
	obs(slot, 31*time.Second) // fires again
	near := small
	near.WALStatus, near.SafeWALBytes, near.RetainedBytes = "extended", 50<<20, 900<<20
	obs(near, time.Second)                                                     // lag resolved; wal_status and safe_wal at once
	a.ObserveSubscriptions([]Subscription{{Name: "pgbg_all", ApplyErrors: 3}}) // history: nothing
	a.ObserveSubscriptions([]Subscription{{Name: "pgbg_all", ApplyErrors: 4}})
	a.ObserveSubscriptions([]Subscription{{Name: "pgbg_all", ApplyErrors: 4}})
	a.ObserveDrift(Drift{Compared: true, Differences: []string{"only on blue: column public.accounts.note text null"}})
	a.ObserveDrift(Drift{Compared: true, Differences: []string{"only on blue: column public.accounts.note text null"}})
	a.Close()
	var seq []string
	for _, x := range wh.received() {
		seq = append(seq, x.Event+" "+x.State)
	}
	want := []string{"lag_bytes firing", "lag_bytes resolved", "lag_bytes firing", "lag_bytes resolved", "wal_status firing", "safe_wal firing",
		"subscription_errors firing", "schema_drift firing"}
	if strings.Join(seq, "; ") != strings.Join(want, "; ") {
		t.Errorf("alerts:\n got %q\nwant %q", seq, want)
	}
}

// TestAlertsCommand: the command gets the alert's JSON on stdin and its
// event in the environment; a 4xx webhook is not tried again.
func TestAlertsCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "alerts.jsonl")
	rejecting := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { http.Error(rw, "invalid_payload", 400) }))
	defer rejecting.Close()
	c := alertConfig(t, "alerts:\n  webhook: "+rejecting.URL+"/x\n  command: [sh, -c, 'cat >> "+out+"; echo \" $PGBG_ALERT_EVENT\" >> "+out+"']\n")
	j, _ := state.OpenJournal(filepath.Join(t.TempDir(), "j.jsonl"))
	defer j.Close()
	a := NewAlerter(AlerterParams{Config: c, Journal: j, Backoff: time.Millisecond})
	a.ObserveDrift(Drift{Compared: true, Differences: []string{"only on green: index public.x_idx: CREATE INDEX x_idx ON public.x USING btree (a)"}})
	a.Close()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"event":"schema_drift"`) || !strings.HasSuffix(strings.TrimSpace(string(b)), "}\n schema_drift") {
		t.Errorf("the command got:\n%s", b)
	}
	entries, _, _ := state.ReadJournal(j.Path(), 0)
	webhookTries := 0
	for _, e := range entries {
		if e.Kind == "alert" && strings.HasPrefix(e.Target, "webhook") {
			webhookTries++
		}
	}
	if webhookTries != 1 {
		t.Errorf("a 400 answer was tried %d times, want once", webhookTries)
	}
}

// TestAlertsConfig: sizes with units, the URL's secret redacted in errors.
func TestAlertsConfig(t *testing.T) {
	c := alertConfig(t, "alerts:\n  webhook_env: PGBG_TEST_HOOK\n  lag_bytes: 100MB\n  safe_wal_bytes: 2GB\n  lag_time: 30s\n")
	if c.Alerts.LagBytes.Int64() != 100<<20 || c.Alerts.SafeWALBytes.Int64() != 2<<30 || c.Alerts.LagTime.Duration != 30*time.Second || c.Alerts.For.Duration != 5*time.Minute || c.Alerts.Retries != 5 {
		t.Errorf("alerts: %+v", c.Alerts)
	}
	_, err := config.Parse([]byte(`blue: {conninfo: "host=blue"}
green: {conninfo: "host=green"}
replication: {password: {env: X}}
cutover: {method: nologin}
alerts: {webhook: "ftp://hooks.example.com/T000/SECRET", events: [lag, step_done]}`))
	if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "ftp://hooks.example.com/******** is not an http(s) URL") ||
		!strings.Contains(err.Error(), `"lag" is not one of`) {
		t.Errorf("config error: %v", err)
	}
	if got := config.RedactURL("https://hooks.slack.com/services/T0/B0/XYZ?token=abc"); got != "https://hooks.slack.com/********" {
		t.Errorf("redacted %q", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
