package inject

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// StreamRunner is an optional interface: a Runner that writes a command's
// output to stdout and stderr as it arrives, instead of returning it.
// Run uses it when the Runner has it, so that it keeps only what it needs
// of the output (the step markers and a bounded tail of stderr) however
// much the server sends. *SSH implements it.
//
// Stream may write to stdout and stderr from two goroutines, but never
// after it returns; it returns errors as Run does (an ExitStatus or
// ExitCode method for a non-zero exit).
type StreamRunner interface {
	Runner
	Stream(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
}

// OutputLimitError reports a session whose output, stdout and stderr
// together, passed its limit (SSHConfig.MaxOutput): the session was
// closed, which stops the command. From Run it is the Err of the
// *StepError that names the step that was running.
type OutputLimitError struct {
	Limit  int64  // bytes
	Stream string // "stdout" or "stderr": the one whose write passed the limit
}

func (e *OutputLimitError) Error() string {
	return fmt.Sprintf("the command's output passed the limit of %d bytes; session closed", e.Limit)
}

// errOutputClosed is what a late write into a finished Stream gets.
var errOutputClosed = errors.New("output no longer read")

// output passes a session's stdout and stderr on to the caller's writers,
// one write at a time, counting the bytes against a limit, and stops
// passing anything once closed.
type output struct {
	mu     sync.Mutex
	n      int64
	limit  int64 // < 0: none
	closed bool
	err    *OutputLimitError
	abort  func() // called once, when the limit is passed
}

// writer returns a writer for the stream name that passes to w (nil:
// discards).
func (o *output) writer(name string, w io.Writer) io.Writer {
	if w == nil {
		w = io.Discard
	}
	return &outputWriter{o: o, w: w, name: name}
}

type outputWriter struct {
	o    *output
	w    io.Writer
	name string
}

func (ow *outputWriter) Write(p []byte) (int, error) {
	o := ow.o
	o.mu.Lock()
	if o.closed || o.err != nil {
		o.mu.Unlock()
		return 0, errOutputClosed
	}
	over := false
	n := len(p)
	if o.limit >= 0 && o.n+int64(n) > o.limit {
		n = int(o.limit - o.n)
		over = true
	}
	o.n += int64(n)
	written, err := ow.w.Write(p[:n])
	if over {
		o.err = &OutputLimitError{Limit: o.limit, Stream: ow.name}
	}
	o.mu.Unlock()
	if over {
		o.abort()
		return written, o.err
	}
	return written, err
}

// close makes every later write fail, after the one in progress.
func (o *output) close() *OutputLimitError {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	return o.err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
	cut bool // bytes were dropped from the start
}

// Write keeps the end of p; it never fails.
func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	switch {
	case n == 0:
	case n >= t.max:
		t.cut = t.cut || len(t.b) > 0 || n > t.max
		t.b = append(t.b[:0], p[n-t.max:]...)
	case len(t.b)+n > 2*t.max:
		// Keep what is wanted of the old bytes at the front, then
		// append: at most 2*max bytes are ever held.
		keep := t.max - n
		copy(t.b, t.b[len(t.b)-keep:])
		t.b = append(t.b[:keep], p...)
		t.cut = true
	default:
		if cap(t.b) < len(t.b)+n {
			b := make([]byte, len(t.b), min(2*t.max, max(2*cap(t.b), len(t.b)+n)))
			copy(b, t.b)
			t.b = b
		}
		t.b = append(t.b, p...)
	}
	return n, nil
}

// Bytes returns the last max bytes written.
func (t *tailBuffer) Bytes() []byte {
	if len(t.b) > t.max {
		return t.b[len(t.b)-t.max:]
	}
	return t.b
}

// Cut reports whether bytes before Bytes were dropped.
func (t *tailBuffer) Cut() bool { return t.cut || len(t.b) > t.max }

// Reset empties the buffer.
func (t *tailBuffer) Reset() { t.b, t.cut = t.b[:0], false }
