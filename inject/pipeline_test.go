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

func TestResultsDisagree(t *testing.T) {
	t.Parallel()
	out := formatStream(nil, []section{{started: true, ended: true, code: 1}}, markerTag("n"))
	errs := formatStream(nil, []section{{started: true, ended: true, code: 2}}, markerTag("n"))
	_, _, err := results(out, errs, "n", 1)
	require.ErrorIs(t, err, ErrProtocol)
	_, _, err = results(out, out, "n", 0)
	require.ErrorIs(t, err, ErrProtocol, "more markers than steps")
}

// FuzzParseStream: any input parses without panicking, and the parse of a
// well-formed stream gives back what was formatted, whatever bytes the
// steps wrote (as long as they do not contain the marker tag, which holds
// a random nonce).
func FuzzParseStream(f *testing.F) {
	f.Add([]byte("pre"), []byte("out0\n"), []byte("out1"), uint8(0), uint8(3), true)
	f.Add([]byte{}, []byte("\n\n"), []byte("\nhatchery-x start 0\n"), uint8(0), uint8(255), false)
	f.Add([]byte("\nhatchery-n"), []byte{0, '\n'}, []byte{}, uint8(1), uint8(0), true)
	const tag = "hatchery-n"
	f.Fuzz(func(t *testing.T, pre, out0, out1 []byte, code0, code1 uint8, ended bool) {
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
	})
}

func TestRedactorLongestFirst(t *testing.T) {
	t.Parallel()
	rd := newRedactor([]string{"abcd", "abcdefgh", "  padded-value \n", "xy"}, nil)
	assert.Equal(t, "1 [REDACTED] 2 [REDACTED] 3 [REDACTED] xy", rd.String("1 abcdefgh 2 abcd 3 padded-value xy"))
	assert.Equal(t, 1, rd.skipped)
	assert.Equal(t, "...[REDACTED]", "..."+rd.tail([]byte("head abcdefgh"), len(Redacted)))

	var nilRd *redactor
	assert.Equal(t, "same", nilRd.String("same"))

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
			v = strings.TrimSpace(v)
			// Skip values that could be re-created from [REDACTED] itself.
			if len(v) < MinRedactLen || strings.ContainsAny(v, "[]REDACT\x00") {
				continue
			}
			if strings.Contains(out, v) {
				t.Fatalf("%q survives in %q", v, out)
			}
		}
	})
}
