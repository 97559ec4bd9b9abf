package state

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// churnEnv makes the test binary save the state file in a loop until it is killed: it records
// an ever-growing counter, with a running step, and says "ready" after churnReady saves.
const churnEnv = "PGBG_STATE_TEST_CHURN"

const churnReady = 50

func runChurn(path string) int {
	st, err := Open(path, OpenParams{})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	for i := 1; ; i++ {
		err := st.Update(func(s *State) error {
			s.Set("counter", strconv.Itoa(i), "churn")
			s.EditStep("churn").Status = Running
			return nil
		})
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		if i == churnReady {
			fmt.Println("ready")
		}
	}
}

// TestKillDuringSavesLeavesAReadableState kills (SIGKILL) a process in the middle of saving the
// state file over and over, then checks that the file is whole, holds a counter at least as
// far as the process said it got, and that the crashed run's step is seen as interrupted.
func TestKillDuringSavesLeavesAReadableState(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), churnEnv+"="+path)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil || strings.TrimSpace(line) != "ready" {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("churning child said %q, %v", line, err)
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()

			st, err := Open(path, OpenParams{})
			if err != nil {
				t.Fatalf("open after kill -9 during saves: %v", err)
			}
			defer st.Close()
			s := st.Snapshot()
			v, _ := s.Get("counter")
			if n, err := strconv.Atoi(v); err != nil || n < churnReady {
				t.Fatalf("counter after the crash = %q, want >= %d", v, churnReady)
			}
			if got := s.Step("churn").Status; got != Interrupted {
				t.Fatalf("step of the killed run is %s, want interrupted", got)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temp file survived a writable open: %s", e.Name())
				}
			}
		})
	}
}
