package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunLabUsage: exit codes and messages of `pgbluegreen lab` that need no
// server: 2 for bad usage, 0 for help, 1 with the fix for a missing lab.
func TestRunLabUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nolab")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, labExitUsage, "Usage: pgbluegreen lab"},
		{[]string{"--help"}, labExitOK, "Commands:"},
		{[]string{"bogus"}, labExitUsage, `unknown command "bogus"`},
		{[]string{"up", "--strategy", "blue"}, labExitUsage, "use copy or clone"},
		{[]string{"load", "--duration", "0s"}, labExitUsage, "must be positive"},
		{[]string{"down", "--nope"}, labExitUsage, "flag provided but not defined"},
		{[]string{"status", "--help"}, labExitOK, "-dir"},
		{[]string{"verify", "--dir", missing}, labExitFailed, "run `pgbluegreen lab up --dir " + missing + "`"},
		{[]string{"status", "--dir", missing, "extra"}, labExitUsage, `unexpected argument "extra"`},
	} {
		var out, errOut bytes.Buffer
		code := runLab(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.want) {
			t.Errorf("lab %v: exit %d, output %q; want exit %d and %q", tc.args, code, out.String()+errOut.String(), tc.code, tc.want)
		}
	}
}
