package cache

import (
	"bytes"
	"os"
	"strconv"
)

// processStart returns when process pid started, in clock ticks since boot
// (field 22 of /proc/PID/stat), or 0 when unknown: with the pid, it names a
// process uniquely (pids are reused, start times are not).
func processStart(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	fields := bytes.Fields(b[i+1:])
	const startField = 22 - 3 // fields counted from the state, field 3
	if len(fields) <= startField {
		return 0
	}
	v, err := strconv.ParseInt(string(fields[startField]), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// processRuns reports whether the process pid that started at start still
// runs (a start of 0 is not checked).
func processRuns(pid int, start int64) bool {
	now := processStart(pid)
	return now != 0 && (start == 0 || now == start)
}
