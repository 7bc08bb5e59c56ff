package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBenchRuns runs the benchmark at a tiny size so it keeps working between releases.
func TestBenchRuns(t *testing.T) {
	var out bytes.Buffer
	if err := run(40, 5, 2, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, want := range []string{"nodes/s", "p50", "at 40 nodes (40 per page)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
