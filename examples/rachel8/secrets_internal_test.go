package rachel8

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzFrom checks that whatever a SecretSource returns, From either refuses
// it or yields files that read back exactly: a .env of five NAME=value
// lines and a .credentials.json that decodes to the same tokens.
func FuzzFrom(f *testing.F) {
	f.Add("sk-ant-oat01-abc", "sk-ant-ort01-def", "1767225600123", "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "123456789")
	f.Add("tok", "ref", "2026-01-01T00:00:00Z", "1:a-b_c.d", "1")
	f.Add("a\nb", "c", "1", "1:a\nLOG_LEVEL=debug", "1")
	f.Add("a", "b", "0", `1:"quoted"`, "12a")
	f.Add("ä<>&", "\u2028", "99999999999999", "x=y", "00000000000000000000")
	f.Fuzz(func(t *testing.T, access, refresh, expires, bot, owner string) {
		s, err := From(map[string]string{
			KeyClaudeAccessToken:   access,
			KeyClaudeRefreshToken:  refresh,
			KeyClaudeExpiresAt:     expires,
			KeyTelegramBotToken:    bot,
			KeyOwnerTelegramUserID: owner,
		})
		if err != nil {
			for _, v := range []string{access, refresh, bot} {
				if len(v) >= 8 && strings.Contains(err.Error(), v) {
					t.Fatalf("error %q shows a secret value", err)
				}
			}
			return
		}
		env := string(dotenv(Options{}, s))
		lines := strings.Split(strings.TrimSuffix(env, "\n"), "\n")
		if len(lines) != 5 || lines[0] != "TELEGRAM_BOT_TOKEN="+bot || lines[1] != "OWNER_TELEGRAM_USER_ID="+owner {
			t.Fatalf(".env does not read back: %q", env)
		}
		raw, err := credentials(s)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			ClaudeAiOauth struct {
				AccessToken, RefreshToken string
				ExpiresAt                 int64
				Scopes                    []string
			}
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("credentials are not JSON: %v", err)
		}
		o := doc.ClaudeAiOauth
		if o.AccessToken != access || o.RefreshToken != refresh || o.ExpiresAt != s.ClaudeExpiresAt.UnixMilli() || o.ExpiresAt <= 0 {
			t.Fatalf("credentials do not read back: %s", raw)
		}
	})
}

func TestCredentialsExact(t *testing.T) {
	t.Parallel()
	s := Secrets{
		ClaudeAccessToken:   "acc<&>",
		ClaudeRefreshToken:  "ref",
		ClaudeExpiresAt:     time.UnixMilli(1767225600123),
		TelegramBotToken:    "1:a",
		OwnerTelegramUserID: "42",
	}
	got, err := credentials(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"claudeAiOauth":{"accessToken":"acc<&>","refreshToken":"ref","expiresAt":1767225600123,"scopes":["user:inference","user:profile"]}}`
	if string(got) != want {
		t.Fatalf("credentials:\n got %s\nwant %s", got, want)
	}
}
