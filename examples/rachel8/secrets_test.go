package rachel8_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/inject"
)

func TestFrom(t *testing.T) {
	t.Parallel()
	want := sampleSecrets()
	ms := strconv.FormatInt(want.ClaudeExpiresAt.UnixMilli(), 10)

	got, err := rachel8.From(want.Map())
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, ms, got.Map()[rachel8.KeyClaudeExpiresAt])

	m := want.Map()
	m[rachel8.KeyClaudeExpiresAt] = "2026-01-01T00:00:00.123Z"
	m["SOMETHING_ELSE"] = "ignored"
	got, err = rachel8.From(m)
	require.NoError(t, err)
	assert.Equal(t, int64(1767225600123), got.ClaudeExpiresAt.UnixMilli())
}

func TestFromRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		key      string
		value    string
		wantName string // the variable the error must name
	}{
		{"missing access token", rachel8.KeyClaudeAccessToken, "", "CLAUDE_ACCESS_TOKEN"},
		{"access token with newline", rachel8.KeyClaudeAccessToken, "abc\ndef", "CLAUDE_ACCESS_TOKEN"},
		{"refresh token with space", rachel8.KeyClaudeRefreshToken, "abc def", "CLAUDE_REFRESH_TOKEN"},
		{"refresh token not utf-8", rachel8.KeyClaudeRefreshToken, "abc\xffdef", "CLAUDE_REFRESH_TOKEN"},
		{"expiry garbage", rachel8.KeyClaudeExpiresAt, "tomorrow", "CLAUDE_EXPIRES_AT"},
		{"expiry negative", rachel8.KeyClaudeExpiresAt, "-5", "CLAUDE_EXPIRES_AT"},
		{"bot token with newline", rachel8.KeyTelegramBotToken, "123:abc\nLOG_LEVEL=debug", "TELEGRAM_BOT_TOKEN"},
		{"bot token with double quote", rachel8.KeyTelegramBotToken, `123:ab"c`, "TELEGRAM_BOT_TOKEN"},
		{"bot token with single quote", rachel8.KeyTelegramBotToken, "123:ab'c", "TELEGRAM_BOT_TOKEN"},
		{"bot token with dollar", rachel8.KeyTelegramBotToken, "123:ab$HOME", "TELEGRAM_BOT_TOKEN"},
		{"bot token with backslash", rachel8.KeyTelegramBotToken, `123:ab\n`, "TELEGRAM_BOT_TOKEN"},
		{"bot token with space", rachel8.KeyTelegramBotToken, "123:ab c", "TELEGRAM_BOT_TOKEN"},
		{"bot token with hash", rachel8.KeyTelegramBotToken, "123:ab#c", "TELEGRAM_BOT_TOKEN"},
		{"bot token with NUL", rachel8.KeyTelegramBotToken, "123:ab\x00c", "TELEGRAM_BOT_TOKEN"},
		{"user id not a number", rachel8.KeyOwnerTelegramUserID, "@rachel", "OWNER_TELEGRAM_USER_ID"},
		{"user id with newline", rachel8.KeyOwnerTelegramUserID, "123\n456", "OWNER_TELEGRAM_USER_ID"},
		{"user id too long", rachel8.KeyOwnerTelegramUserID, "123456789012345678901", "OWNER_TELEGRAM_USER_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := sampleSecrets().Map()
			m[tt.key] = tt.value
			_, err := rachel8.From(m)
			require.ErrorIs(t, err, rachel8.ErrInvalidSecret)
			var se *rachel8.SecretError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.wantName, se.Name)
			if tt.value != "" {
				assert.NotContains(t, err.Error(), tt.value, "the error must not show the value")
			}
			// Steps refuses the same values, and returns no step at all.
			s := sampleSecrets()
			switch tt.key {
			case rachel8.KeyTelegramBotToken:
				s.TelegramBotToken = tt.value
			case rachel8.KeyOwnerTelegramUserID:
				s.OwnerTelegramUserID = tt.value
			case rachel8.KeyClaudeAccessToken:
				s.ClaudeAccessToken = tt.value
			case rachel8.KeyClaudeRefreshToken:
				s.ClaudeRefreshToken = tt.value
			default:
				return
			}
			steps, err := rachel8.Steps(rachel8.Options{}, s, false)
			require.ErrorIs(t, err, rachel8.ErrInvalidSecret)
			assert.Nil(t, steps)
		})
	}
}

func TestFromMissingNamesAll(t *testing.T) {
	t.Parallel()
	_, err := rachel8.From(map[string]string{rachel8.KeyClaudeAccessToken: "x"})
	require.ErrorIs(t, err, rachel8.ErrInvalidSecret)
	assert.Equal(t, "rachel8: secret CLAUDE_REFRESH_TOKEN, CLAUDE_EXPIRES_AT, TELEGRAM_BOT_TOKEN, OWNER_TELEGRAM_USER_ID are missing", err.Error())
}

func TestEnvSource(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	all := map[string]string{}
	for k, v := range sampleSecrets().Map() {
		all["RACHEL8_"+k] = v
	}
	ctx := context.Background()

	s, err := rachel8.Load(ctx, rachel8.EnvSource{LookupEnv: env(all)}, "tenant-1")
	require.NoError(t, err)
	assert.Equal(t, sampleSecrets(), s)

	_, err = rachel8.EnvSource{LookupEnv: env(nil)}.Secrets(ctx, "tenant-1")
	require.ErrorIs(t, err, inject.ErrNoSecrets)

	partial := map[string]string{"RACHEL8_TELEGRAM_BOT_TOKEN": "1:a", "RACHEL8_CLAUDE_ACCESS_TOKEN": "x"}
	_, err = rachel8.EnvSource{LookupEnv: env(partial)}.Secrets(ctx, "tenant-1")
	require.ErrorIs(t, err, rachel8.ErrInvalidSecret)
	assert.Equal(t, "rachel8: secret RACHEL8_CLAUDE_REFRESH_TOKEN, RACHEL8_CLAUDE_EXPIRES_AT, RACHEL8_OWNER_TELEGRAM_USER_ID are not set in the environment", err.Error())

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = rachel8.EnvSource{LookupEnv: env(all)}.Secrets(canceled, "tenant-1")
	require.ErrorIs(t, err, context.Canceled)
}

func TestEnvSourceReadsProcessEnvironment(t *testing.T) {
	// t.Setenv forbids t.Parallel.
	for k, v := range sampleSecrets().Map() {
		t.Setenv(rachel8.EnvPrefix+k, v)
	}
	s, err := rachel8.Load(context.Background(), rachel8.EnvSource{}, "any")
	require.NoError(t, err)
	assert.Equal(t, sampleSecrets(), s)
	assert.Equal(t, time.UTC, s.ClaudeExpiresAt.Location())
}

// Load's errors say rachel8, the tenant and the cause once each.
func TestLoadErrorsSayEachThingOnce(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) rachel8.EnvSource {
		return rachel8.EnvSource{LookupEnv: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
	}
	partial := env(map[string]string{"RACHEL8_TELEGRAM_BOT_TOKEN": "1:a", "RACHEL8_CLAUDE_ACCESS_TOKEN": "x"})
	incomplete := inject.StaticSecrets{"tenant-1": {"CLAUDE_ACCESS_TOKEN": "x"}}
	for _, tc := range []struct {
		name string
		src  inject.SecretSource
		want string
		is   error
	}{
		{"environment empty", env(nil), "rachel8: none of the RACHEL8_* variables is set: " + inject.ErrNoSecrets.Error(), inject.ErrNoSecrets},
		{"environment empty, pointer", new(rachel8.EnvSource), "", inject.ErrNoSecrets},
		{"environment partial", partial, "rachel8: secret RACHEL8_CLAUDE_REFRESH_TOKEN, RACHEL8_CLAUDE_EXPIRES_AT, RACHEL8_OWNER_TELEGRAM_USER_ID are not set in the environment", rachel8.ErrInvalidSecret},
		{"other source", inject.StaticSecrets{}, inject.ErrNoSecrets.Error() + `: "tenant-1"`, inject.ErrNoSecrets},
		{"other source, incomplete", incomplete, "rachel8: secret CLAUDE_REFRESH_TOKEN, CLAUDE_EXPIRES_AT, TELEGRAM_BOT_TOKEN, OWNER_TELEGRAM_USER_ID are missing", rachel8.ErrInvalidSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if e, ok := tc.src.(*rachel8.EnvSource); ok {
				e.LookupEnv = func(string) (string, bool) { return "", false }
			}
			_, err := rachel8.Load(context.Background(), tc.src, "tenant-1")
			require.ErrorIs(t, err, tc.is)
			if tc.want != "" {
				assert.Equal(t, tc.want, err.Error())
			}
			assert.LessOrEqual(t, strings.Count(err.Error(), "rachel8:"), 1, err.Error())
			assert.LessOrEqual(t, strings.Count(err.Error(), "tenant-1"), 1, err.Error())
		})
	}
}

// Extra secret .env variables (Options.SecretEnv): read by name, from a
// map or the environment, validated like TELEGRAM_BOT_TOKEN, redacted.
func TestExtraSecrets(t *testing.T) {
	t.Parallel()
	m := sampleSecrets().Map()
	m["AI_API_KEY"] = "sk-extra-0123456789"
	m["UNRELATED"] = "ignored"
	s, err := rachel8.From(m, "AI_API_KEY")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"AI_API_KEY": "sk-extra-0123456789"}, s.Env)
	assert.Contains(t, s.Values(), "sk-extra-0123456789", "redacted like the others")
	assert.Equal(t, "sk-extra-0123456789", s.Map()["AI_API_KEY"])

	_, err = rachel8.From(sampleSecrets().Map(), "AI_API_KEY", "AI_ORG")
	require.ErrorIs(t, err, rachel8.ErrInvalidSecret)
	assert.Equal(t, "rachel8: secret AI_API_KEY, AI_ORG are missing", err.Error())

	m["AI_API_KEY"] = "sk extra"
	_, err = rachel8.From(m, "AI_API_KEY")
	require.ErrorIs(t, err, rachel8.ErrInvalidSecret)
	assert.Contains(t, err.Error(), "AI_API_KEY contains a space")
	assert.NotContains(t, err.Error(), "sk extra")

	// EnvSource reads them with the prefix.
	env := map[string]string{"RACHEL8_AI_API_KEY": "sk-extra-0123456789"}
	for k, v := range sampleSecrets().Map() {
		env[rachel8.EnvPrefix+k] = v
	}
	src := rachel8.EnvSource{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Extra: []string{"AI_API_KEY"}}
	s, err = rachel8.Load(context.Background(), src, "tenant-1", "AI_API_KEY")
	require.NoError(t, err)
	assert.Equal(t, "sk-extra-0123456789", s.Env["AI_API_KEY"])
	delete(env, "RACHEL8_AI_API_KEY")
	_, err = src.Secrets(context.Background(), "tenant-1")
	assert.EqualError(t, err, "rachel8: secret RACHEL8_AI_API_KEY is not set in the environment")

	// Steps writes Env then SecretEnv after the recipe's own lines, and
	// refuses secrets that the options do not name, or lack.
	opts := rachel8.Options{Env: []rachel8.EnvVar{{Name: "AI_PROVIDER", Value: "claude"}}, SecretEnv: []string{"AI_API_KEY"}}
	s.Env = map[string]string{"AI_API_KEY": "sk-extra-0123456789"}
	steps, err := rachel8.Steps(opts, s, false)
	require.NoError(t, err)
	assert.Contains(t, string(steps[4].Stdin), "NODE_ENV=production\nLOG_LEVEL=info\nAI_PROVIDER=claude\nAI_API_KEY=sk-extra-0123456789\n")
	assert.NotContains(t, steps[4].Cmd, "sk-extra")
	_, err = rachel8.Steps(rachel8.Options{}, s, false)
	assert.EqualError(t, err, "rachel8: secret AI_API_KEY is not named in Options.SecretEnv")
	s.Env = nil
	_, err = rachel8.Steps(opts, s, false)
	assert.EqualError(t, err, "rachel8: secret AI_API_KEY is missing")
}
