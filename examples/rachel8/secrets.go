package rachel8

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hatchery-dev/hatchery/inject"
)

// Names of the secrets in the map a SecretSource returns (see From), and,
// with EnvPrefix in front, of the environment variables EnvSource reads.
const (
	KeyClaudeAccessToken   = "CLAUDE_ACCESS_TOKEN"    // Claude OAuth access token
	KeyClaudeRefreshToken  = "CLAUDE_REFRESH_TOKEN"   // Claude OAuth refresh token
	KeyClaudeExpiresAt     = "CLAUDE_EXPIRES_AT"      // access token expiry: ms since the Unix epoch, or RFC 3339
	KeyTelegramBotToken    = "TELEGRAM_BOT_TOKEN"     // the tenant's Telegram bot token
	KeyOwnerTelegramUserID = "OWNER_TELEGRAM_USER_ID" // the Telegram user the bot obeys, digits only
)

// EnvPrefix is put in front of each Key… name to form the environment
// variable EnvSource reads, e.g. RACHEL8_CLAUDE_ACCESS_TOKEN.
const EnvPrefix = "RACHEL8_"

// keys lists every secret name the recipe needs, in the order the files use them.
var keys = [...]string{
	KeyClaudeAccessToken,
	KeyClaudeRefreshToken,
	KeyClaudeExpiresAt,
	KeyTelegramBotToken,
	KeyOwnerTelegramUserID,
}

// Keys returns the names of the secrets the recipe needs, in a fixed order.
func Keys() []string { return keys[:] }

// ErrInvalidSecret is matched (errors.Is) by every *SecretError.
var ErrInvalidSecret = errors.New("rachel8: invalid secret")

// SecretError reports a missing or unusable secret. It names the secret,
// never its value, so it is safe to log and to store in a Record.
type SecretError struct {
	Name   string // e.g. TELEGRAM_BOT_TOKEN
	Reason string // e.g. "is missing", "contains a newline"
}

// Error names the secret and why it was refused; never its value.
func (e *SecretError) Error() string { return "rachel8: secret " + e.Name + " " + e.Reason }

// Is reports whether target is ErrInvalidSecret.
func (e *SecretError) Is(target error) bool { return target == ErrInvalidSecret }

// Secrets are what one Rachel8 tenant needs on its server. They reach it
// only on the SSH channel's stdin (see Steps), never in user-data, a
// command line, a log line or an error.
type Secrets struct {
	ClaudeAccessToken   string
	ClaudeRefreshToken  string
	ClaudeExpiresAt     time.Time // written as milliseconds since the Unix epoch
	TelegramBotToken    string
	OwnerTelegramUserID string
	// Env are the values of Options.SecretEnv, by name: extra .env
	// variables that are secret. From fills it in for the names it is
	// given.
	Env map[string]string
}

// From reads Secrets from the map a SecretSource returns, keyed by the
// Key… constants, and the extra secret .env variables named by extra
// (Options.SecretEnv) into Secrets.Env. CLAUDE_EXPIRES_AT is milliseconds
// since the Unix epoch (what .credentials.json holds) or an RFC 3339 time.
// Other keys are ignored. The result is validated; errors are
// *SecretError naming the key.
func From(m map[string]string, extra ...string) (Secrets, error) {
	var missing []string
	for _, k := range append(keys[:len(keys):len(keys)], extra...) {
		if m[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return Secrets{}, &SecretError{Name: strings.Join(missing, ", "), Reason: plural(len(missing), "is missing", "are missing")}
	}
	exp, err := parseExpiry(m[KeyClaudeExpiresAt])
	if err != nil {
		return Secrets{}, err
	}
	s := Secrets{
		ClaudeAccessToken:   m[KeyClaudeAccessToken],
		ClaudeRefreshToken:  m[KeyClaudeRefreshToken],
		ClaudeExpiresAt:     exp,
		TelegramBotToken:    m[KeyTelegramBotToken],
		OwnerTelegramUserID: m[KeyOwnerTelegramUserID],
	}
	for _, k := range extra {
		if s.Env == nil {
			s.Env = make(map[string]string, len(extra))
		}
		s.Env[k] = m[k]
	}
	if err := s.Validate(); err != nil {
		return Secrets{}, err
	}
	return s, nil
}

// Map is the inverse of From: the secrets keyed by the Key… constants,
// CLAUDE_EXPIRES_AT in milliseconds since the Unix epoch, and Env's
// variables by their names. Handy for inject.StaticSecrets.
func (s Secrets) Map() map[string]string {
	m := map[string]string{
		KeyClaudeAccessToken:   s.ClaudeAccessToken,
		KeyClaudeRefreshToken:  s.ClaudeRefreshToken,
		KeyClaudeExpiresAt:     strconv.FormatInt(s.ClaudeExpiresAt.UnixMilli(), 10),
		KeyTelegramBotToken:    s.TelegramBotToken,
		KeyOwnerTelegramUserID: s.OwnerTelegramUserID,
	}
	maps.Copy(m, s.Env)
	return m
}

func parseExpiry(v string) (time.Time, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		if ms <= 0 {
			return time.Time{}, &SecretError{Name: KeyClaudeExpiresAt, Reason: "is not a positive number of milliseconds"}
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, &SecretError{Name: KeyClaudeExpiresAt, Reason: "is neither milliseconds since the Unix epoch nor an RFC 3339 time"}
	}
	return t.UTC(), nil
}

// Validate checks every field; the error is a *SecretError naming the
// first field at fault, by its Key… name, never its value.
//
// The Claude tokens are JSON-encoded, so only emptiness, invalid UTF-8,
// whitespace and control characters are refused. The .env values are
// written unquoted, so TELEGRAM_BOT_TOKEN may hold only letters, digits
// and _ - . : / + = @ , and OWNER_TELEGRAM_USER_ID only digits: anything
// else (a newline, a quote, a space, a $ or a backslash) is refused rather
// than escaped, because dotenv parsers disagree on escaping. Env's names
// must be variable names (upper case letters, digits and _) and its values
// are held to TELEGRAM_BOT_TOKEN's rule.
func (s Secrets) Validate() error {
	for _, f := range []struct{ name, v string }{
		{KeyClaudeAccessToken, s.ClaudeAccessToken},
		{KeyClaudeRefreshToken, s.ClaudeRefreshToken},
	} {
		if err := checkToken(f.name, f.v); err != nil {
			return err
		}
	}
	if s.ClaudeExpiresAt.IsZero() || s.ClaudeExpiresAt.UnixMilli() <= 0 {
		return &SecretError{Name: KeyClaudeExpiresAt, Reason: "is not set"}
	}
	if err := checkEnvValue(KeyTelegramBotToken, s.TelegramBotToken); err != nil {
		return err
	}
	id := s.OwnerTelegramUserID
	if id == "" {
		return &SecretError{Name: KeyOwnerTelegramUserID, Reason: "is missing"}
	}
	if len(id) > 20 || strings.Trim(id, "0123456789") != "" {
		return &SecretError{Name: KeyOwnerTelegramUserID, Reason: "is not a Telegram user ID (1 to 20 digits)"}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if !envName.MatchString(k) {
			return &SecretError{Name: "in Env", Reason: "has a name that is not a variable name (upper case letters, digits and _)"}
		}
		if err := checkEnvValue(k, s.Env[k]); err != nil {
			return err
		}
	}
	return nil
}

// Values returns the secret values, for inject.WithRedact.
func (s Secrets) Values() []string {
	v := []string{s.ClaudeAccessToken, s.ClaudeRefreshToken, s.TelegramBotToken}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		v = append(v, s.Env[k])
	}
	return v
}

func checkToken(name, v string) error {
	switch {
	case v == "":
		return &SecretError{Name: name, Reason: "is missing"}
	case !utf8.ValidString(v):
		return &SecretError{Name: name, Reason: "is not valid UTF-8"}
	}
	for _, r := range v {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return &SecretError{Name: name, Reason: "contains " + describe(r)}
		}
	}
	return nil
}

// checkEnvValue accepts what can go unquoted after NAME= in a .env file and
// be read back identically by every dotenv parser (Bun's included).
func checkEnvValue(name, v string) error {
	if r := envValueReason(v); r != "" {
		return &SecretError{Name: name, Reason: r}
	}
	return nil
}

// envValueReason says why v cannot go unquoted into a .env file, without
// quoting v; "" when it can.
func envValueReason(v string) string {
	if v == "" {
		return "is missing"
	}
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("_-.:/+=@,", r):
		default:
			return "contains " + describe(r) + ", which a .env value may not hold (allowed: letters, digits and _ - . : / + = @ ,)"
		}
	}
	return ""
}

// describe names a refused character without quoting the secret around it.
func describe(r rune) string {
	switch r {
	case '\n':
		return "a newline"
	case '\r':
		return "a carriage return"
	case '\t':
		return "a tab"
	case ' ':
		return "a space"
	case '"':
		return "a double quote"
	case '\'':
		return "a single quote"
	case '`':
		return "a backquote"
	case '\\':
		return "a backslash"
	case '$':
		return "a dollar sign"
	case '#':
		return "a hash sign"
	case utf8.RuneError:
		return "invalid UTF-8"
	}
	if unicode.IsControl(r) || r > unicode.MaxASCII {
		return fmt.Sprintf("the character %U", r)
	}
	return fmt.Sprintf("the character %q", r)
}

// credentials renders ~/.claude/.credentials.json in the shape the Claude
// CLI reads.
func credentials(s Secrets) ([]byte, error) {
	type oauth struct {
		AccessToken  string   `json:"accessToken"`
		RefreshToken string   `json:"refreshToken"`
		ExpiresAt    int64    `json:"expiresAt"`
		Scopes       []string `json:"scopes"`
	}
	doc := struct {
		ClaudeAiOauth oauth `json:"claudeAiOauth"`
	}{oauth{
		AccessToken:  s.ClaudeAccessToken,
		RefreshToken: s.ClaudeRefreshToken,
		ExpiresAt:    s.ClaudeExpiresAt.UnixMilli(),
		Scopes:       []string{"user:inference", "user:profile"},
	}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("rachel8: encode .credentials.json: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// dotenv renders Rachel8's .env: the recipe's five variables, then
// o.Env's, then o.SecretEnv's from s.Env. s must have passed Validate, o
// withDefaults, and s.Env must hold every name of o.SecretEnv.
func dotenv(o Options, s Secrets) []byte {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"TELEGRAM_BOT_TOKEN", s.TelegramBotToken},
		{"OWNER_TELEGRAM_USER_ID", s.OwnerTelegramUserID},
		{"SHARED_FOLDER_PATH", o.SharedDir()},
		{"NODE_ENV", "production"},
		{"LOG_LEVEL", "info"},
	} {
		b.WriteString(kv[0] + "=" + kv[1] + "\n")
	}
	for _, v := range o.Env {
		b.WriteString(v.Name + "=" + v.Value + "\n")
	}
	for _, k := range o.SecretEnv {
		b.WriteString(k + "=" + s.Env[k] + "\n")
	}
	return []byte(b.String())
}

// EnvSource is an inject.SecretSource that reads one set of Rachel8
// secrets from environment variables, the same for every tenant ID:
//
//	RACHEL8_CLAUDE_ACCESS_TOKEN     Claude OAuth access token
//	RACHEL8_CLAUDE_REFRESH_TOKEN    Claude OAuth refresh token
//	RACHEL8_CLAUDE_EXPIRES_AT       expiry, ms since the Unix epoch or RFC 3339
//	RACHEL8_TELEGRAM_BOT_TOKEN      Telegram bot token
//	RACHEL8_OWNER_TELEGRAM_USER_ID  the owner's numeric Telegram user ID
//
// It suits a demo or a single-tenant control plane; a SaaS keeps
// per-tenant secrets in its own encrypted store behind the same interface.
type EnvSource struct {
	// LookupEnv reads one variable; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
	// Extra names extra secrets to read (Options.SecretEnv), each from
	// EnvPrefix and its name: RACHEL8_AI_API_KEY for AI_API_KEY.
	Extra []string
}

var _ inject.SecretSource = EnvSource{}

// Secrets returns the variables that are set, keyed by the Key… constants
// (without EnvPrefix). When none is set it returns an error wrapping
// inject.ErrNoSecrets; when only some are, a *SecretError naming the
// missing variables.
func (e EnvSource) Secrets(ctx context.Context, id string) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lookup := e.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	m := make(map[string]string, len(keys)+len(e.Extra))
	var missing []string
	for _, k := range keys {
		if v, ok := lookup(EnvPrefix + k); ok && v != "" {
			m[k] = v
		} else {
			missing = append(missing, EnvPrefix+k)
		}
	}
	none := len(m) == 0
	for _, k := range e.Extra {
		if v, ok := lookup(EnvPrefix + k); ok && v != "" {
			m[k] = v
		} else {
			missing = append(missing, EnvPrefix+k)
		}
	}
	switch {
	case none:
		// The same for every tenant: the error does not name id.
		return nil, fmt.Errorf("rachel8: none of the %s* variables is set: %w", EnvPrefix, inject.ErrNoSecrets)
	case len(missing) > 0:
		return nil, &SecretError{Name: strings.Join(missing, ", "), Reason: plural(len(missing), "is", "are") + " not set in the environment"}
	}
	return m, nil
}

// Load asks src for tenant id's secrets and reads them with From, extra
// naming the extra secret .env variables (Options.SecretEnv). The
// source's error is returned as it is: the source says what it knows (an
// inject.StaticSecrets names the tenant, an EnvSource the variables, the
// same for every tenant), and wrapping it would say it again.
func Load(ctx context.Context, src inject.SecretSource, id string, extra ...string) (Secrets, error) {
	m, err := src.Secrets(ctx, id)
	if err != nil {
		return Secrets{}, err
	}
	return From(m, extra...)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
