package server

import (
	"runtime/debug"
)

// Garbage collector defaults for a broker process. Its live heap is small
// (tens of MB: clients, keys, caches) and nearly all garbage is per
// request, so Go's default GOGC=100 collects several hundred times a
// second under load. A higher target trades a few more MB for CPU; the
// soft memory limit makes the collector work harder before the heap grows
// past it, so memory stays bounded. 200 rather than 400: in alternating
// load runs (trustbroker-bench, SQLite) 400 saved no CPU measurably but
// held 10-20 MB more resident memory (refresh 65 against 80 MB, code
// exchange 71 against 89 MB).
const (
	gcPercent   = 200
	memoryLimit = 256 << 20
)

// TuneGC applies those defaults unless the operator set GOGC or
// GOMEMLIMIT (the runtime has read those already; they win). It reports
// whether it changed anything, for the start-up log.
func TuneGC(getenv func(string) string) bool {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return false
	}
	debug.SetGCPercent(gcPercent)
	debug.SetMemoryLimit(memoryLimit)
	return true
}
