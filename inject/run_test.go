package inject_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunOrderAndFirstFailure(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			log := filepath.Join(t.TempDir(), "log")
			steps := []inject.Step{
				{Name: "one", Cmd: "printf 'one\\n' >> " + log},
				{Name: "two", Cmd: "cat >> " + log, Stdin: []byte("two\n")},
				{Name: "three", Cmd: "printf 'partial output'; printf 'oops\\n' >&2; exit 7"},
				{Name: "four", Cmd: "printf 'four\\n' >> " + log},
			}
			r := &localRunner{}
			var events []inject.Event
			err := inject.Run(context.Background(), r, steps, inject.WithPipelining(m.pipelined),
				inject.WithEvents(func(e inject.Event) { events = append(events, e) }))

			var se *inject.StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, "three", se.Step)
			assert.Equal(t, 2, se.Index)
			assert.Equal(t, 7, se.ExitCode)
			assert.Equal(t, "oops\n", se.Stderr)
			assert.Contains(t, se.Error(), `step 3 "three" failed with exit code 7`)
			assert.Contains(t, se.Error(), "stderr: oops")

			got, err := os.ReadFile(log)
			require.NoError(t, err)
			assert.Equal(t, "one\ntwo\n", string(got), "steps ran in order and four never ran")

			want := []inject.Event{
				{Index: 0, Step: "one"}, {Index: 0, Step: "one", Done: true},
				{Index: 1, Step: "two"}, {Index: 1, Step: "two", Done: true},
				{Index: 2, Step: "three"}, {Index: 2, Step: "three", Done: true, Err: se},
			}
			assert.Equal(t, want, events)
			if m.pipelined {
				assert.Len(t, r.Calls(), 1, "one Runner call for the whole list")
			} else {
				assert.Len(t, r.Calls(), 3)
			}
		})
	}
}

func TestRunSucceeds(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			steps := []inject.Step{
				// A step that exits 0 without reading its stdin must not
				// upset the next one's.
				{Name: "ignores stdin", Cmd: "exit 0", Stdin: []byte("unread bytes")},
				{Name: "reads part", Cmd: "head -c 2 > " + dir + "/part", Stdin: []byte("abcdef")},
				{Name: "no trailing newline", Cmd: "printf 'x'; printf 'y' >&2"},
				inject.WriteFile(dir+"/f", []byte("content"), 0o600),
			}
			require.NoError(t, inject.Run(context.Background(), &localRunner{}, steps, inject.WithPipelining(m.pipelined)))
			got, err := os.ReadFile(dir + "/part")
			require.NoError(t, err)
			assert.Equal(t, "ab", string(got))
			got, err = os.ReadFile(dir + "/f")
			require.NoError(t, err)
			assert.Equal(t, "content", string(got))
			require.NoError(t, inject.Run(context.Background(), &localRunner{}, nil), "an empty list is fine")
		})
	}
}

func TestRunContext(t *testing.T) {
	t.Parallel()
	steps := []inject.Step{{Name: "a", Cmd: "true"}, {Name: "b", Cmd: "true"}, {Name: "c", Cmd: "true"}}
	for _, m := range modes {
		t.Run(m.name+"/cancelled before", func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			r := &localRunner{}
			err := inject.Run(ctx, r, steps, inject.WithPipelining(m.pipelined))
			var se *inject.StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, 0, se.Index)
			assert.Equal(t, -1, se.ExitCode)
			assert.ErrorIs(t, err, context.Canceled)
			assert.Empty(t, r.Calls())
		})
	}
	t.Run("stepwise/cancelled between steps", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := &localRunner{cancel: cancel}
		err := inject.Run(ctx, r, steps, inject.WithPipelining(false))
		var se *inject.StepError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, 1, se.Index, "checked before step b")
		assert.Equal(t, "b", se.Step)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Len(t, r.Calls(), 1)
	})
}

// stepwise is a Runner that asks for one call per step.
type stepwise struct{ localRunner }

func (*stepwise) Stepwise() bool { return true }

func TestStepwiseRunner(t *testing.T) {
	t.Parallel()
	r := &stepwise{}
	steps := []inject.Step{{Name: "a", Cmd: "true"}, {Name: "b", Cmd: "true"}}
	require.NoError(t, inject.Run(context.Background(), r, steps))
	assert.Equal(t, []string{"true", "true"}, r.Calls())
}

func TestRunRefusesInvalidSteps(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		r := &localRunner{}
		steps := []inject.Step{
			{Name: "fine", Cmd: "true"},
			inject.WriteFile("relative/path", []byte("x"), 0o600),
		}
		err := inject.Run(context.Background(), r, steps, inject.WithPipelining(m.pipelined))
		var se *inject.StepError
		require.ErrorAs(t, err, &se, m.name)
		assert.Equal(t, 1, se.Index)
		assert.ErrorIs(t, err, inject.ErrInvalid)
		assert.Empty(t, r.Calls(), "nothing runs when a step is invalid")

		err = inject.Run(context.Background(), r, []inject.Step{{Name: "empty"}})
		assert.ErrorIs(t, err, inject.ErrInvalid)
	}
}

func TestRunRedacts(t *testing.T) {
	t.Parallel()
	const (
		fileSecret  = "sk-file-secret-0123456789"
		extraSecret = "hunter2-extra-secret"
		short       = "abc"
	)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(dir+"/other", []byte("token="+extraSecret+" short="+short+"\n"), 0o600))
			steps := []inject.Step{
				inject.WriteFile(dir+"/.env", []byte("API_KEY="+fileSecret+"\n"), 0o600),
				{
					Name: "leak",
					Cmd:  "cat " + dir + "/.env >&2; cat " + dir + "/other >&2; cat >&2; exit 3",
					// A multi-line value: each long line is redacted too.
					Stdin: []byte("line one of a pem block ABCDEFGH\nline two of a pem block IJKLMNOP\n"),
				},
			}
			var logs bytes.Buffer
			var events []inject.Event
			err := inject.Run(context.Background(), &localRunner{}, steps,
				inject.WithPipelining(m.pipelined),
				inject.WithRedact(extraSecret, short),
				inject.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
				inject.WithEvents(func(e inject.Event) { events = append(events, e) }))
			var se *inject.StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, 1, se.Index)
			assert.Equal(t, "leak", se.Step)
			assert.Equal(t, "[REDACTED]\ntoken=[REDACTED] short=abc\n[REDACTED]\n", se.Stderr,
				"the whole file, the extra value and each line are redacted; a value under MinRedactLen is not")

			for name, text := range map[string]string{
				"Error": err.Error(), "Err": se.Err.Error(), "logs": logs.String(),
				"events": eventsText(events), "Stderr": se.Stderr, "Step": se.Step,
			} {
				for _, secret := range []string{fileSecret, extraSecret, "PEM BLOCK", "pem block"} {
					assert.NotContains(t, text, secret, "%s holds a secret", name)
				}
			}
			assert.Contains(t, logs.String(), "too short to redact")
		})
	}
}

// TestRunRedactsEncodings: issue 13 M3 and M2. A failing step prints a
// secret given with WithRedact (with the trailing newline a file read
// gives) in the ways a service's log may; none of it reaches the error,
// StepError.Stderr, the logs or the events.
func TestRunRedactsEncodings(t *testing.T) {
	t.Parallel()
	const secret = "sk-ant-api03-Zx9/Kq+Lm_w8Tq2Vb7Nc&e=Rt5Yu1"
	value := secret + "\n" // as a vault or a file read gives it
	lines := []string{
		"raw " + secret,
		"base64 " + base64.StdEncoding.EncodeToString([]byte(secret)),
		"base64 of the value " + base64.StdEncoding.EncodeToString([]byte(value)),
		"base64url " + base64.RawURLEncoding.EncodeToString([]byte(secret)),
		"basic auth " + base64.StdEncoding.EncodeToString([]byte("u:"+secret)),
		"env file " + base64.StdEncoding.EncodeToString([]byte("X=1\nTOKEN="+value)),
		"hex " + hex.EncodeToString([]byte(secret)),
		"HEX " + strings.ToUpper(hex.EncodeToString([]byte(value))),
		"query " + url.QueryEscape(secret),
		"path " + url.PathEscape(secret),
		`json {"token":` + jsonString(t, secret) + `}`,
		`json of the value {"token":` + jsonString(t, value) + `}`,
		"first 20 bytes " + secret[:20] + "...",
		"middle " + secret[13:27],
		"wrapped " + secret[:17] + "\n    " + secret[17:],
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(dir+"/journal", []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			var events []inject.Event
			steps := []inject.Step{
				{Name: "start", Cmd: "true"},
				{Name: "check active", Cmd: "cat " + dir + "/journal >&2; exit 3"},
			}
			err := inject.Run(context.Background(), &localRunner{}, steps,
				inject.WithPipelining(m.pipelined),
				inject.WithRedact(value),
				inject.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
				inject.WithEvents(func(e inject.Event) { events = append(events, e) }))
			var se *inject.StepError
			require.ErrorAs(t, err, &se)
			for i, l := range strings.Split(strings.TrimSpace(se.Stderr), "\n") {
				assert.Contains(t, l, "[REDACTED]", "line %d", i)
			}
			for name, text := range map[string]string{
				"Error": err.Error(), "logs": logs.String(), "events": eventsText(events), "Stderr": se.Stderr,
			} {
				// No fragment of the secret of RedactWindow bytes, of its
				// hex, base64 or JSON survives.
				for _, enc := range []string{secret, hex.EncodeToString([]byte(secret)), base64.StdEncoding.EncodeToString([]byte(secret)), jsonString(t, secret)} {
					for i := 0; i+inject.RedactWindow <= len(enc); i++ {
						if w := enc[i : i+inject.RedactWindow]; strings.Contains(text, w) {
							t.Errorf("%s holds %q of %q", name, w, enc)
							break
						}
					}
				}
			}
		})
	}
}

func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	return string(b)
}

// TestRunRedactsAtTheCut: Run keeps a tail of a long stderr; a secret cut
// by the tail's start is redacted too, down to its last MinRedactLen
// bytes, which no fragment rule would catch.
func TestRunRedactsAtTheCut(t *testing.T) {
	t.Parallel()
	// 600 lines of secret+"\n", 45 bytes each: the 20 KiB kept start
	// with the last 4 bytes of a secret (20480 = 455*45 + 5).
	const secret = "ghp_0123456789abcdefghijABCDEFGHIJklmnopqrst"
	require.Len(t, secret, 44)
	for _, m := range modes {
		err := inject.Run(context.Background(), &localRunner{}, []inject.Step{
			{Name: "noisy", Cmd: `s=$(cat); i=0; while [ $i -lt 600 ]; do printf '%s\n' "$s"; i=$((i+1)); done >&2; exit 1`, Stdin: []byte(secret)},
		}, inject.WithPipelining(m.pipelined), inject.WithRedact(secret))
		var se *inject.StepError
		require.ErrorAs(t, err, &se, m.name)
		assert.True(t, strings.HasPrefix(se.Stderr, "[REDACTED]\n[REDACTED]\n"), "%s: %.40q", m.name, se.Stderr)
		assert.NotContains(t, se.Stderr, secret[40:]+"\n", m.name)
	}
}

func eventsText(events []inject.Event) string {
	var b strings.Builder
	for _, e := range events {
		b.WriteString(e.Step)
		if e.Err != nil {
			b.WriteString(e.Err.Error())
		}
	}
	return b.String()
}

func TestRunErrorKeepsCause(t *testing.T) {
	t.Parallel()
	cause := errors.New("transport broke")
	r := inject.RunnerFunc(func(context.Context, string, io.Reader) ([]byte, []byte, error) {
		return nil, []byte("half"), cause
	})
	for _, m := range modes {
		err := inject.Run(context.Background(), r, []inject.Step{{Name: "a", Cmd: "true"}, {Name: "b", Cmd: "true"}},
			inject.WithPipelining(m.pipelined))
		var se *inject.StepError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, 0, se.Index, m.name)
		assert.Equal(t, -1, se.ExitCode, m.name)
		assert.ErrorIs(t, err, cause, m.name)
		assert.Equal(t, "half", se.Stderr, m.name)
	}
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(dir+"/b", []byte("old"), 0o644))
			data := bytes.Repeat([]byte("0123456789abcdef\x00\n'\"$`\\"), 4096)
			steps := []inject.Step{
				inject.Mkdir(dir+"/sub dir", 0o750),
				inject.WriteFile(dir+"/sub dir/a", []byte("secret a\n"), 0o600),
				inject.WriteFile(dir+"/b", data, 0o640),
				inject.WriteFile(dir+"/empty", nil, 0o600),
			}
			require.NoError(t, inject.Run(context.Background(), &localRunner{}, steps, inject.WithPipelining(m.pipelined)))

			check := func(path string, want []byte, mode os.FileMode) {
				t.Helper()
				got, err := os.ReadFile(path)
				require.NoError(t, err)
				assert.Equal(t, want, got)
				fi, err := os.Stat(path)
				require.NoError(t, err)
				assert.Equal(t, mode, fi.Mode().Perm(), path)
			}
			check(dir+"/sub dir/a", []byte("secret a\n"), 0o600)
			check(dir+"/b", data, 0o640)
			check(dir+"/empty", []byte{}, 0o600)
			fi, err := os.Stat(dir + "/sub dir")
			require.NoError(t, err)
			assert.Equal(t, os.ModeDir|0o750, fi.Mode()&(os.ModeDir|os.ModePerm))
			assert.Empty(t, leftovers(t, dir, "sub dir", "b", "empty"))
			assert.Empty(t, leftovers(t, dir+"/sub dir", "a"))
		})
	}
}

// TestWriteFileCut feeds WriteFile's stdin only in part, as a connection
// dropped mid-transfer does: the target keeps its old content, no temp
// file is left, and running again converges.
func TestWriteFileCut(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("new content "), 100)
	for _, m := range modes {
		for _, limit := range []int{1, 500, len(data), len(data) + 5} {
			t.Run(m.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				require.NoError(t, os.WriteFile(dir+"/f", []byte("old"), 0o600))
				steps := []inject.Step{inject.WriteFile(dir+"/f", data, 0o600), {Name: "after", Cmd: "true"}}
				err := inject.Run(context.Background(), &localRunner{limit: limit}, steps, inject.WithPipelining(m.pipelined))
				var se *inject.StepError
				require.ErrorAs(t, err, &se, "limit %d", limit)
				assert.Equal(t, 0, se.Index)
				got, err := os.ReadFile(dir + "/f")
				require.NoError(t, err)
				assert.Equal(t, "old", string(got), "limit %d", limit)
				assert.Empty(t, leftovers(t, dir, "f"))

				require.NoError(t, inject.Run(context.Background(), &localRunner{}, steps, inject.WithPipelining(m.pipelined)))
				got, err = os.ReadFile(dir + "/f")
				require.NoError(t, err)
				assert.Equal(t, data, got)
				assert.Empty(t, leftovers(t, dir, "f"))
			})
		}
	}
}

// TestRunRefusesSecretInCommand: a value that travels in a Stdin, or is
// given with WithRedact, must not be in any step's command line or name.
// Run fails before the Runner sees anything, without the value.
func TestRunRefusesSecretInCommand(t *testing.T) {
	t.Parallel()
	const (
		fileSecret  = "sk-file-secret-0123456789"
		extraSecret = "hunter2-extra-secret"
		lineSecret  = "line two of a pem block IJKLMNOP"
	)
	dir := t.TempDir()
	write := inject.WriteFile(dir+"/.env", []byte("API_KEY="+fileSecret+"\n"), 0o600)
	pem := inject.WriteFile(dir+"/key", []byte("line one of a pem block ABCDEFGH\n"+lineSecret+"\n"), 0o600)
	tests := []struct {
		name  string
		steps []inject.Step
		index int
	}{
		{"stdin value in a later command", []inject.Step{write, inject.Command("printf", "%s", "API_KEY="+fileSecret)}, 1},
		{"stdin value in an earlier command", []inject.Step{{Name: "echo", Cmd: "echo API_KEY=" + fileSecret}, write}, 0},
		{"WithRedact value in a command", []inject.Step{write, {Name: "login", Cmd: "login --token " + extraSecret}}, 1},
		{"WithRedact value in a name", []inject.Step{write, {Name: "login as " + extraSecret, Cmd: "true"}}, 1},
		{"one line of a multi-line stdin", []inject.Step{pem, {Name: "check", Cmd: "grep '" + lineSecret + "' " + dir + "/key"}}, 1},
		{"stdin of the step itself", []inject.Step{{Name: "self", Cmd: "cat; : " + fileSecret, Stdin: []byte(fileSecret)}}, 0},
	}
	for _, m := range modes {
		for _, tt := range tests {
			r := &localRunner{}
			err := inject.Run(context.Background(), r, tt.steps, inject.WithPipelining(m.pipelined), inject.WithRedact(extraSecret))
			require.ErrorIs(t, err, inject.ErrSecretInCommand, "%s: %s", m.name, tt.name)
			var se *inject.StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.index, se.Index, tt.name)
			assert.Equal(t, -1, se.ExitCode, tt.name)
			assert.Empty(t, r.Calls(), "%s: nothing was sent", tt.name)
			for _, s := range []string{fileSecret, extraSecret, lineSecret} {
				assert.NotContains(t, err.Error(), s, tt.name)
				assert.NotContains(t, se.Step, s, tt.name)
			}
			assert.NoFileExists(t, dir+"/.env", tt.name)
		}
	}

	// A value too short to redact, or in no step's stdin, is no secret.
	r := &localRunner{}
	require.NoError(t, inject.Run(context.Background(), r, []inject.Step{
		inject.WriteFile(dir+"/port", []byte("80"), 0o600),
		inject.Command("printf", "80 %s", "sk-file-secret"),
	}))
	assert.Len(t, r.Calls(), 1)
}

// leakyError is a typed error whose message holds whatever it was given.
type leakyError struct{ detail string }

func (e *leakyError) Error() string { return "leaky: " + e.detail }

// TestErrorChainRedacted walks every error reachable from Run's error
// through Unwrap (both forms): each one's message is redacted, while
// errors.Is and errors.As still find the original sentinel and type.
func TestErrorChainRedacted(t *testing.T) {
	t.Parallel()
	const secret = "sk-chain-secret-0123456789"
	sentinel := errors.New("transport sentinel")
	r := inject.RunnerFunc(func(context.Context, string, io.Reader) ([]byte, []byte, error) {
		return nil, nil, fmt.Errorf("run failed near %s: %w", secret,
			errors.Join(&leakyError{secret}, fmt.Errorf("wrapped %s: %w", secret, sentinel)))
	})
	for _, m := range modes {
		var events []inject.Event
		err := inject.Run(context.Background(), r, []inject.Step{{Name: "a", Cmd: "true"}, {Name: "b", Cmd: "true"}},
			inject.WithPipelining(m.pipelined), inject.WithRedact(secret),
			inject.WithEvents(func(e inject.Event) { events = append(events, e) }))
		require.ErrorIs(t, err, sentinel, m.name)
		var le *leakyError
		require.ErrorAs(t, err, &le, m.name)
		var se *inject.StepError
		require.ErrorAs(t, err, &se, m.name)
		require.NotEmpty(t, events)

		for _, root := range []error{err, se.Err, events[len(events)-1].Err} {
			n := 0
			walkErrors(root, func(e error) {
				n++
				assert.NotContains(t, e.Error(), secret, "%s: %T in the chain", m.name, e)
			})
			assert.GreaterOrEqual(t, n, 4, "%s: the chain keeps its links", m.name)
		}
	}
}

// walkErrors calls fn on err and on every error it wraps, depth first.
func walkErrors(err error, fn func(error)) {
	if err == nil {
		return
	}
	fn(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walkErrors(u.Unwrap(), fn)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walkErrors(e, fn)
		}
	}
}
