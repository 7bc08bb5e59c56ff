// Package runner runs the controller's commands on the agent: it looks the command up among
// the registered handlers, allows one mutating command at a time (a second one is refused
// with proto.CodeBusy), cancels on request or timeout, and turns every outcome into a
// proto.Result with an error code.
//
// It declares the Handler interface capabilities implement; cmd/ferrum-agent registers them
// and agent/link feeds it commands. It knows nothing of the transport.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// Handler is one command's implementation. It reports progress through progress (never nil)
// and returns a result that is marshalled to JSON, or an error: a *proto.Error keeps its code,
// anything else becomes proto.CodeFailed.
type Handler interface {
	Run(ctx context.Context, args json.RawMessage, progress func(percent float64, message string)) (any, error)
}

type reportKey struct{}

// ReportData sends a progress report with structured data (proto.Progress.Data, e.g.
// proto.WriteImageProgress) from a handler: ctx is the one Run received. Elsewhere it does
// nothing.
func ReportData(ctx context.Context, percent float64, message string, data any) {
	if f, ok := ctx.Value(reportKey{}).(func(float64, string, any)); ok {
		f(percent, message, data)
	}
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, args json.RawMessage, progress func(percent float64, message string)) (any, error)

// Run implements Handler.
func (f HandlerFunc) Run(ctx context.Context, args json.RawMessage, progress func(float64, string)) (any, error) {
	return f(ctx, args, progress)
}

// Config configures a Runner.
type Config struct {
	Log zerolog.Logger
	Now func() time.Time // [time.Now]
}

// Runner dispatches commands. Its methods are safe for concurrent use.
type Runner struct {
	log zerolog.Logger
	now func() time.Time

	mu       sync.Mutex
	handlers map[string]entry
	jobs     map[string]*Job // running jobs by command ID
	mutating *Job            // the running mutating job, if any
	closed   bool
	wg       sync.WaitGroup
}

type entry struct {
	h        Handler
	mutating bool
}

// New returns a Runner without commands.
func New(cfg Config) *Runner {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runner{log: cfg.Log.With().Str("component", "runner").Logger(), now: cfg.Now,
		handlers: map[string]entry{}, jobs: map[string]*Job{}}
}

// Register adds a command. Mutating commands change the machine and run one at a time.
func (r *Runner) Register(name string, h Handler, mutating bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[name] = entry{h: h, mutating: mutating}
}

// Names lists the registered commands, sorted.
func (r *Runner) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for n := range r.handlers {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Job is a command started by the Runner.
type Job struct {
	ID        string
	Name      string
	Mutating  bool
	StartedAt time.Time

	cancel   context.CancelFunc
	done     chan struct{}
	result   proto.Result
	progress func(proto.Progress)
}

// Done is closed when the job has ended.
func (j *Job) Done() <-chan struct{} { return j.done }

// Result is the job's outcome; valid after Done is closed.
func (j *Job) Result() proto.Result { return j.result }

// Start runs cmd in its own goroutine and returns its Job, or an error the command never ran
// for: unknown command, bad request, busy (another mutating command runs), closed. A command
// whose ID is already running returns that job (a controller repeating itself after a
// reconnect). progress receives the handler's reports; it must not block for long.
func (r *Runner) Start(cmd proto.Command, progress func(proto.Progress)) (*Job, *proto.Error) {
	if err := cmd.Validate(); err != nil {
		return nil, proto.Errorf(proto.CodeBadRequest, "%v", err)
	}
	if progress == nil {
		progress = func(proto.Progress) {}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, proto.Errorf(proto.CodeInternal, "agent is shutting down")
	}
	if j, ok := r.jobs[cmd.ID]; ok && j.Name == cmd.Name {
		return j, nil
	}
	e, ok := r.handlers[cmd.Name]
	if !ok {
		return nil, proto.Errorf(proto.CodeUnknownCommand, "no command %q", cmd.Name)
	}
	if e.mutating && r.mutating != nil {
		return nil, proto.Errorf(proto.CodeBusy, "command %s (%s) is running", r.mutating.ID, r.mutating.Name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if cmd.TimeoutMs > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), time.Duration(cmd.TimeoutMs)*time.Millisecond)
	}
	j := &Job{ID: cmd.ID, Name: cmd.Name, Mutating: e.mutating, StartedAt: r.now(), cancel: cancel,
		done: make(chan struct{}), progress: progress}
	r.jobs[cmd.ID] = j
	if e.mutating {
		r.mutating = j
	}
	r.wg.Add(1)
	go r.run(ctx, j, e.h, cmd.Args)
	return j, nil
}

func (r *Runner) run(ctx context.Context, j *Job, h Handler, args json.RawMessage) {
	defer r.wg.Done()
	defer j.cancel()
	log := r.log.With().Str("command_id", j.ID).Str("command", j.Name).Logger()
	if j.Mutating {
		log.Info().Msg("command started")
	}
	report := func(pct float64, msg string) {
		j.progress(proto.Progress{ID: j.ID, Time: r.now(), Percent: pct, Message: msg})
	}
	ctx = context.WithValue(ctx, reportKey{}, func(pct float64, msg string, data any) {
		p := proto.Progress{ID: j.ID, Time: r.now(), Percent: pct, Message: msg}
		if data != nil {
			if b, err := json.Marshal(data); err == nil {
				p.Data = b
			}
		}
		j.progress(p)
	})
	var data any
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Error().Interface("panic", p).Msg("command panicked")
				err = proto.Errorf(proto.CodeInternal, "command %s panicked", j.Name)
			}
		}()
		data, err = h.Run(ctx, args, report)
		return err
	}()
	res := proto.Result{ID: j.ID, StartedAt: j.StartedAt, FinishedAt: r.now()}
	if err == nil {
		b, merr := json.Marshal(data)
		if merr != nil {
			err = proto.Errorf(proto.CodeInternal, "encode result: %v", merr)
		} else if data != nil {
			res.Data = b
		}
	}
	if err != nil {
		res.Error = toError(ctx, err)
		log.Warn().Str("code", string(res.Error.Code)).Str("error", res.Error.Message).Msg("command failed")
	} else if j.Mutating {
		log.Info().Msg("command done")
	}
	j.result = res
	r.mu.Lock()
	delete(r.jobs, j.ID)
	if r.mutating == j {
		r.mutating = nil
	}
	r.mu.Unlock()
	close(j.done)
}

// toError gives err its wire code.
func toError(ctx context.Context, err error) *proto.Error {
	var pe *proto.Error
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return proto.Errorf(proto.CodeTimeout, "%v", err)
	case errors.Is(ctx.Err(), context.Canceled):
		return proto.Errorf(proto.CodeCancelled, "%v", err)
	}
	return proto.Errorf(proto.CodeFailed, "%v", err)
}

// Cancel cancels the running command id; false when no such command runs.
func (r *Runner) Cancel(id string) bool {
	r.mu.Lock()
	j, ok := r.jobs[id]
	r.mu.Unlock()
	if ok {
		j.cancel()
	}
	return ok
}

// Running describes the running mutating command, or nil.
func (r *Runner) Running() *proto.Running {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mutating == nil {
		return nil
	}
	return &proto.Running{ID: r.mutating.ID, Name: r.mutating.Name, StartedAt: r.mutating.StartedAt}
}

// Close refuses new commands, cancels the running ones and waits for them.
func (r *Runner) Close() error {
	r.mu.Lock()
	r.closed = true
	for _, j := range r.jobs {
		j.cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// String is for logs.
func (j *Job) String() string { return fmt.Sprintf("%s(%s)", j.Name, j.ID) }
