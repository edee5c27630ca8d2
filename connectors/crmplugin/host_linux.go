package crmplugin

import (
	"os/exec"
	"syscall"
)

// orphanProof makes the kernel kill the plugin when the host dies, however
// it dies (the signal follows the host thread that started the plugin; Go
// does not end its threads unless a goroutine exits while locked to one).
func orphanProof(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
