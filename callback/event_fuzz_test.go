package callback

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParseEvent: parseEvent never panics, and what it accepts keeps every
// documented promise: names of the allowed shape, a sanitized and bounded
// description, consistent type and result, a time in range; and the event
// posted again as cloud-init would post it parses to the same event.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"name": "modules-final/config-scripts-user", "description": "running config-scripts-user with frequency once-per-instance", "event_type": "start", "origin": "cloudinit", "timestamp": 1733400000.123456}`,
		`{"name": "modules-final", "description": "running modules for final", "event_type": "finish", "origin": "cloudinit", "timestamp": 1733400001.5, "result": "FAIL"}`,
		`{"name": "init-local/search-Hetzner", "description": "x\u202e\n\u0000", "event_type": "finish", "origin": "cloudinit", "timestamp": 0, "result": "WARN", "files": []}`,
		`{"name": "a", "name": "a", "description": "", "event_type": "start", "origin": "o", "timestamp": 1}`,
		`{"name": "a//b", "description": "", "event_type": "start", "origin": "o", "timestamp": 1e9}`,
		`{}`, `[]`, `null`, `{"timestamp": -0}`, `{"timestamp": 1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := parseEvent(body)
		if err != nil {
			if ev != (BootEvent{}) {
				t.Fatal("an error with an event")
			}
			return
		}
		checkEvent(t, ev)
		// Posted again, by a cloud-init that sends what ev holds.
		m := map[string]any{
			"name": ev.Name, "description": ev.Description, "event_type": string(ev.Type),
			"origin": ev.Origin, "timestamp": float64(ev.Time.UnixMicro()) / 1e6,
		}
		if ev.Type == EventFinish {
			m["result"] = string(ev.Result)
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseEvent(again)
		if err != nil {
			t.Fatalf("re-posted event refused: %v\n%s", err, again)
		}
		if back.Name != ev.Name || back.Type != ev.Type || back.Result != ev.Result || back.Origin != ev.Origin ||
			back.Description != ev.Description || back.Stage != ev.Stage || back.Module != ev.Module {
			t.Fatalf("re-posted event differs:\n%+v\n%+v", ev, back)
		}
		if d := back.Time.Sub(ev.Time); d < -time1us || d > time1us {
			t.Fatalf("time moved by %v", d)
		}
	})
}

const time1us = 1000 // nanoseconds

func checkEvent(t *testing.T, ev BootEvent) {
	t.Helper()
	if !validEventName(ev.Name) || ev.Stage == "" || !strings.HasPrefix(ev.Name, ev.Stage) {
		t.Fatalf("name %q, stage %q", ev.Name, ev.Stage)
	}
	if ev.Module != "" && !strings.HasSuffix(ev.Name, "/config-"+ev.Module) {
		t.Fatalf("module %q of %q", ev.Module, ev.Name)
	}
	switch {
	case ev.Type == EventStart && ev.Result == "":
	case ev.Type == EventFinish && (ev.Result == ResultSuccess || ev.Result == ResultWarn || ev.Result == ResultFail):
	default:
		t.Fatalf("type %q with result %q", ev.Type, ev.Result)
	}
	if ev.Origin == "" || len(ev.Origin) > maxOrigin || !validWord(ev.Origin) {
		t.Fatalf("origin %q", ev.Origin)
	}
	if len(ev.Description) > MaxDescription || !utf8.ValidString(ev.Description) {
		t.Fatalf("description %q", ev.Description)
	}
	for _, r := range ev.Description {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			t.Fatalf("description holds %U", r)
		}
	}
	if ev.Time.Location().String() != "UTC" || ev.Time.Unix() < 0 || ev.Time.Unix() >= maxTimestamp || ev.Time.Nanosecond()%1000 != 0 {
		t.Fatalf("time %v", ev.Time)
	}
}

func TestSanitize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain":                  "plain",
		"a\nb\r\tc":              "a b  c",
		"\x1b[31mred\x1b[0m":     " [31mred [0m",
		"bidi \u202e\u2066x":     "bidi   x",
		"zero\u200bwidth":        "zero width",
		"bad \xff utf8":          "bad \uFFFD utf8",
		"sep\u2028\u2029":        "sep  ",
		strings.Repeat("a", 300): strings.Repeat("a", 253) + "…",
		strings.Repeat("é", 200): strings.Repeat("é", 126) + "…",
		strings.Repeat("a", 256): strings.Repeat("a", 256),
	} {
		got := sanitize(in, MaxDescription)
		if got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
		if len(got) > MaxDescription {
			t.Errorf("sanitize(%q) is %d bytes", in, len(got))
		}
	}
}
