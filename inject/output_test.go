package inject_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/sshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMaxOutput: a session that sends more than SSHConfig.MaxOutput
// (stdout and stderr together) is closed, and the error says so with the
// limit; under it, or with no limit, the output comes back whole.
func TestMaxOutput(t *testing.T) {
	t.Parallel()
	b := setup(t, sshtest.Options{})
	cfg := b.config(t)
	cfg.MaxOutput = 10000
	c := b.dial(t, cfg)
	ctx := context.Background()

	for _, tt := range []struct{ cmd, stream string }{
		{"head -c 20000 /dev/zero", "stdout"},
		{"head -c 20000 /dev/zero >&2", "stderr"},
		{"head -c 6000 /dev/zero; sleep 0.2; head -c 6000 /dev/zero >&2", "stderr"}, // each under the limit, together over it
		{"while :; do printf 'x%.0s' 1 2 3 4 5 6 7 8; done", "stdout"},              // endless
	} {
		_, _, err := c.Run(ctx, tt.cmd, nil)
		var le *inject.OutputLimitError
		require.ErrorAs(t, err, &le, tt.cmd)
		assert.Equal(t, inject.OutputLimitError{Limit: 10000, Stream: tt.stream}, *le, tt.cmd)
		assert.Equal(t, "the command's output passed the limit of 10000 bytes; session closed", err.Error())
	}
	out, errs, err := c.Run(ctx, "head -c 5000 /dev/zero; head -c 4000 /dev/zero >&2", nil)
	require.NoError(t, err)
	assert.Len(t, out, 5000)
	assert.Len(t, errs, 4000)

	for _, m := range modes {
		err := inject.Run(ctx, c, []inject.Step{{Name: "ok", Cmd: "true"}, {Name: "noisy", Cmd: "head -c 20000 /dev/zero >&2"}, {Name: "never", Cmd: "true"}},
			inject.WithPipelining(m.pipelined))
		var se *inject.StepError
		require.ErrorAs(t, err, &se, m.name)
		assert.Equal(t, "noisy", se.Step, m.name)
		assert.Equal(t, -1, se.ExitCode, m.name)
		var le *inject.OutputLimitError
		require.ErrorAs(t, err, &le, m.name)
	}

	cfg.MaxOutput = -1
	unlimited := b.dial(t, cfg)
	out, _, err = unlimited.Run(ctx, "head -c 100000 /dev/zero", nil)
	require.NoError(t, err)
	assert.Len(t, out, 100000)
}

// TestSSHRunKeepsStderrTail: (*SSH).Run returns the end of stderr.
func TestSSHRunKeepsStderrTail(t *testing.T) {
	t.Parallel()
	b := setup(t, sshtest.Options{})
	c := b.dial(t, b.config(t))
	_, errs, err := c.Run(context.Background(), "head -c 100000 /dev/zero | tr '\\0' a >&2; printf end >&2", nil)
	require.NoError(t, err)
	assert.Len(t, errs, inject.MaxStderr)
	assert.True(t, strings.HasSuffix(string(errs), "aaaend"))
}

// TestStepNumbers: issue 16 §4. Errors and logs number steps alike, from
// 1, and say "inject" at most once when a caller adds the phase.
func TestStepNumbers(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		var logs bytes.Buffer
		steps := []inject.Step{{Name: "first", Cmd: "true"}, {Name: "second", Cmd: "echo broke >&2; exit 4"}}
		err := inject.Run(context.Background(), &localRunner{}, steps, inject.WithPipelining(m.pipelined),
			inject.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
		var se *inject.StepError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, 1, se.Index, "the index in the list")
		assert.Equal(t, `step 2 "second" failed with exit code 4: exit status 4: stderr: broke`, err.Error())

		numbers := map[string]float64{}
		for line := range strings.Lines(logs.String()) {
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &rec))
			numbers[rec["name"].(string)] = rec["step"].(float64)
		}
		assert.Equal(t, map[string]float64{"first": 1, "second": 2}, numbers, m.name)

		// A list that continues an earlier Run's steps numbers on.
		logs.Reset()
		var events []inject.Event
		err = inject.Run(context.Background(), &localRunner{}, steps, inject.WithPipelining(m.pipelined),
			inject.WithFirstIndex(1), inject.WithEvents(func(e inject.Event) { events = append(events, e) }),
			inject.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
		require.ErrorAs(t, err, &se)
		assert.Equal(t, 2, se.Index)
		assert.Equal(t, `step 3 "second" failed with exit code 4: exit status 4: stderr: broke`, err.Error())
		for line := range strings.Lines(logs.String()) {
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &rec))
			numbers[rec["name"].(string)] = rec["step"].(float64)
		}
		assert.Equal(t, map[string]float64{"first": 2, "second": 3}, numbers, m.name)
		require.NotEmpty(t, events)
		for _, e := range events {
			assert.Equal(t, map[string]int{"first": 1, "second": 2}[e.Step], e.Index, m.name)
		}

		// What provision does with it.
		wrapped := fmt.Errorf("inject: %w", err)
		assert.Equal(t, 1, strings.Count(wrapped.Error(), "inject"), wrapped.Error())
	}
	// No "inject:" under "inject:" from within the package either.
	key, err := os.ReadFile("testdata/encrypted_ed25519")
	require.NoError(t, err)
	_, err = inject.ParsePrivateKey(key, nil)
	require.ErrorIs(t, err, inject.ErrPassphrase)
	assert.Equal(t, 1, strings.Count(err.Error(), "inject:"), err.Error())
}

// TestSecretInCommandEncoded: a secret base64- or hex-encoded on a
// command line is on the command line all the same.
func TestSecretInCommandEncoded(t *testing.T) {
	t.Parallel()
	const secret = "sk-live-0123456789abcdef"
	for _, cmd := range []string{
		"echo " + base64.StdEncoding.EncodeToString([]byte(secret)) + " | base64 -d > /x",
		"printf %s " + fmt.Sprintf("%x", secret) + " > /x",
	} {
		r := &localRunner{}
		err := inject.Run(context.Background(), r, []inject.Step{{Name: "s", Cmd: cmd}}, inject.WithRedact(secret))
		require.ErrorIs(t, err, inject.ErrSecretInCommand, cmd)
		assert.Empty(t, r.Calls())
		assert.False(t, errors.Is(err, inject.ErrInvalid))
	}
	// A fragment is not a reason to refuse: only a whole value is.
	err := inject.Run(context.Background(), &localRunner{}, []inject.Step{{Name: "s", Cmd: "echo " + secret[:14]}}, inject.WithRedact(secret))
	require.NoError(t, err)
}
