package inject

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Run sends a list of steps as one /bin/sh script in one SSH session (or,
// stepwise, each step as a script of its own): a session costs about
// three round trips however many steps it runs, where a session per step
// costs two or three each.
//
// The script carries only the steps' command lines (paths, lengths,
// modes), never stdin bytes. Every step's stdin travels, in order, on the
// session's stdin: the script hands each step exactly its length with
// `head -c N`, drains what the step leaves unread, then checks a frame tag
// that follows the step's bytes, so a short or over-long read can never
// feed one step's bytes to the next. Each step runs in a subshell; the
// script writes a marker line before and after it on both stdout and
// stderr (the end marker carries the exit code) and stops at the first
// step that fails, exiting with its code.
//
// The script runs in a session (and so a process group) of its own,
// started with setsid by a small wrapper that waits for it and passes on
// the signals it gets. A watchdog in the script writes a probe marker on
// stdout every second; when the write fails, the SSH session is gone
// (cancelled, or the connection lost) and the watchdog sends SIGTERM to
// the script's process group, so the steps stop whether or not sshd
// delivered the client's signal (it refuses to when the user is root,
// without privilege separation, or under ForceCommand). The watchdog only
// arms itself under setsid, where the process group is the script's own,
// so it never signals processes that are not the script's.
//
// Run reads both streams as they arrive and keeps only the markers, what
// came before the first one (a shell's complaint about the script) and a
// bounded tail of the running step's stderr: a step's output costs no
// memory however long it is.

// frameExit is the exit code a step gets when its stdin frame tag does not
// follow its bytes.
const frameExit = 125

// probeInterval is the watchdog's period, in seconds: how long after its
// session went away a step may go on running.
const probeInterval = "1"

// newNonce returns the random part of the marker tag, so that output of a
// step cannot pass for a marker by accident.
func newNonce() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func markerTag(nonce string) string { return "hatchery-" + nonce }
func frameTag(nonce string) string  { return "#frame-" + nonce + "#" }

// wrapper runs the script given as $1 in a session of its own when
// setsid is there (naming it hatchery-setsid, its $0), waits for it and
// passes SIGHUP, SIGINT and SIGTERM on to its process group; without
// setsid it runs the script in its place. The script's stdin is the
// session's: an asynchronous command's would be /dev/null.
const wrapper = `if command -v setsid >/dev/null 2>&1; then
exec 3<&0
setsid /bin/sh -c "$1" hatchery-setsid <&3 3<&- &
p=$!
exec 3<&- </dev/null
trap 'kill -TERM -$p 2>/dev/null' HUP INT TERM
while :; do wait $p; r=$?; kill -0 $p 2>/dev/null || exit $r; done
fi
exec /bin/sh -c "$1" hatchery
`

// watchdog starts, when the script runs under setsid (and so leads a
// process group that holds nothing but it and its children), a
// background probe of its stdout that sends SIGTERM to the group once
// the probe cannot be written (the session is gone); the script stops it
// when it exits. The probe and its sleep keep no other descriptor of the
// session open, so that the session ends when the script does.
const watchdog = `w=
if [ "$0" = hatchery-setsid ]; then
( trap '' PIPE; while sleep ` + probeInterval + ` >/dev/null 2>&1; do printf '\n%s alive\n' "$M" || break; done; kill -TERM 0 ) 2>/dev/null &
w=$!
fi
trap '[ -z "$w" ] || kill $w 2>/dev/null' EXIT
`

// pipelineScript returns the command line that runs steps as one script,
// and the bytes to send on its stdin.
func pipelineScript(steps []Step, nonce string) (cmd string, stdin []byte) {
	tag, frame := markerTag(nonce), frameTag(nonce)
	var b strings.Builder
	b.WriteString("M=" + tag + "\n")
	b.WriteString(`m() { printf "\n%s %s\n" "$M" "$*"; printf "\n%s %s\n" "$M" "$*" >&2; }` + "\n")
	b.WriteString(watchdog)
	size := 0
	for _, s := range steps {
		if len(s.Stdin) > 0 {
			size += len(s.Stdin) + len(frame)
		}
	}
	stdin = make([]byte, 0, size)
	for i, s := range steps {
		n := strconv.Itoa(i)
		b.WriteString("m start " + n + "\n")
		if len(s.Stdin) == 0 {
			b.WriteString("(\n" + s.Cmd + "\n) </dev/null\nr=$?\n")
		} else {
			b.WriteString("head -c " + strconv.Itoa(len(s.Stdin)) + " | ( (\n" + s.Cmd + "\n); r=$?; cat >/dev/null; exit $r )\nr=$?\n")
			b.WriteString(`[ $r -ne 0 ] || [ "$(head -c ` + strconv.Itoa(len(frame)) + `)" = "` + frame + `" ] || { printf "hatchery: stdin of this step lost its framing\n" >&2; r=` + strconv.Itoa(frameExit) + "; }\n")
			stdin = append(append(stdin, s.Stdin...), frame...)
		}
		b.WriteString("m end " + n + " $r\n")
		b.WriteString("[ $r -eq 0 ] || exit $r\n")
	}
	b.WriteString("exit 0\n")
	return "/bin/sh -c " + Quote(wrapper) + " hatchery " + Quote(b.String()), stdin
}

// maxMarker bounds a marker line after the tag: "end 999999999 255".
const maxMarker = 32

// markers splits one output stream of a step script (stdout or stderr)
// at its markers as the bytes arrive, holding back only what may be the
// start of a marker, and reports output, starts and ends to its
// functions. Output before the first marker goes to section -1. A
// stream cut short, even in the middle of a marker, parses as far as it
// goes; markers out of order, or for more than n steps, are an error
// wrapping ErrProtocol, after which the rest of the stream is ignored.
type markers struct {
	sep   []byte // "\n" + tag + " "
	n     int
	hold  []byte
	secs  int  // sections started
	ended bool // the last section started has ended
	err   error

	output func(sec int, p []byte)
	start  func(sec int)
	end    func(sec, code int)
}

func newMarkers(tag string, n int) markers {
	return markers{sep: []byte("\n" + tag + " "), n: n}
}

// Write parses p; it never fails.
func (m *markers) Write(p []byte) (int, error) {
	if m.err != nil {
		return len(p), nil
	}
	data := p
	if len(m.hold) > 0 {
		m.hold = append(m.hold, p...)
		data = m.hold
	}
	rest := m.scan(data)
	m.hold = append(m.hold[:0], rest...)
	return len(p), nil
}

// Close ends the stream: what is held back is output, unless it is an
// unfinished marker.
func (m *markers) Close() {
	if m.err == nil && len(m.hold) > 0 && !bytes.HasPrefix(m.hold, m.sep) {
		m.emit(m.hold)
	}
	m.hold = nil
}

// scan parses data and returns its end that may start a marker.
func (m *markers) scan(data []byte) []byte {
	for {
		i := bytes.Index(data, m.sep)
		if i < 0 {
			k := partialPrefix(data, m.sep)
			m.emit(data[:len(data)-k])
			return data[len(data)-k:]
		}
		m.emit(data[:i])
		body := data[i+len(m.sep):]
		nl := bytes.IndexByte(body[:min(len(body), maxMarker+1)], '\n')
		if nl < 0 {
			if len(body) > maxMarker {
				m.err = fmt.Errorf("%w: marker longer than %d bytes", ErrProtocol, maxMarker)
				return nil
			}
			return data[i:]
		}
		m.marker(string(body[:nl]))
		if m.err != nil {
			return nil
		}
		data = body[nl+1:]
	}
}

// partialPrefix returns the length of the longest end of data that is
// the start (not the whole) of sep, which begins with a line break.
func partialPrefix(data, sep []byte) int {
	for k := min(len(data), len(sep)-1); k > 0; k-- {
		if data[len(data)-k] == '\n' && bytes.Equal(data[len(data)-k:], sep[:k]) {
			return k
		}
	}
	return 0
}

func (m *markers) emit(p []byte) {
	if len(p) > 0 && m.output != nil {
		m.output(m.secs-1, p)
	}
}

func (m *markers) marker(body string) {
	f := strings.Split(body, " ")
	switch {
	case body == "alive": // the watchdog's probe
		return
	case len(f) == 2 && f[0] == "start":
		idx, ok := atoi(f[1])
		if ok && idx == m.secs && (idx == 0 || m.ended) {
			if idx >= m.n {
				m.err = fmt.Errorf("%w: a marker for step %d, only %d sent", ErrProtocol, idx+1, m.n)
				return
			}
			m.secs++
			m.ended = false
			if m.start != nil {
				m.start(idx)
			}
			return
		}
	case len(f) == 3 && f[0] == "end":
		idx, ok1 := atoi(f[1])
		code, ok2 := atoi(f[2])
		if ok1 && ok2 && code <= 255 && idx == m.secs-1 && !m.ended {
			m.ended = true
			if m.end != nil {
				m.end(idx, code)
			}
			return
		}
	}
	m.err = fmt.Errorf("%w: unexpected marker %q", ErrProtocol, body)
}

// atoi parses a non-negative decimal number of at most 9 digits, without
// sign or leading zeros.
func atoi(s string) (int, bool) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// stream is what Run keeps of one output stream of a step script: which
// steps started and ended, with what code, and bounded tails of what came
// before the first marker and of the output of the last step started.
type stream struct {
	markers
	steps    []stepMark
	pre, cur tailBuffer
}

type stepMark struct {
	started, ended bool
	code           int
}

// newStream follows a script of n steps, keeping tails of keep bytes (0:
// markers only).
func newStream(tag string, n, keep int) *stream {
	s := &stream{markers: newMarkers(tag, n), steps: make([]stepMark, n), pre: tailBuffer{max: keep}, cur: tailBuffer{max: keep}}
	s.output = func(sec int, p []byte) {
		if sec < 0 {
			s.pre.Write(p)
		} else {
			s.cur.Write(p)
		}
	}
	s.start = func(sec int) {
		s.steps[sec].started = true
		s.cur.Reset()
	}
	s.end = func(sec, code int) { s.steps[sec].ended, s.steps[sec].code = true, code }
	return s
}

// stepResult is what both streams say about one step.
type stepResult struct {
	started, ended bool
	code           int
	stderr         []byte // a tail, for the last step started
	cut            bool   // stderr lost its start
}

// results combines the stdout and stderr of a script run for n steps.
// Markers are printed to both streams; they must agree. pre is the
// stderr before the first marker.
func results(out, errs *stream, n int) (pre []byte, preCut bool, res []stepResult, err error) {
	pre, preCut = errs.pre.Bytes(), errs.pre.Cut()
	res = make([]stepResult, n)
	for i := range res {
		r, o, e := &res[i], out.steps[i], errs.steps[i]
		r.started, r.ended, r.code = o.started, o.ended, o.code
		if e.started {
			if r.ended && e.ended && r.code != e.code {
				return pre, preCut, res, fmt.Errorf("%w: step %d ended with code %d on stdout, %d on stderr", ErrProtocol, i+1, r.code, e.code)
			}
			if e.ended {
				r.ended, r.code = true, e.code
			}
			r.started = true
			if i == errs.secs-1 {
				r.stderr, r.cut = errs.cur.Bytes(), errs.cur.Cut()
			}
		}
	}
	if out.err != nil {
		return pre, preCut, res, out.err
	}
	return pre, preCut, res, errs.err
}

// section is one step's share of a stream of the script's output, whole:
// what parseStream returns, for tests.
type section struct {
	started, ended bool
	code           int
	out            []byte
}

// parseStream parses a whole stream at once, keeping all of it: the
// reference Run's streaming parse is tested against.
func parseStream(b []byte, tag string) (pre []byte, secs []section, err error) {
	m := newMarkers(tag, 1<<30)
	m.output = func(sec int, p []byte) {
		if sec < 0 {
			pre = append(pre, p...)
		} else {
			secs[sec].out = append(secs[sec].out, p...)
		}
	}
	m.start = func(int) { secs = append(secs, section{started: true}) }
	m.end = func(sec, code int) { secs[sec].ended, secs[sec].code = true, code }
	m.Write(b)
	m.Close()
	return pre, secs, m.err
}

// formatStream renders sections as the script prints them; the inverse of
// parseStream, for tests and fuzzing.
func formatStream(pre []byte, secs []section, tag string) []byte {
	var b bytes.Buffer
	b.Write(pre)
	for i, s := range secs {
		fmt.Fprintf(&b, "\n%s start %d\n", tag, i)
		b.Write(s.out)
		if s.ended {
			fmt.Fprintf(&b, "\n%s end %d %d\n", tag, i, s.code)
		}
	}
	return b.Bytes()
}
