//go:build !linux

package cachetest

import "syscall"

// sysProcAttr returns nil: only Linux can tie the child's life to the test
// binary's. Elsewhere a test binary killed before its cleanups run leaves
// its redis-server running.
func sysProcAttr() *syscall.SysProcAttr { return nil }
