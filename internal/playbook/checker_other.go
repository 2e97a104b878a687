//go:build !linux

package playbook

import (
	"os"
	"os/exec"
)

// The gateway runs on Linux, where checker_linux.go limits the checker's
// memory, CPU time and processes. Elsewhere (a developer's laptop) the
// checker runs without them; the wall-clock timeout and the number of
// checkers at once still hold.

func (v *Validator) limitChecker(pid int) error { return nil }

func isolate(cmd *exec.Cmd) {}

func endGroup(pid int) {}

func stopSignal(state *os.ProcessState, cpuLimitReached bool) (kind, name string) {
	return "", ""
}
