package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestBenchRuns runs the fleet benchmark at a tiny size, BMCs in process, so it keeps working.
func TestBenchRuns(t *testing.T) {
	var out bytes.Buffer
	c := config{mode: "fleet", n: 20, workers: 4, slowWorkers: 2, passes: 2, timeout: 300 * time.Millisecond,
		attempts: 1, ironicWorkers: 8, silentEvery: 10, inProcess: true}
	if err := run(context.Background(), c, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"cold ", "kept-2 ", "kept passes: median"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// 2 of the 20 BMCs are silent: the cold pass reports them failed.
	if !strings.Contains(out.String(), "      20       18      2") {
		t.Errorf("cold pass should show 20 nodes, 18 matched, 2 failed:\n%s", out.String())
	}
}
