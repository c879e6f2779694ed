package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime/debug"
	"strconv"
)

// The load tool shares the host with the target it measures, so its garbage collector
// is part of the measurement: a cycle marks for a few hundred milliseconds with most
// of a core, late in a run when the recorded conversations have grown, and delays the
// target's work and the tool's own reads alike. Memory is cheap by comparison, so by
// default the tool does not collect until its heap reaches half of the memory the
// host had available at start (a run of a few minutes at thousands of messages per
// second stays well under that); on a small host, or without /proc/meminfo, it
// collects at GOGC 400. GOGC or GOMEMLIMIT in the environment leave Go's own settings.
const (
	// minLimit is the least memory limit worth running without a collector target.
	minLimit = 1 << 30
	// fallbackGCPercent is the target when there is no such memory.
	fallbackGCPercent = 400
)

// gcSettings is the collector target and memory limit to set, given the environment
// and the bytes available on the host (0 when unknown). A zero percent means leave
// Go's settings as they are; a negative one turns the target off, leaving the limit.
func gcSettings(getenv func(string) string, available int64) (percent int, limit int64) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return 0, 0
	}
	if available/2 < minLimit {
		return fallbackGCPercent, 0
	}
	return -1, available / 2
}

// memAvailable reads MemAvailable from the contents of /proc/meminfo, in bytes; 0
// when it is missing or malformed.
func memAvailable(meminfo []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("MemAvailable:"))
		if !ok {
			continue
		}
		kb, ok := bytes.CutSuffix(bytes.TrimSpace(rest), []byte(" kB"))
		if !ok {
			return 0
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(kb)), 10, 64)
		if err != nil || n <= 0 {
			return 0
		}
		return n << 10
	}
	return 0
}

// tuneGC applies gcSettings to this process. Only the tool's own runtime is changed:
// the helmdesk processes it starts keep their environment.
func tuneGC() {
	meminfo, _ := os.ReadFile("/proc/meminfo")
	percent, limit := gcSettings(os.Getenv, memAvailable(meminfo))
	if percent != 0 {
		debug.SetGCPercent(percent)
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
}
