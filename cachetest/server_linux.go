package cachetest

import "syscall"

// sysProcAttr makes the kernel SIGKILL redis-server when the test binary
// dies, so that a crashed or killed test run leaves no server behind.
//
// Pdeathsig fires when the thread that started the child exits, not only
// the process. Go does not end its threads, except one whose goroutine
// exits while locked with runtime.LockOSThread: do not start servers from
// such a goroutine.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
