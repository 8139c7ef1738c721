package server

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	oldPercent, oldLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(oldLimit) })

	env := map[string]string{"GOGC": "50"}
	if TuneGC(func(k string) string { return env[k] }) || debug.SetGCPercent(100) != 100 {
		t.Fatal("TuneGC overrode the operator's GOGC")
	}
	env = map[string]string{"GOMEMLIMIT": "1GiB"}
	if TuneGC(func(k string) string { return env[k] }) || debug.SetGCPercent(100) != 100 {
		t.Fatal("TuneGC overrode the operator's GOMEMLIMIT")
	}
	if !TuneGC(func(string) string { return "" }) {
		t.Fatal("TuneGC did not apply its defaults")
	}
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GC percent %d, want %d", got, gcPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != memoryLimit {
		t.Errorf("memory limit %d, want %d", got, memoryLimit)
	}
}
