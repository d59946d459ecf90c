package rachel8

import (
	"context"
	"fmt"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// BootstrapFunc returns the recipe's cloud-config as a
// provision.Config.BootstrapFunc. The Provisioner fills in what is left
// open: the phone_home URL (Options.PhoneHomeURL must be empty), the host
// name (the server name, unless Options.Hostname is set) and, when
// Options.PublicKey is nil, its Signer's key for the user.
func BootstrapFunc(opts Options) func(ctx context.Context, r store.Record) (cloudinit.Config, error) {
	return func(ctx context.Context, r store.Record) (cloudinit.Config, error) {
		if opts.PhoneHomeURL != "" {
			return cloudinit.Config{}, fmt.Errorf("%w: PhoneHomeURL must be empty under provision, which sets its own tokened URL", ErrOptions)
		}
		return bootstrap(opts)
	}
}

// StepsFunc returns the recipe's injection steps as a
// provision.Config.StepsFunc: the tenant's secrets are read with From
// (keyed by the Key… constants, and Options.SecretEnv's names) and the
// service is restarted rather than started when the Provisioner says
// Rotate. A tenant without secrets (an empty map: its SecretSource
// answered inject.ErrNoSecrets) gets StepsWithoutSecrets: its server is
// made ready with the unit installed and enabled, not started, until a
// Rotate brings the secrets.
func StepsFunc(opts Options) func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
	return func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
		if len(in.Secrets) == 0 {
			return StepsWithoutSecrets(opts)
		}
		s, err := From(in.Secrets, opts.SecretEnv...)
		if err != nil {
			return nil, err
		}
		return Steps(opts, s, in.Rotate)
	}
}

// Apply sets cfg's BootstrapFunc, StepsFunc and SSHUser for the recipe;
// the rest of cfg (Provider, Store, Secrets, Signer, callback) is the
// caller's. Secrets should return the Key… names, as EnvSource does.
func Apply(cfg *provision.Config, opts Options) {
	cfg.BootstrapFunc = BootstrapFunc(opts)
	cfg.StepsFunc = StepsFunc(opts)
	cfg.SSHUser = opts.user()
}
