package inject

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// rachelSteps is a typical injection: nine steps, two secret files.
func rachelSteps() []Step {
	return []Step{
		WaitCloudInit(false),
		Mkdir("/home/rachel/app", 0o750, Owner("rachel:rachel")),
		WriteFile("/home/rachel/app/.env", []byte("ANTHROPIC_API_KEY=sk-ant-secret\nTELEGRAM_TOKEN=123:abc\n"), 0o600, Owner("rachel:rachel")),
		WriteFile("/home/rachel/.config/gh/hosts.yml", []byte("github.com:\n  oauth_token: gho_secret\n"), 0o600, Owner("rachel")),
		InstallUnit("rachel8.service", []byte("[Unit]\nDescription=Rachel8\n[Service]\nExecStart=/home/rachel/.bun/bin/bun run start\n")),
		DaemonReload(),
		EnableUnit("rachel8.service"),
		RestartUnit("rachel8.service"),
		CheckActive("rachel8.service", 5*time.Second),
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create it")
	assert.Equal(t, string(want), string(got))
}

func TestPipelineScriptGolden(t *testing.T) {
	t.Parallel()
	steps := rachelSteps()
	cmd, stdin := pipelineScript(steps, "0123456789abcdef01234567")
	golden(t, "rachel.cmd", []byte(cmd+"\n"))

	// Secrets travel in stdin only, framed.
	for _, s := range []string{"sk-ant-secret", "gho_secret", "123:abc"} {
		assert.NotContains(t, cmd, s)
		assert.Contains(t, string(stdin), s)
	}
	var want []byte
	for _, s := range steps {
		if len(s.Stdin) > 0 {
			want = append(append(want, s.Stdin...), frameTag("0123456789abcdef01234567")...)
		}
	}
	assert.Equal(t, want, stdin)
}

func TestStepsGolden(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	for _, s := range rachelSteps() {
		b.WriteString("# " + s.Name + "\n" + s.Cmd + "\n\n")
	}
	golden(t, "rachel.steps", b.Bytes())
}

func TestParseStream(t *testing.T) {
	t.Parallel()
	const tag = "hatchery-n"
	tests := []struct {
		name    string
		in      string
		pre     string
		secs    []section
		wantErr bool
	}{
		{name: "empty"},
		{name: "only pre", in: "sh: syntax error\n", pre: "sh: syntax error\n"},
		{
			name: "two steps",
			in:   "\nhatchery-n start 0\nout0\n\nhatchery-n end 0 0\n\nhatchery-n start 1\nno newline\nhatchery-n end 1 3\n",
			secs: []section{{started: true, ended: true, code: 0, out: []byte("out0\n")}, {started: true, ended: true, code: 3, out: []byte("no newline")}},
		},
		{
			name: "cut inside a step",
			in:   "\nhatchery-n start 0\nhalf",
			secs: []section{{started: true, out: []byte("half")}},
		},
		{
			name: "cut inside a marker",
			in:   "\nhatchery-n start 0\nout\nhatchery-n en",
			secs: []section{{started: true, out: []byte("out")}},
		},
		{
			name: "marker-like output of another run",
			in:   "\nhatchery-n start 0\n\nhatchery-m end 0 0\n\nhatchery-n end 0 0\n",
			secs: []section{{started: true, ended: true, out: []byte("\nhatchery-m end 0 0\n")}},
		},
		{name: "end before start", in: "\nhatchery-n end 0 0\n", wantErr: true},
		{name: "skipped index", in: "\nhatchery-n start 1\n", wantErr: true},
		{name: "start before end", in: "\nhatchery-n start 0\n\nhatchery-n start 1\n", wantErr: true},
		{name: "bad code", in: "\nhatchery-n start 0\n\nhatchery-n end 0 256\n", wantErr: true},
		{name: "signed code", in: "\nhatchery-n start 0\n\nhatchery-n end 0 +1\n", wantErr: true},
		{name: "unknown marker", in: "\nhatchery-n middle\n", wantErr: true},
		{name: "marker too long", in: "\nhatchery-n start 0" + strings.Repeat("0", 40), wantErr: true},
		{
			name: "probes anywhere",
			in:   "\nhatchery-n alive\npre\nhatchery-n alive\n\nhatchery-n start 0\nha\nhatchery-n alive\nlf\n\nhatchery-n end 0 0\n\nhatchery-n alive\n",
			pre:  "pre",
			secs: []section{{started: true, ended: true, out: []byte("half\n")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pre, secs, err := parseStream([]byte(tt.in), tag)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrProtocol)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.pre, string(pre))
			assert.Equal(t, tt.secs, secs)
		})
	}
}

// feed parses b as one stream of a script of n steps, in chunks of size
// bytes (0: at once).
func feed(b []byte, nonce string, n, keep, size int) *stream {
	s := newStream(markerTag(nonce), n, keep)
	if size <= 0 {
		size = len(b) + 1
	}
	for len(b) > 0 {
		k := min(size, len(b))
		s.Write(b[:k])
		b = b[k:]
	}
	s.Close()
	return s
}

func TestResultsDisagree(t *testing.T) {
	t.Parallel()
	out := formatStream(nil, []section{{started: true, ended: true, code: 1}}, markerTag("n"))
	errs := formatStream(nil, []section{{started: true, ended: true, code: 2}}, markerTag("n"))
	_, _, _, err := results(feed(out, "n", 1, 0, 0), feed(errs, "n", 1, 10, 0), 1)
	require.ErrorIs(t, err, ErrProtocol)
	_, _, _, err = results(feed(out, "n", 0, 0, 0), feed(out, "n", 0, 10, 0), 0)
	require.ErrorIs(t, err, ErrProtocol, "more markers than steps")
}

// TestStreamKeepsATail: whatever a step writes, the stream keeps the
// markers and a tail of the last step's output, in any chunking.
func TestStreamKeepsATail(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789"), 10000)
	in := formatStream([]byte("sh: complaint\n"), []section{
		{started: true, ended: true, code: 0, out: big},
		{started: true, ended: true, code: 3, out: append(append([]byte{}, big...), "the end"...)},
	}, markerTag("n"))
	// The watchdog's probes land anywhere in between, mid-line too.
	probe := []byte("\n" + markerTag("n") + " alive\n")
	var probed []byte
	for i := 0; i < len(in); i += 777 {
		probed = append(append(probed, in[i:min(i+777, len(in))]...), probe...)
	}
	for _, size := range []int{0, 1, 7, 32 << 10} {
		s := feed(probed, "n", 2, 100, size)
		require.NoError(t, s.err, "chunks of %d", size)
		assert.Equal(t, []stepMark{{true, true, 0}, {true, true, 3}}, s.steps)
		assert.Equal(t, "sh: complaint\n", string(s.pre.Bytes()))
		assert.Equal(t, string(big[len(big)-93:])+"the end", string(s.cur.Bytes()))
		assert.True(t, s.cur.Cut())
		assert.LessOrEqual(t, cap(s.cur.b), 200, "at most twice the tail is ever held")
		assert.LessOrEqual(t, cap(s.hold), 2*max(size, 64)+len(probe), "what may start a marker is held back, no more")
	}
}

// FuzzParseStream: any input parses without panicking, and the parse of a
// well-formed stream gives back what was formatted, whatever bytes the
// steps wrote (as long as they do not contain the marker tag, which holds
// a random nonce).
func FuzzParseStream(f *testing.F) {
	f.Add([]byte("pre"), []byte("out0\n"), []byte("out1"), uint8(0), uint8(3), true, uint8(3))
	f.Add([]byte{}, []byte("\n\n"), []byte("\nhatchery-x start 0\n"), uint8(0), uint8(255), false, uint8(3))
	f.Add([]byte("\nhatchery-n"), []byte{0, '\n'}, []byte{}, uint8(1), uint8(0), true, uint8(5))
	const tag = "hatchery-n"
	f.Fuzz(func(t *testing.T, pre, out0, out1 []byte, code0, code1 uint8, ended bool, chunk uint8) {
		// Arbitrary bytes: no panic, and sections come in order.
		for _, in := range [][]byte{pre, out0, out1, append(append(pre, out0...), out1...)} {
			_, secs, _ := parseStream(in, tag)
			for i, s := range secs {
				if i < len(secs)-1 && !s.ended {
					t.Fatalf("section %d not ended but followed by another", i)
				}
			}
		}
		sep := []byte("\n" + tag + " ")
		if bytes.Contains(append(append([]byte{'\n'}, pre...), '\n'), sep[1:]) ||
			bytes.Contains(append(append([]byte{'\n'}, out0...), '\n'), sep[1:]) ||
			bytes.Contains(append(append([]byte{'\n'}, out1...), '\n'), sep[1:]) {
			return // step output holding the tag cannot round-trip
		}
		secs := []section{
			{started: true, ended: true, code: int(code0), out: out0},
			{started: true, ended: ended, code: int(code1), out: out1},
		}
		if !ended {
			secs[1].code = 0
		}
		stream := formatStream(pre, secs, tag)
		gotPre, got, err := parseStream(stream, tag)
		if err != nil {
			t.Fatalf("parse of a formatted stream: %v", err)
		}
		if !bytes.Equal(gotPre, pre) {
			t.Fatalf("pre = %q, want %q", gotPre, pre)
		}
		if len(got) != 2 {
			t.Fatalf("got %d sections, want 2", len(got))
		}
		for i := range got {
			w := secs[i]
			g := got[i]
			if g.started != w.started || g.ended != w.ended || g.code != w.code || !bytes.Equal(g.out, w.out) {
				t.Fatalf("section %d = %+v, want %+v", i, g, w)
			}
		}
		// Parsed as it arrives, in chunks, keeping a tail: the same
		// story, and the end of the last section's output.
		const keep = 16
		st := feed(stream, "n", 2, keep, int(chunk))
		if st.err != nil {
			t.Fatalf("chunks of %d: %v", chunk, st.err)
		}
		for i, w := range secs {
			if g := st.steps[i]; g.started != w.started || g.ended != w.ended || g.code != w.code {
				t.Fatalf("chunks of %d: step %d = %+v, want %+v", chunk, i, g, w)
			}
		}
		if want := out1[max(0, len(out1)-keep):]; !bytes.Equal(st.cur.Bytes(), want) {
			t.Fatalf("chunks of %d: tail %q, want %q", chunk, st.cur.Bytes(), want)
		}
		if want := pre[max(0, len(pre)-keep):]; !bytes.Equal(st.pre.Bytes(), want) {
			t.Fatalf("chunks of %d: pre %q, want %q", chunk, st.pre.Bytes(), want)
		}
	})
}

func TestRedactorLongestFirst(t *testing.T) {
	t.Parallel()
	rd := newRedactor([]string{"abcd", "abcdefgh", "  padded-value \n", "xy"}, nil)
	assert.Equal(t, "1 [REDACTED] 2 [REDACTED] 3 [REDACTED] xy", rd.String("1 abcdefgh 2 abcd 3 padded-value xy"))
	assert.Equal(t, 1, rd.Skipped())
	assert.Equal(t, "...[REDACTED]", "..."+rd.text([]byte("head abcdefgh"), false, len(Redacted)))
	assert.Equal(t, "[REDACTED] tail", rd.text([]byte("efgh tail"), true, 100), "the end of a secret at a cut")

	// The WriteFile trailer is not part of the value.
	rd = newRedactor(nil, []Step{WriteFile("/x/y", []byte("file-secret"), 0o600)})
	assert.Equal(t, "[REDACTED]#", rd.String("file-secret#"))
}

// FuzzRedact: no secret (of at least MinRedactLen bytes) survives in
// the output, whatever surrounds it and however two secrets overlap.
func FuzzRedact(f *testing.F) {
	f.Add("s3cr3t-value", "s3cr3t", "prefix s3cr3t-value suffix")
	f.Add("aaaa", "aaaaaa", "aaaaaaaaa")
	f.Add(" padded\n", "xyzw", "xpaddedx")
	f.Fuzz(func(t *testing.T, a, b, text string) {
		rd := newRedactor([]string{a, b}, nil)
		out := strings.ReplaceAll(rd.String(text+a+text+b+text), Redacted, "\x00")
		for _, v := range []string{a, b} {
			// Line breaks, and the blanks around them, do not count:
			// the redactor reads text without them.
			v = unwrap(strings.TrimSpace(v))
			// Skip values that could be re-created from [REDACTED] itself.
			if len(v) < MinRedactLen || strings.ContainsAny(v, "[]REDACT\x00") {
				continue
			}
			if strings.Contains(unwrap(out), v) {
				t.Fatalf("%q survives in %q", v, out)
			}
		}
	})
}

// unwrap drops line breaks and the spaces and tabs around them.
func unwrap(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		nl := false
		for j < len(s) && strings.IndexByte("\r\n \t", s[j]) >= 0 {
			nl = nl || s[j] == '\n' || s[j] == '\r'
			j++
		}
		if j > i {
			if !nl {
				b.WriteString(s[i:j])
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		writes []string
		want   string
		cut    bool
	}{
		{nil, "", false},
		{[]string{"ab", "c"}, "abc", false},
		{[]string{"abcde"}, "abcde", false},
		{[]string{"abcdef"}, "bcdef", true},
		{[]string{"ab", "cdefg"}, "cdefg", true},
		{[]string{"ab", "cd", "ef", "gh", "ij", "k"}, "ghijk", true},
		{[]string{"abc", "de", "", "f"}, "bcdef", true},
	}
	for _, tt := range tests {
		tb := tailBuffer{max: 5}
		for _, w := range tt.writes {
			n, err := tb.Write([]byte(w))
			require.NoError(t, err)
			require.Equal(t, len(w), n)
			assert.LessOrEqual(t, cap(tb.b), 10, "%q", tt.writes)
		}
		assert.Equal(t, tt.want, string(tb.Bytes()), "%q", tt.writes)
		assert.Equal(t, tt.cut, tb.Cut(), "%q", tt.writes)
	}
	none := tailBuffer{}
	none.Write([]byte("dropped"))
	assert.Empty(t, none.Bytes())
	assert.True(t, none.Cut())
}
