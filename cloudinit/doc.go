// Package cloudinit renders cloud-init user-data from a typed model, and
// refuses any that real cloud-init would choke on or that holds a secret.
//
// # Model
//
// Config models the cloud-config keys a provisioning control plane needs:
// hostname, users, package_update/package_upgrade, apt sources with their
// signing keys, packages, write_files, runcmd and phone_home. Commands are
// argv lists (Command), which cloud-init single-quotes word by word, so no
// argument can start another command; Shell, RunAs and StopOnError build
// the few that need more.
//
// # Rendering
//
// Build validates a Config, then renders "#cloud-config\n" followed by the
// YAML that go.yaml.in/yaml/v3 emits for the model, keys in declaration
// order, map keys sorted: the same Config always gives the same bytes. No
// text is templated. Each string is given the style that both yaml.v3
// (Parse) and PyYAML (cloud-init, YAML 1.1) read back as that same string:
// for example "=" or "1_0" are quoted, which yaml.v3 alone would leave
// plain and PyYAML would fail on or read as the integer 10. Permissions are
// always quoted strings ("0600"); an unquoted 0600 is the integer 384.
// phone_home's tries is written out, 10 when left 0.
//
// # Validation
//
// Every refusal is a *FieldError that wraps ErrInvalid and names the field
// as it appears in the document (users[0].name, runcmd[2][0],
// apt.sources[github-cli].keyid) with the rule it breaks, never the value.
// The rules follow what cloud-init 22.4 does with the values: sudo is one
// string, not a list; a phone_home URL is an absolute http(s) URI whose
// only variable is $INSTANCE_ID (cloud-init's schema rejects
// ${INSTANCE_ID}, and its templater fails on any other $NAME); post is a
// non-empty list of cloud-init's seven keys (empty makes cloud-init send a
// GET with no body); an apt source's keyid is a full fingerprint, and the
// expired GitHub CLI key 23F3D4EA75716059 is refused. Config.Validate runs
// the same checks alone.
//
// # Secrets
//
// User-data can be read from inside the server and by the provider, so
// nothing secret may go in. Build fails with a *SecretError (ErrSecret)
// when a field, a decoded (b64 or gzip+b64) write_files content, or the
// rendered document holds a private key block, a token-shaped string
// (Anthropic sk-ant-, GitHub ghp_/gho_/ghu_/ghs_/ghr_/github_pat_, Telegram
// bot tokens, AWS AKIA/ASIA key IDs, Slack xox?-) or any value listed in
// Config.Secrets. The error names the kind and the field (or the line of
// the document), never the value. Tokens must stand at word boundaries, so
// public SSH keys, fingerprints and digests do not match.
//
// # Size
//
// What Build returns must fit Config.MaxSize bytes (0 means MaxSize,
// Hetzner's 32 KiB user_data limit), else it fails with a *SizeError
// (ErrTooLarge) that carries Size and Limit. With Config.Compress it
// returns base64(gzip(document)) on one line with no trailing newline,
// which Hetzner's datasource decodes (it ignores base64 that is wrapped)
// and which carries several times more; validation and the secret scan
// run on the plain document, the limit on what is sent.
//
// # Reading back
//
// Parse reads plain or compressed user-data back into a Config, strictly:
// unknown keys, duplicate keys, wrong types and a second document are
// errors wrapping ErrInvalid. Decode returns just the plain document.
package cloudinit
