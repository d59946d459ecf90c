package inject

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// The pipelined path sends the whole step list as one /bin/sh script in
// one SSH session: a session costs about three round trips however many
// steps it runs, where a session per step costs two or three each.
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

// frameExit is the exit code a step gets when its stdin frame tag does not
// follow its bytes.
const frameExit = 125

// newNonce returns the random part of the marker tag, so that output of a
// step cannot pass for a marker by accident.
func newNonce() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func markerTag(nonce string) string { return "hatchery-" + nonce }
func frameTag(nonce string) string  { return "#frame-" + nonce + "#" }

// pipelineScript returns the command line that runs steps as one script,
// and the bytes to send on its stdin.
func pipelineScript(steps []Step, nonce string) (cmd string, stdin []byte) {
	tag, frame := markerTag(nonce), frameTag(nonce)
	var b strings.Builder
	b.WriteString("M=" + tag + "\n")
	b.WriteString(`m() { printf "\n%s %s\n" "$M" "$*"; printf "\n%s %s\n" "$M" "$*" >&2; }` + "\n")
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
	return "/bin/sh -c " + Quote(b.String()), stdin
}

// section is one step's share of a stream of the script's output.
type section struct {
	started, ended bool
	code           int
	out            []byte
}

// parseStream splits one output stream of the script (stdout or stderr)
// at its markers. pre is what came before the first marker (a shell's
// complaint about the script, say). A stream cut short, even in the middle
// of a marker, parses as far as it goes; markers out of order are an
// error wrapping ErrProtocol.
func parseStream(b []byte, tag string) (pre []byte, secs []section, err error) {
	sep := []byte("\n" + tag + " ")
	cur := &pre
	for len(b) > 0 {
		i := bytes.Index(b, sep)
		if i < 0 {
			*cur = append(*cur, b...)
			break
		}
		*cur = append(*cur, b[:i]...)
		b = b[i+len(sep):]
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			break // the stream ended inside a marker
		}
		body := string(b[:nl])
		b = b[nl+1:]
		f := strings.Split(body, " ")
		switch {
		case len(f) == 2 && f[0] == "start":
			idx, ok := atoi(f[1])
			if !ok || idx != len(secs) || (idx > 0 && !secs[idx-1].ended) {
				return pre, secs, fmt.Errorf("%w: unexpected marker %q", ErrProtocol, body)
			}
			secs = append(secs, section{started: true})
		case len(f) == 3 && f[0] == "end":
			idx, ok1 := atoi(f[1])
			code, ok2 := atoi(f[2])
			if !ok1 || !ok2 || code > 255 || idx != len(secs)-1 || secs[idx].ended {
				return pre, secs, fmt.Errorf("%w: unexpected marker %q", ErrProtocol, body)
			}
			secs[idx].ended, secs[idx].code = true, code
		default:
			return pre, secs, fmt.Errorf("%w: unexpected marker %q", ErrProtocol, body)
		}
		cur = &secs[len(secs)-1].out
	}
	return pre, secs, nil
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

// formatStream renders sections as the script prints them; the inverse of
// parseStream, for tests and fuzzing.
func formatStream(pre []byte, secs []section, tag string) []byte {
	var b bytes.Buffer
	b.Write(pre)
	for i, s := range secs {
		fmt.Fprintf(&b, "\n%s start %d\n", tag, i)
		if s.ended {
			// The step's output comes before its end marker.
			b.Write(s.out)
			fmt.Fprintf(&b, "\n%s end %d %d\n", tag, i, s.code)
		} else {
			b.Write(s.out)
		}
	}
	return b.Bytes()
}

// stepResult is what both streams say about one step.
type stepResult struct {
	started, ended bool
	code           int
	stdout, stderr []byte
}

// results combines the parsed stdout and stderr of a script run for n
// steps. Markers are printed to both streams; they must agree.
func results(stdout, stderr []byte, nonce string, n int) (pre []byte, res []stepResult, err error) {
	tag := markerTag(nonce)
	_, outs, oerr := parseStream(stdout, tag)
	pre, errs, eerr := parseStream(stderr, tag)
	res = make([]stepResult, n)
	if len(outs) > n || len(errs) > n {
		return pre, res, fmt.Errorf("%w: markers for %d steps, only %d sent", ErrProtocol, max(len(outs), len(errs)), n)
	}
	for i := range res {
		r := &res[i]
		if i < len(outs) {
			o := outs[i]
			r.started, r.ended, r.code, r.stdout = true, o.ended, o.code, o.out
		}
		if i < len(errs) {
			e := errs[i]
			if r.ended && e.ended && r.code != e.code {
				return pre, res, fmt.Errorf("%w: step %d ended with code %d on stdout, %d on stderr", ErrProtocol, i, r.code, e.code)
			}
			if e.ended {
				r.ended, r.code = true, e.code
			}
			r.started, r.stderr = true, e.out
		}
	}
	if oerr != nil {
		return pre, res, oerr
	}
	return pre, res, eerr
}
