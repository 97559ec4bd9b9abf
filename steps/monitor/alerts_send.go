package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// The sender: one goroutine that delivers queued alerts to the webhook and
// the command, each tried again after a failure with a doubling wait, and
// every try journaled (kind "alert"), the webhook's URL redacted.

// maxBackoff bounds the wait between two tries of a send.
const alertMaxBackoff = time.Minute

type sender struct {
	cfg     config.Alerts
	journal *state.Journal
	backoff time.Duration
	logf    func(format string, args ...any)
	client  *http.Client

	q    chan Alert
	done chan struct{}
	once sync.Once
}

func newSender(cfg config.Alerts, j *state.Journal, backoff time.Duration, logf func(string, ...any)) *sender {
	s := &sender{cfg: cfg, journal: j, backoff: backoff, logf: logf, client: &http.Client{Timeout: cfg.Timeout.Duration},
		q: make(chan Alert, 256), done: make(chan struct{})}
	go s.loop()
	return s
}

// queue hands an alert to the sender without waiting; a full queue (a
// destination down for long, hundreds of alerts behind) drops it, journaled.
func (s *sender) queue(al Alert) {
	select {
	case s.q <- al:
	default:
		s.record(al, "queue", 0, errors.New("dropped: 256 alerts wait to be sent already"))
	}
}

// close stops taking alerts and waits for the queued ones to be sent, at
// most within: a destination down must not hold a screen that quits.
func (s *sender) close(within time.Duration) bool {
	s.once.Do(func() { close(s.q) })
	select {
	case <-s.done:
		return true
	case <-time.After(within):
		return false
	}
}

func (s *sender) loop() {
	defer close(s.done)
	for al := range s.q {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // "->" and "<" stay readable in the text
		_ = enc.Encode(al)
		body := buf.Bytes()
		if u := s.cfg.WebhookURL(); u != "" {
			s.try(al, "webhook "+config.RedactURL(u), func(ctx context.Context) error { return s.post(ctx, u, body) })
		}
		if len(s.cfg.Command) > 0 {
			s.try(al, "command "+s.cfg.Command[0], func(ctx context.Context) error { return s.runCommand(ctx, al, body) })
		}
	}
}

// permanent marks a failure that trying again cannot fix (a 4xx answer).
type permanent struct{ error }

// try delivers one alert to one destination: 1 + Retries tries, each
// bounded by the timeout, the wait doubling between them.
func (s *sender) try(al Alert, dest string, f func(ctx context.Context) error) {
	wait := s.backoff
	for n := 1; ; n++ {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout.Duration)
		err := f(ctx)
		cancel()
		s.record(al, dest, n, err)
		var perm permanent
		if err == nil || errors.As(err, &perm) || n > s.cfg.Retries {
			return
		}
		time.Sleep(wait)
		wait = min(2*wait, alertMaxBackoff)
	}
}

// record journals one try and tells Logf.
func (s *sender) record(al Alert, dest string, n int, err error) {
	e := state.Entry{Step: "alerts", Target: dest, Kind: "alert", Text: fmt.Sprintf("%s %s (try %d): %s", al.Event, al.State, n, al.Text), Outcome: "ok"}
	if err != nil {
		e.Outcome, e.Error = "error", err.Error()
	}
	if s.journal != nil {
		_ = s.journal.Append(e)
	}
	if s.logf != nil {
		if err != nil {
			s.logf("alert %s to %s, try %d, failed: %s", al.Event, dest, n, state.Redact(err.Error()))
		} else {
			s.logf("alert %s sent to %s: %s", al.Event, dest, al.Text)
		}
	}
}

// post sends the alert's JSON to the webhook. The URL never appears in an
// error: Go's errors quote it, and it holds the secret.
func (s *sender) post(ctx context.Context, u string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return permanent{errors.New(strings.ReplaceAll(err.Error(), u, config.RedactURL(u)))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pgbluegreen")
	resp, err := s.client.Do(req)
	if err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), u, config.RedactURL(u)))
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("webhook answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return permanent{fmt.Errorf("webhook answered %s: %s (not tried again: fix the URL or the payload)", resp.Status, strings.TrimSpace(string(msg)))}
}

// runCommand runs the configured command with the alert's JSON on stdin.
func (s *sender) runCommand(ctx context.Context, al Alert, body []byte) error {
	cmd := exec.CommandContext(ctx, s.cfg.Command[0], s.cfg.Command[1:]...)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = append(os.Environ(), "PGBG_ALERT_EVENT="+al.Event, "PGBG_ALERT_STATE="+al.State, "PGBG_ALERT_TEXT="+al.Text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", s.cfg.Command[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}
