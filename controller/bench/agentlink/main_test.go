package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary play the agents' child process, as the command does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "agents" {
		if err := agents(os.Args[2:]); err != nil {
			os.Stderr.WriteString("agents: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchRuns runs the benchmark at a tiny size so it keeps working.
func TestBenchRuns(t *testing.T) {
	var out bytes.Buffer
	o := options{sizes: []int{20}, rttAgents: 20, rttRequests: 40, burstRounds: 2, restart: true, enroll: 10}
	if err := run(o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"KiB/agent", "1 in flight: p50", "controller restart: all 20 agents back", "enrollment through the embedded authority"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
