//go:build !linux

package redis_test

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }
