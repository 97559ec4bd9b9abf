package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

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
