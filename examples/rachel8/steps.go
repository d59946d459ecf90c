package rachel8

import (
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hatchery-dev/hatchery/inject"
)

// unitTemplate is the rachel8.service template, placeholders and all; see
// UnitTemplate and the package documentation for why it is carried here
// rather than read from the checkout on the server.
//
//go:embed rachel8.service.tmpl
var unitTemplate []byte

// UnitTemplate returns a copy of the embedded rachel8.service template.
func UnitTemplate() []byte { return append([]byte(nil), unitTemplate...) }

// ErrTemplate is wrapped when the unit template leaves a placeholder
// unrendered: installing it would give a unit that never starts.
var ErrTemplate = errors.New("rachel8: unit template")

// Unit renders the rachel8.service template (Options.UnitTemplate, or the
// embedded one) for opts: __USER__ becomes the user, __WORKING_DIR__ the
// checkout, __BUN_PATH__ the bun binary. A "__" left in the result is an
// error wrapping ErrTemplate: it is an unknown placeholder.
func Unit(opts Options) ([]byte, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return renderUnit(o)
}

func renderUnit(o Options) ([]byte, error) {
	tmpl := o.UnitTemplate
	if len(tmpl) == 0 {
		tmpl = unitTemplate
	}
	out := strings.NewReplacer(
		"__USER__", o.User,
		"__WORKING_DIR__", o.Dir(),
		"__BUN_PATH__", o.BunPath(),
	).Replace(string(tmpl))
	if i := strings.Index(out, "__"); i >= 0 {
		line := out[strings.LastIndexByte(out[:i], '\n')+1:]
		if j := strings.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		return nil, fmt.Errorf("%w: placeholder left after rendering, in line %q", ErrTemplate, line)
	}
	if !strings.Contains(out, "ConditionPathExists="+o.Dir()+"/.env") {
		return nil, fmt.Errorf("%w: no ConditionPathExists=%s/.env", ErrTemplate, o.Dir())
	}
	return []byte(out), nil
}

// Step names, in the order Steps returns them; inject reports them in
// events and in *inject.StepError.
const (
	StepWaitCloudInit = "wait for cloud-init"
	StepClaudeDir     = "create ~/.claude"
	StepCredentials   = "write ~/.claude/.credentials.json"
	StepAppDir        = "ensure ~/rachel8"
	StepEnv           = "write ~/rachel8/.env"
	StepInstallUnit   = "install " + UnitName
	StepDaemonReload  = "systemctl daemon-reload"
	StepEnable        = "enable " + UnitName
	StepStart         = "start " + UnitName
	StepRestart       = "restart " + UnitName
	StepCheckActive   = "check " + UnitName + " is active"
)

// Steps returns what the control plane runs over SSH, as Options.User, once
// cloud-init has phoned home, in this order:
//
//  1. wait for cloud-init, stopping with its report if the bootstrap failed;
//  2. mkdir ~/.claude (0700, owned by the user);
//  3. ~/.claude/.credentials.json (0600, owned by the user): the Claude
//     OAuth tokens, expiresAt in milliseconds since the Unix epoch;
//  4. mkdir -p ~/rachel8 (0755, owned by the user): the clone made it,
//     this keeps the next step's directory certain;
//  5. ~/rachel8/.env (0600, owned by the user): TELEGRAM_BOT_TOKEN,
//     OWNER_TELEGRAM_USER_ID, SHARED_FOLDER_PATH, NODE_ENV=production,
//     LOG_LEVEL=info, then Options.Env and Options.SecretEnv (from
//     s.Env), in order;
//  6. /etc/systemd/system/rachel8.service (0644, root), rendered from the
//     template;
//  7. systemctl daemon-reload; 8. enable; 9. start, or restart when rotate
//     is true (new secrets for a running service);
//  10. check the unit stays active for Options.Settle, else fail with the
//     tail of its journal.
//
// Files and directories are created as root (sudo -n) and then given to
// the user, so the steps do not depend on which user SSH logs in as.
//
// Secret values travel only in the steps' Stdin. Secrets are validated
// first; a bad value is a *SecretError naming the secret, and no step is
// returned; so is a name of Options.SecretEnv that s.Env lacks, or one in
// s.Env that Options.SecretEnv does not name. Pass s.Values() to
// inject.WithRedact when running them.
func Steps(opts Options, s Secrets, rotate bool) ([]inject.Step, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var missing []string
	for _, k := range o.SecretEnv {
		if _, ok := s.Env[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, &SecretError{Name: strings.Join(missing, ", "), Reason: plural(len(missing), "is missing", "are missing")}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if !slices.Contains(o.SecretEnv, k) {
			return nil, &SecretError{Name: k, Reason: "is not named in Options.SecretEnv"}
		}
	}
	creds, err := credentials(s)
	if err != nil {
		return nil, err
	}
	unit, err := renderUnit(o)
	if err != nil {
		return nil, err
	}
	// As root, then handed to the user: the steps work whatever the SSH
	// user (provision.Config.SSHUser) is, and replace a file that a
	// mistaken earlier run left owned by root.
	owner := []inject.FileOption{inject.AsRoot(), inject.Owner(o.User + ":" + o.User)}
	claudeDir := o.Home() + "/.claude"

	named := func(name string, st inject.Step) inject.Step { st.Name = name; return st }
	start := named(StepStart, inject.StartUnit(UnitName))
	if rotate {
		start = named(StepRestart, inject.RestartUnit(UnitName))
	}
	return []inject.Step{
		// Recoverable (degraded) results pass: warnings from the image's
		// own configuration must not block a tenant; a failed runcmd is
		// an error and stops here.
		named(StepWaitCloudInit, inject.WaitCloudInit(true)),
		named(StepClaudeDir, inject.Mkdir(claudeDir, 0o700, owner...)),
		named(StepCredentials, inject.WriteFile(claudeDir+"/.credentials.json", creds, 0o600, owner...)),
		// The clone made it; this keeps .env's directory certain (and the
		// recipe usable on provider/fake servers, which run no runcmd).
		named(StepAppDir, inject.Mkdir(o.Dir(), 0o755, owner...)),
		named(StepEnv, inject.WriteFile(o.Dir()+"/.env", dotenv(o, s), 0o600, owner...)),
		named(StepInstallUnit, inject.InstallUnit(UnitName, unit)),
		named(StepDaemonReload, inject.DaemonReload()),
		named(StepEnable, inject.EnableUnit(UnitName)),
		start,
		named(StepCheckActive, inject.CheckActive(UnitName, o.Settle)),
	}, nil
}

// StepsWithoutSecrets returns what the control plane runs for a tenant
// that has no secrets yet (its SecretSource answered inject.ErrNoSecrets,
// which provision turns into an empty map): wait for cloud-init, ensure
// ~/rachel8, install rachel8.service, daemon-reload and enable it; no
// secret is written and the unit is not started. Its
// ConditionPathExists=~/rachel8/.env keeps it from starting, at boot too,
// until a later run with secrets (provision's Rotate) writes .env and
// restarts it. Files a previous run wrote are left alone: removing a
// tenant's secrets does not stop a running service.
func StepsWithoutSecrets(opts Options) ([]inject.Step, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	unit, err := renderUnit(o)
	if err != nil {
		return nil, err
	}
	named := func(name string, st inject.Step) inject.Step { st.Name = name; return st }
	return []inject.Step{
		named(StepWaitCloudInit, inject.WaitCloudInit(true)),
		named(StepAppDir, inject.Mkdir(o.Dir(), 0o755, inject.AsRoot(), inject.Owner(o.User+":"+o.User))),
		named(StepInstallUnit, inject.InstallUnit(UnitName, unit)),
		named(StepDaemonReload, inject.DaemonReload()),
		named(StepEnable, inject.EnableUnit(UnitName)),
	}, nil
}
