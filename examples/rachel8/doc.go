// Package rachel8 is a complete Hatchery recipe: everything that has to
// happen on a tenant's server to run Rachel8, a personal AI assistant on
// Telegram (https://github.com/polly3223/Rachel8), split the Hatchery way
// into a cloud-config with nothing secret in it and a list of injection
// steps that carry the secrets over SSH.
//
// It is importable (the quickstart, the control-plane example and the
// provision tests use it) and is meant to be copied: a recipe for another
// service has the same three parts.
//
// # Bootstrap: the cloud-config
//
// Bootstrap returns a cloudinit.Config that creates the user (default
// "rachel": passwordless sudo, /bin/bash, the control plane's public key);
// installs git, curl, unzip and gh, the GitHub CLI coming from its apt
// repository (see Sources); puts ~/.bun/bin and ~/.local/bin on the
// user's PATH; runs the Bun (https://bun.sh/install) and Claude CLI
// (https://claude.ai/install.sh) installers as the user, since both
// install into the invoking user's home; clones the repository into
// ~/rachel8 and runs bun install there as the user; creates ~/shared owned
// by the user; and phones home with the server's ed25519 host key,
// instance ID, hostname and FQDN (10 tries). runcmd stops at its first
// failing command (set -e) and its last entries fail unless all of that
// is in place and gh is a version that the configured repository offers,
// so a failed install shows in `cloud-init status`, where the injection's
// first step stops. The document stays far below cloud-init's 32 KiB
// limit (under 5 KiB) and passes cloud-init's schema.
//
// # Sources
//
// Everything the bootstrap fetches can be moved, for a pinned mirror, an
// air-gapped network or a proxy with a CA of its own (Options):
// BunInstaller and ClaudeInstaller (the install scripts, which must do
// what the originals do to the file system), Repo (an https URL, a
// private host with a port included), GitHubCLI (the apt repository and
// how its key is trusted) and CACerts (PEM CA certificates that
// cloud-init's ca_certs module installs in its first stage, before apt,
// the installers and git fetch anything).
//
// The GitHub CLI's key is never fetched from a keyserver at boot
// (keyservers go down). By default the bootstrap fetches the keyring
// https://cli.github.com/packages/githubcli-archive-keyring.gpg over
// HTTPS in runcmd, lists it with gpg (installed for the purpose) and
// accepts it only when every key in it is pinned, by its primary key's
// fingerprint or one of its subkeys': 7F38BBB59D064DBCB3D84D725612B36462313325,
// which signs the repository since 2026, or
// 2C6106201985B60E6C7AC87323F3D4EA75716059, the former key (expired on
// 2026-09-05), pinned as public install scripts do so that a keyring that
// still carries it is accepted; apt refuses its expired signatures. Then
// it adds the source, updates it alone with --error-on=any (a repository
// apt cannot fetch or verify is an error) and installs gh. A mirror can
// serve its own keyring (AptRepo.KeyringURL with Fingerprints), or the key
// can be given inline (AptRepo.Key, an armored public key): cloud-init
// writes it to /etc/apt/keyrings/github-cli.asc in its first stage and
// the apt source names it, so gh installs with the other packages.
//
// When gh does not come from the configured repository, the boot fails:
// apt only warns when a repository cannot be fetched, and installs
// Debian's own, older gh in its place, which cloud-init would report as a
// success. The last runcmd entry compares the installed version with
// those the repository offers (apt-cache madison) and prints apt-cache
// policy into cloud-init's output log when they differ.
//
// # What real servers showed
//
// The recipe runs on real Debian (cloud-init 22.4, systemd 252, apt 2.6)
// in TestRecipeOnRealDebian, on provider/nspawn servers whose sources are
// a local mirror (examples/internal/mirror). What that changed:
//
//   - An inline key given to cloud-init's apt module (key: with
//     signed-by=$KEY_FILE) needs gpg on the server: cloud-init makes the
//     keyring with `gpg --dearmor`, and on an image without gpg (Debian's
//     minimal ones, the nspawn image) it writes signed-by=/dev/null,
//     apt-get update fails and apt-configure reports an error. The key is
//     now a file of its own (write_files) that apt reads armored.
//   - With a key that did not sign the repository, apt-get update fails
//     (cloud-init's apt-configure reports it) yet the packages module
//     installs Debian's gh 2.23 all the same; only the origin check stops
//     that boot.
//   - sudo logs every command line it runs (COMMAND=...) in the journal,
//     which is one more reason secrets travel only on stdin.
//   - cloud-init 22.4 writes the ca_certs certificates under
//     /usr/share/ca-certificates (newer releases under
//     /usr/local/share/ca-certificates); either way they end up in
//     /etc/ssl/certs/ca-certificates.crt, which curl, git and apt use.
//
// # Steps: the injection
//
// Steps returns, in order: wait for cloud-init (stop with its report if the
// bootstrap failed); mkdir ~/.claude (0700); ~/.claude/.credentials.json
// (0600) in the shape the Claude CLI reads,
//
//	{"claudeAiOauth":{"accessToken":"…","refreshToken":"…","expiresAt":1767225600000,"scopes":["user:inference","user:profile"]}}
//
// mkdir -p ~/rachel8 (0755; the clone made it, this keeps the next step's
// directory certain, and lets the recipe run on provider/fake servers,
// which run no runcmd); ~/rachel8/.env (0600) with TELEGRAM_BOT_TOKEN, OWNER_TELEGRAM_USER_ID,
// SHARED_FOLDER_PATH=/home/rachel/shared, NODE_ENV=production and
// LOG_LEVEL=info, then Options.Env's and Options.SecretEnv's variables
// (settings Rachel8 gained after this recipe, such as AI_PROVIDER: a user
// follows upstream without patching the recipe);
// /etc/systemd/system/rachel8.service rendered from the
// template; systemctl daemon-reload, enable, start (restart when rotating
// secrets); and a check that the unit stays active for Options.Settle,
// which otherwise fails with the tail of its journal. Files and directories
// are written as root through sudo -n and then given to the user, so the
// files the service reads are the user's whichever user SSH logs in as.
// Secret values travel only on the SSH channel's stdin.
//
// The .env values are written unquoted, so they are checked rather than
// escaped: a Telegram bot token with a newline, a quote, a space or any
// character outside letters, digits and _ - . : / + = @ , is refused with a
// *SecretError that names the variable and never shows the value.
//
// A tenant without secrets (its SecretSource answers inject.ErrNoSecrets,
// which provision turns into an empty map) gets StepsWithoutSecrets: the
// wait, ~/rachel8, the unit installed and enabled, nothing secret and
// nothing started. Its ConditionPathExists keeps it from starting, at boot
// too, until provision's Rotate brings the secrets, writes .env and
// restarts it. The tenant is ready: its server is prepared.
//
// # The unit template
//
// Rachel8's rachel8.service is a template: __USER__, __WORKING_DIR__ and
// __BUN_PATH__ placeholders, and ConditionPathExists=__WORKING_DIR__/.env,
// so a copy installed unrendered names a directory that does not exist and
// never starts. The recipe renders it, and refuses to install a result that
// still holds "__".
//
// The template is embedded in this package (rachel8.service.tmpl) rather
// than read from the checkout on the server. It is written for this recipe
// after the repository's: the same placeholders, condition, user, working
// directory and ExecStart (__BUN_PATH__ run src/index.ts), Restart=always
// with a start-rate limit, NODE_ENV=production and the journal for output;
// it waits for network-online.target rather than network.target and puts
// the start-rate limit in [Unit]: in [Service], where the repository has
// it, systemd ignores StartLimitIntervalSec with a warning (checked with
// systemd-analyze verify, which the tests run when it is installed). That keeps the injection a
// single list of steps decided before the first SSH command, makes the
// rendered unit exactly testable, and means a change upstream (a renamed
// placeholder, a new directive) cannot silently change what production
// servers run: a new template is adopted by updating the file here, or by
// passing one in Options.UnitTemplate. The price is that the copy has to
// follow upstream by hand.
//
// # Secrets
//
// Steps takes a Secrets value. From builds one from the map an
// inject.SecretSource returns, keyed by the Key… constants; Load does both.
// EnvSource is a SecretSource that reads one set of secrets, for every
// tenant, from the environment:
//
//	RACHEL8_CLAUDE_ACCESS_TOKEN     Claude OAuth access token
//	RACHEL8_CLAUDE_REFRESH_TOKEN    Claude OAuth refresh token
//	RACHEL8_CLAUDE_EXPIRES_AT       token expiry: ms since the Unix epoch, or RFC 3339
//	RACHEL8_TELEGRAM_BOT_TOKEN      the Telegram bot's token
//	RACHEL8_OWNER_TELEGRAM_USER_ID  the owner's numeric Telegram user ID
//
// and, for Options.SecretEnv's names listed in EnvSource.Extra, RACHEL8_
// and the name.
//
// # Using it
//
// With the orchestrator, Apply sets provision.Config's BootstrapFunc,
// StepsFunc and SSHUser; the Provisioner fills in the phone_home URL, adds
// its key and restarts instead of starting when it rotates or retries:
//
//	cfg := provision.Config{Provider: cloud, Store: st, Secrets: rachel8.EnvSource{}, Signer: signer, …}
//	rachel8.Apply(&cfg, rachel8.Options{})
//	p, err := provision.New(cfg)
//
// By hand, the two halves are:
//
//	cfg, err := rachel8.Bootstrap(rachel8.Options{PublicKey: signer.PublicKey(), PhoneHomeURL: url})
//	userData, err := cloudinit.Build(cfg) // the server's user-data
//	// … once it has phoned home, dial it pinned to the host key it posted …
//	s, err := rachel8.Load(ctx, rachel8.EnvSource{}, tenantID)
//	steps, err := rachel8.Steps(rachel8.Options{}, s, false)
//	err = inject.Run(ctx, conn, steps, inject.WithRedact(s.Values()...))
package rachel8
