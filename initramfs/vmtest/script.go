package vmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// Step is one command the guest script runs; its stdout is the step's output, its stderr goes
// to the console.
type Step struct {
	Name  string // unique, [A-Za-z0-9_.-]+
	Shell string // gosh command lines
}

// Exec is a step running `ferrum-agent exec command 'args'` (args marshalled to JSON; nil: none).
func Exec(name, command string, args any) Step {
	sh := "ferrum-agent exec " + command
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			panic(fmt.Sprintf("vmtest.Exec(%s): %v", name, err))
		}
		sh += " " + Quote(string(b))
	}
	return Step{Name: name, Shell: sh}
}

// Quote quotes s for the guest shell.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var stepName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// script renders the gosh script that replaces uinit.
func script(steps []Step, hold bool) (string, error) {
	var b strings.Builder
	b.WriteString("#!/bbin/gosh\n# vmtest: runs each step, reports on /dev/ttyS1\n")
	b.WriteString("export PATH=/bbin:/bin:/sbin:/usr/sbin:/usr/bin\n")
	b.WriteString("echo @@FERRUM-START >/dev/ttyS1\n")
	seen := map[string]bool{}
	for _, s := range steps {
		if !stepName.MatchString(s.Name) || seen[s.Name] {
			return "", fmt.Errorf("vmtest: bad or repeated step name %q", s.Name)
		}
		seen[s.Name] = true
		fmt.Fprintf(&b, "{\n%s\n} >/tmp/ferrum-step.out\nrc=$?\n", s.Shell)
		fmt.Fprintf(&b, "echo \"@@FERRUM-STEP %s $rc\" >/dev/ttyS1\ncat /tmp/ferrum-step.out >/dev/ttyS1\necho \"@@FERRUM-END %s\" >/dev/ttyS1\n", s.Name, s.Name)
	}
	b.WriteString("echo @@FERRUM-DONE >/dev/ttyS1\nsync\n")
	if hold {
		b.WriteString("cat /dev/ttyS1 >/dev/null\n") // blocks: if uinit ended, init would exit and the kernel panic
	} else {
		b.WriteString("poweroff\n")
	}
	return b.String(), nil
}

// StepResult is what one step printed and its exit status.
type StepResult struct {
	Name   string
	RC     int
	Output string
	At     time.Duration // when the step ended, since QEMU started
}

// Result decodes the proto.Result an Exec step printed.
func (r StepResult) Result() (proto.Result, error) {
	var res proto.Result
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.Output)), &res); err != nil {
		return res, fmt.Errorf("step %s (rc %d): output %q: %w", r.Name, r.RC, r.Output, err)
	}
	return res, nil
}

// Decode decodes the data of an Exec step's successful result into v.
func (r StepResult) Decode(v any) error {
	res, err := r.Result()
	if err != nil {
		return err
	}
	if res.Error != nil {
		return fmt.Errorf("step %s: %s: %s", r.Name, res.Error.Code, res.Error.Message)
	}
	if err := json.Unmarshal(res.Data, v); err != nil {
		return fmt.Errorf("step %s: data %s: %w", r.Name, res.Data, err)
	}
	return nil
}

// Results waits for the script's first run to finish (or QEMU to exit) and returns every
// step's result. A step missing from the map did not finish.
func (v *VM) Results(ctx context.Context) (map[string]StepResult, error) { return v.RunResults(ctx, 0) }

// RunResults is Results for the script's n-th run (0-based): with Config.Reboot, every boot of
// the same QEMU process runs the script again.
func (v *VM) RunResults(ctx context.Context, n int) (map[string]StepResult, error) {
	for {
		v.mu.Lock()
		done, exited, ch := false, v.exited, v.changed
		out := map[string]StepResult{}
		if n < len(v.runs) {
			done = v.runs[n].done
			for k, r := range v.runs[n].steps {
				out[k] = r
			}
		}
		v.mu.Unlock()
		if done {
			return out, nil
		}
		if exited {
			return out, fmt.Errorf("vmtest: QEMU exited before the script finished: %w", errors.Join(v.exitError(), errors.New(v.consoleTail(20))))
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return out, fmt.Errorf("vmtest: waiting for the script: %w\n%s", ctx.Err(), v.consoleTail(20))
		}
	}
}

func (v *VM) consoleTail(n int) string {
	c := v.Console()
	if len(c) > n {
		c = c[len(c)-n:]
	}
	var b strings.Builder
	b.WriteString("console tail:")
	for _, l := range c {
		fmt.Fprintf(&b, "\n  %s", l.Text)
	}
	return b.String()
}
