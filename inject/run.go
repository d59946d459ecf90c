package inject

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Runner runs one command line on a server, with stdin fed to it, and
// returns what it wrote. A command that exits non-zero returns an error
// that reports the exit code through an ExitStatus() int or ExitCode() int
// method (as *ssh.ExitError and *exec.ExitError do). Cancelling ctx stops
// the command.
type Runner interface {
	Run(ctx context.Context, cmd string, stdin io.Reader) (stdout, stderr []byte, err error)
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context, cmd string, stdin io.Reader) (stdout, stderr []byte, err error)

// Run calls f.
func (f RunnerFunc) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, []byte, error) {
	return f(ctx, cmd, stdin)
}

// StepwiseRunner is an optional interface: a Runner whose Stepwise method
// returns true gets one Run call per step instead of one combined /bin/sh
// script (for runners that cannot run a POSIX shell script).
type StepwiseRunner interface {
	Runner
	Stepwise() bool
}

// Event reports progress: Done=false when a step starts, Done=true when it
// ends, with Err nil on success or the *StepError.
type Event struct {
	Index int
	Step  string // redacted
	Done  bool
	Err   error
}

// Option configures Run.
type Option func(*options)

type options struct {
	redact   []string
	logger   *slog.Logger
	events   func(Event)
	pipeline bool
}

// WithRedact adds values to redact, besides every step's stdin. Values
// shorter than MinRedactLen bytes are not redacted (see MinRedactLen).
func WithRedact(values ...string) Option {
	return func(o *options) { o.redact = append(o.redact, values...) }
}

// WithLogger logs each step (name, index, outcome, redacted) to l.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithEvents calls fn as steps start and end. With pipelining the events
// arrive, in order, when the combined script returns.
func WithEvents(fn func(Event)) Option { return func(o *options) { o.events = fn } }

// WithPipelining turns the combined script on (the default) or off. Off,
// each step gets its own Runner.Run call: over SSH a session each, two or
// three round trips per step instead of about three for the whole list.
func WithPipelining(on bool) Option { return func(o *options) { o.pipeline = on } }

const stderrTail = 16 << 10

// run holds the state of one Run call.
type run struct {
	ctx   context.Context
	steps []Step
	o     options
	rd    *redactor
	log   *slog.Logger
}

// Run runs steps on r in order and stops at the first failure, which it
// returns as a *StepError naming the step. Before anything runs it checks
// every step: a constructor's error or an empty command fails with
// ErrInvalid; a command line or name that holds a value to redact (see
// below) fails with ErrSecretInCommand. Every value that travels in a step's Stdin, and every value
// given with WithRedact, is replaced by [REDACTED] in every error, log
// line, event and StepError field.
//
// By default the steps run as one /bin/sh script in a single Runner.Run
// call (see WithPipelining): the script stops at the first failing step
// and marks where each step's output starts and ends, so the failure is
// attributed to its step with its exit code and stderr. Cancelling ctx
// stops the script through the Runner. Stepwise, ctx is checked before
// each step.
func Run(ctx context.Context, r Runner, steps []Step, opts ...Option) error {
	o := options{pipeline: true}
	for _, f := range opts {
		f(&o)
	}
	ru := &run{ctx: ctx, steps: steps, o: o, rd: newRedactor(o.redact, steps), log: o.logger}
	if ru.log == nil {
		ru.log = slog.New(slog.DiscardHandler)
	}
	if ru.rd.skipped > 0 {
		ru.log.WarnContext(ctx, "inject: values too short to redact are left as they are", "count", ru.rd.skipped, "min_len", MinRedactLen)
	}
	for i, s := range steps {
		err := s.err
		if err == nil && s.Cmd == "" {
			err = fmt.Errorf("%w: empty command", ErrInvalid)
		}
		if err != nil {
			return &StepError{Step: ru.rd.String(s.Name), Index: i, ExitCode: -1, Err: ru.rd.Error(err)}
		}
	}
	for i, s := range steps {
		var where string
		switch {
		case ru.rd.String(s.Cmd) != s.Cmd:
			where = "command line"
		case ru.rd.String(s.Name) != s.Name:
			where = "name"
		default:
			continue
		}
		return &StepError{Step: ru.rd.String(s.Name), Index: i, ExitCode: -1,
			Err: fmt.Errorf("%w: the step's %s holds a value from a Stdin or WithRedact (pass it on stdin)", ErrSecretInCommand, where)}
	}
	if len(steps) == 0 {
		return nil
	}
	if sr, ok := r.(StepwiseRunner); ok && sr.Stepwise() {
		o.pipeline = false
	}
	if !o.pipeline || len(steps) == 1 {
		return ru.stepwise(r)
	}
	return ru.pipelined(r)
}

func (ru *run) stepwise(r Runner) error {
	for i, s := range ru.steps {
		if err := ru.ctx.Err(); err != nil {
			return ru.fail(i, -1, nil, err)
		}
		ru.started(i)
		ru.log.DebugContext(ru.ctx, "inject: run", "index", i, "step", ru.rd.String(s.Name), "cmd", ru.rd.String(s.Cmd))
		_, stderr, err := r.Run(ru.ctx, s.Cmd, bytes.NewReader(s.Stdin))
		if err != nil {
			if cerr := ru.ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
				err = fmt.Errorf("%w (%w)", cerr, err)
			}
			return ru.fail(i, exitCode(err), stderr, err)
		}
		ru.done(i)
	}
	return nil
}

func (ru *run) pipelined(r Runner) error {
	if err := ru.ctx.Err(); err != nil {
		return ru.fail(0, -1, nil, err)
	}
	nonce := newNonce()
	cmd, stdin := pipelineScript(ru.steps, nonce)
	ru.log.DebugContext(ru.ctx, "inject: run script", "steps", len(ru.steps), "cmd_bytes", len(cmd), "stdin_bytes", len(stdin))
	stdout, stderr, rerr := r.Run(ru.ctx, cmd, bytes.NewReader(stdin))
	if rerr != nil {
		if cerr := ru.ctx.Err(); cerr != nil && !errors.Is(rerr, cerr) {
			rerr = fmt.Errorf("%w (%w)", cerr, rerr)
		}
	}
	pre, res, perr := results(stdout, stderr, nonce, len(ru.steps))
	for i, s := range res {
		switch {
		case s.ended && s.code == 0:
			ru.started(i)
			ru.done(i)
			continue
		case s.ended:
			ru.started(i)
			err := rerr
			if err == nil {
				err = fmt.Errorf("%w: script exited 0 after step %d failed", ErrProtocol, i)
			}
			return ru.fail(i, s.code, s.stderr, err)
		case s.started:
			ru.started(i)
			err := rerr
			if err == nil {
				err = fmt.Errorf("%w: step %d did not end", ErrProtocol, i)
			}
			return ru.fail(i, -1, s.stderr, err)
		}
		// The step never started: the script died, never ran, or its
		// output is garbled. Whatever the shell said before the first
		// marker is the best explanation.
		err := errors.Join(rerr, perr)
		if err == nil {
			err = fmt.Errorf("%w: the script ended before step %d", ErrProtocol, i)
		}
		ru.started(i)
		return ru.fail(i, exitCode(rerr), pre, err)
	}
	if rerr != nil {
		// Every step reported success; only the session's end went wrong.
		ru.log.WarnContext(ru.ctx, "inject: every step succeeded but the session ended with an error", "err", ru.rd.String(rerr.Error()))
	}
	return nil
}

func (ru *run) started(i int) {
	if ru.o.events != nil {
		ru.o.events(Event{Index: i, Step: ru.rd.String(ru.steps[i].Name)})
	}
}

func (ru *run) done(i int) {
	name := ru.rd.String(ru.steps[i].Name)
	ru.log.InfoContext(ru.ctx, "inject: step done", "index", i, "step", name)
	if ru.o.events != nil {
		ru.o.events(Event{Index: i, Step: name, Done: true})
	}
}

func (ru *run) fail(i, code int, stderr []byte, err error) error {
	se := &StepError{
		Step:     ru.rd.String(ru.steps[i].Name),
		Index:    i,
		ExitCode: code,
		Stderr:   ru.rd.tail(stderr, stderrTail),
		Err:      ru.rd.Error(err),
	}
	ru.log.ErrorContext(ru.ctx, "inject: step failed", "index", i, "step", se.Step, "exit_code", code, "err", se.Error())
	if ru.o.events != nil {
		ru.o.events(Event{Index: i, Step: se.Step, Done: true, Err: se})
	}
	return se
}

// exitCode finds the exit code in a Runner's error, or -1.
func exitCode(err error) int {
	if err == nil {
		return -1
	}
	var st interface{ ExitStatus() int }
	if errors.As(err, &st) {
		return st.ExitStatus()
	}
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return -1
}
