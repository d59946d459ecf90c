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
	Index int    // the step's index in the list, from 0 (messages and logs say step Index+1)
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
	first    int
}

// WithRedact adds secret values to redact, besides every step's stdin:
// each is found with and without its surrounding white space, in its
// common encodings, wrapped over lines, and, from RedactWindow bytes on,
// by any fragment of RedactWindow bytes or more (see the package doc's
// Security section). Values shorter than MinRedactLen bytes are not
// redacted (see MinRedactLen). Pass every secret of the tenant, not only
// those that travel in this Run.
func WithRedact(values ...string) Option {
	return func(o *options) { o.redact = append(o.redact, values...) }
}

// WithLogger logs each step (its number from 1 as "step", its name,
// outcome, all redacted) to l.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithEvents calls fn as steps start and end, in order. With pipelining
// and a StreamRunner (such as *SSH) the events arrive as the combined
// script's output reports them, while it runs; with a plain Runner, when
// the script returns. fn may be called from the goroutine that reads the
// output: it must return quickly.
func WithEvents(fn func(Event)) Option { return func(o *options) { o.events = fn } }

// WithFirstIndex numbers the steps from first instead of 0 in Events,
// StepErrors and logs, for a list that continues the steps of an earlier
// Run (so that step numbers agree across both).
func WithFirstIndex(first int) Option { return func(o *options) { o.first = max(first, 0) } }

// WithPipelining turns the combined script on (the default) or off. Off,
// each step runs as a script of its own, in its own Runner.Run call: over
// SSH a session each, two or three round trips per step instead of about
// three for the whole list.
func WithPipelining(on bool) Option { return func(o *options) { o.pipeline = on } }

// stderrTail is the most of a failing step's stderr that StepError
// keeps; rawTail is what Run keeps of it as it arrives, a little more, so
// that a secret cut short by the tail's start is seen whole more often.
const (
	stderrTail = 16 << 10
	rawTail    = stderrTail + 4<<10
)

// run holds the state of one Run call.
type run struct {
	ctx   context.Context
	steps []Step
	o     options
	rd    *redactor
	log   *slog.Logger
	// reported marks the steps whose start (1) and success (2) were
	// reported already: as the script's markers arrive, or after it ends.
	reported []uint8
}

// Run runs steps on r in order and stops at the first failure, which it
// returns as a *StepError naming the step. Before anything runs it checks
// every step: a constructor's error or an empty command fails with
// ErrInvalid; a command line or name that holds a value to redact (see
// below) fails with ErrSecretInCommand.
//
// Every value given with WithRedact is redacted, with its common
// encodings and long fragments, from every error, log line, event and
// StepError field; every step's Stdin is too, whole (see the package
// doc's Security section).
//
// By default the steps run as one /bin/sh script in a single Runner.Run
// (or StreamRunner.Stream) call (see WithPipelining): the script stops
// at the first failing step and marks where each step's output starts
// and ends, so the failure is attributed to its step with its exit code
// and stderr. Run keeps only a bounded tail of the output, as it arrives
// from a StreamRunner such as *SSH. Cancelling ctx stops the script
// through the Runner, and the script stops itself when its session goes
// away. Stepwise, ctx is checked before each step.
func Run(ctx context.Context, r Runner, steps []Step, opts ...Option) error {
	o := options{pipeline: true}
	for _, f := range opts {
		f(&o)
	}
	ru := &run{ctx: ctx, steps: steps, o: o, rd: newRedactor(o.redact, steps), log: o.logger, reported: make([]uint8, len(steps))}
	if ru.log == nil {
		ru.log = slog.New(slog.DiscardHandler)
	}
	if n := ru.rd.Skipped(); n > 0 {
		ru.log.WarnContext(ctx, "inject: values too short to redact are left as they are", "count", n, "min_len", MinRedactLen)
	}
	for i, s := range steps {
		err := s.err
		if err == nil && s.Cmd == "" {
			err = fmt.Errorf("%w: empty command", ErrInvalid)
		}
		if err != nil {
			return &StepError{Step: ru.rd.String(s.Name), Index: i + ru.o.first, ExitCode: -1, Err: ru.rd.Error(err)}
		}
	}
	for i, s := range steps {
		var where string
		switch {
		case ru.rd.Holds(s.Cmd):
			where = "command line"
		case ru.rd.Holds(s.Name):
			where = "name"
		default:
			continue
		}
		return &StepError{Step: ru.rd.String(s.Name), Index: i + ru.o.first, ExitCode: -1,
			Err: fmt.Errorf("%w: the step's %s holds a value from a Stdin or WithRedact (pass it on stdin)", ErrSecretInCommand, where)}
	}
	if len(steps) == 0 {
		return nil
	}
	if sr, ok := r.(StepwiseRunner); ok && sr.Stepwise() {
		return ru.commands(r)
	}
	if !o.pipeline {
		for i := range steps {
			if err := ru.script(r, i, i+1); err != nil {
				return err
			}
		}
		return nil
	}
	return ru.script(r, 0, len(steps))
}

// commands runs each step's own command in a Runner call of its own, for
// a StepwiseRunner.
func (ru *run) commands(r Runner) error {
	for i, s := range ru.steps {
		if err := ru.ctx.Err(); err != nil {
			return ru.fail(i, -1, nil, false, err)
		}
		ru.started(i)
		ru.log.DebugContext(ru.ctx, "inject: run", "step", ru.o.first+i+1, "name", ru.rd.String(s.Name), "cmd", ru.rd.String(s.Cmd))
		stderr := tailBuffer{max: rawTail}
		err := runStream(ru.ctx, r, s.Cmd, bytes.NewReader(s.Stdin), nil, &stderr)
		if err != nil {
			if cerr := ru.ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
				err = fmt.Errorf("%w (%w)", cerr, err)
			}
			return ru.fail(i, exitCode(err), stderr.Bytes(), stderr.Cut(), err)
		}
		ru.done(i)
	}
	return nil
}

// runStream runs cmd on r, through Stream when r is a StreamRunner.
func runStream(ctx context.Context, r Runner, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if sr, ok := r.(StreamRunner); ok {
		return sr.Stream(ctx, cmd, stdin, stdout, stderr)
	}
	out, errs, err := r.Run(ctx, cmd, stdin)
	if stdout != nil {
		stdout.Write(out)
	}
	if stderr != nil {
		stderr.Write(errs)
	}
	return err
}

// script runs steps[from:to] as one script.
func (ru *run) script(r Runner, from, to int) error {
	if err := ru.ctx.Err(); err != nil {
		return ru.fail(from, -1, nil, false, err)
	}
	n := to - from
	nonce := newNonce()
	cmd, stdin := pipelineScript(ru.steps[from:to], nonce)
	if n > 1 {
		ru.log.DebugContext(ru.ctx, "inject: run script", "steps", n, "cmd_bytes", len(cmd), "stdin_bytes", len(stdin))
	} else {
		s := ru.steps[from]
		ru.log.DebugContext(ru.ctx, "inject: run", "step", ru.o.first+from+1, "name", ru.rd.String(s.Name), "cmd", ru.rd.String(s.Cmd))
	}
	out := newStream(markerTag(nonce), n, 0)
	errs := newStream(markerTag(nonce), n, rawTail)
	// Report progress as stdout's markers arrive, while the script runs
	// (from a StreamRunner; a Runner hands the output over at the end).
	// What is left, and every failure, is reported from the results below.
	start, end := out.start, out.end
	out.start = func(sec int) { start(sec); ru.started(from + sec) }
	out.end = func(sec, code int) {
		end(sec, code)
		if code == 0 {
			ru.done(from + sec)
		}
	}
	rerr := runStream(ru.ctx, r, cmd, bytes.NewReader(stdin), out, errs)
	out.Close()
	errs.Close()
	if rerr != nil {
		if cerr := ru.ctx.Err(); cerr != nil && !errors.Is(rerr, cerr) {
			rerr = fmt.Errorf("%w (%w)", cerr, rerr)
		}
	}
	pre, preCut, res, perr := results(out, errs, n)
	// Output over its limit: the step running when the stream that
	// passed it stopped is to blame, even if the other stream, read
	// further, says it ended well.
	limitAt := -1
	var le *OutputLimitError
	if errors.As(rerr, &le) {
		switch le.Stream {
		case "stdout":
			limitAt = out.secs - 1
		case "stderr":
			limitAt = errs.secs - 1
		default:
			limitAt = max(out.secs, errs.secs) - 1
		}
		limitAt = max(limitAt, 0)
	}
	for k, s := range res {
		i := from + k
		if k == limitAt {
			ru.started(i)
			return ru.fail(i, -1, s.stderr, s.cut, rerr)
		}
		switch {
		case s.ended && s.code == 0:
			ru.started(i)
			ru.done(i)
			continue
		case s.ended:
			ru.started(i)
			err := rerr
			if err == nil {
				err = fmt.Errorf("%w: script exited 0 after step %d failed", ErrProtocol, ru.o.first+i+1)
			}
			return ru.fail(i, s.code, s.stderr, s.cut, err)
		case s.started:
			ru.started(i)
			err := rerr
			if err == nil {
				err = fmt.Errorf("%w: step %d did not end", ErrProtocol, ru.o.first+i+1)
			}
			return ru.fail(i, -1, s.stderr, s.cut, err)
		}
		// The step never started: the script died, never ran, or its
		// output is garbled. Whatever the shell said before the first
		// marker is the best explanation.
		err := errors.Join(rerr, perr)
		if err == nil {
			err = fmt.Errorf("%w: the script ended before step %d", ErrProtocol, ru.o.first+i+1)
		}
		ru.started(i)
		return ru.fail(i, exitCode(rerr), pre, preCut, err)
	}
	if rerr != nil {
		// Every step reported success; only the session's end went wrong.
		ru.log.WarnContext(ru.ctx, "inject: every step succeeded but the session ended with an error", "err", ru.rd.String(rerr.Error()))
	}
	return nil
}

func (ru *run) started(i int) {
	if ru.reported[i] >= 1 {
		return
	}
	ru.reported[i] = 1
	if ru.o.events != nil {
		ru.o.events(Event{Index: i + ru.o.first, Step: ru.rd.String(ru.steps[i].Name)})
	}
}

func (ru *run) done(i int) {
	if ru.reported[i] >= 2 {
		return
	}
	ru.reported[i] = 2
	name := ru.rd.String(ru.steps[i].Name)
	ru.log.InfoContext(ru.ctx, "inject: step done", "step", ru.o.first+i+1, "name", name)
	if ru.o.events != nil {
		ru.o.events(Event{Index: i + ru.o.first, Step: name, Done: true})
	}
}

// fail returns the *StepError of step i; stderr is a tail of the step's
// stderr, cut when it lost its start.
func (ru *run) fail(i, code int, stderr []byte, cut bool, err error) error {
	se := &StepError{
		Step:     ru.rd.String(ru.steps[i].Name),
		Index:    i + ru.o.first,
		ExitCode: code,
		Stderr:   ru.rd.text(stderr, cut, stderrTail),
		Err:      ru.rd.Error(err),
	}
	ru.log.ErrorContext(ru.ctx, "inject: step failed", "step", ru.o.first+i+1, "name", se.Step, "exit_code", code, "err", se.Error())
	if ru.o.events != nil {
		ru.o.events(Event{Index: i + ru.o.first, Step: se.Step, Done: true, Err: se})
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
