package main

import (
	"syscall"
	"time"
	"unsafe"
)

// The publisher stamps payloads with CLOCK_MONOTONIC nanoseconds (Python's
// time.monotonic_ns), a clock every process of the machine shares. Go's
// time.Since reads the same clock, so one clock_gettime call at start-up
// gives an offset and every later reading is a cheap time.Since.
var (
	clockBase   = time.Now()
	clockOrigin = monotonicNs()
)

func monotonicNs() int64 {
	var ts syscall.Timespec
	const clockMonotonic = 1
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic,
		uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic(errno)
	}
	return ts.Nano()
}

// nowMonotonicNs is CLOCK_MONOTONIC in nanoseconds, without a system call.
func nowMonotonicNs() int64 {
	return clockOrigin + int64(time.Since(clockBase))
}
