//go:build pgbgtest

package testhook

import (
	"fmt"
	"os"
	"path/filepath"
)

// On says whether the hooks are built in: true in a binary built with
// -tags pgbgtest.
const On = true

// HoldAt is the point HoldEnv names, "" for none.
func HoldAt() string { return os.Getenv(HoldEnv) }

// Hold writes HoldFile in dir, saying this process holds at point, and
// waits until done is closed (a SIGHUP or SIGTERM cancels the run's
// context; a SIGKILL ends the process here).
func Hold(done <-chan struct{}, dir, point string) {
	_ = os.WriteFile(filepath.Join(dir, HoldFile), []byte(fmt.Sprintf("%d %s\n", os.Getpid(), point)), 0o644)
	<-done
}

// NoGuard reports whether NoGuardEnv is set.
func NoGuard() bool { return os.Getenv(NoGuardEnv) != "" }
