//go:build !linux

package crmplugin

import "os/exec"

// orphanProof is a no-op where the kernel offers no parent-death signal;
// there Host.Close is what ends plugins.
func orphanProof(*exec.Cmd) {}
