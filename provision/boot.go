package provision

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/store"
)

// ReporterName is the name of the reporting webhook that Config.BootProgress
// adds to every tenant's cloud-config (cloud-config "reporting:
// {hatchery: {type: webhook, endpoint: ...}}"). A bootstrap must not use
// it for a reporter of its own.
const ReporterName = "hatchery"

// BootProgress is one step of a tenant's server booting, as cloud-init's
// reporting webhook reports it (Config.BootProgress): a stage, or a module
// of a stage, starting or finishing. It comes from the tenant's server:
// show it as what that server says.
type BootProgress struct {
	// Name is cloud-init's name for the step: the stage, then the steps
	// below it, separated by '/': "init-network/config-users-groups",
	// "modules-final/config-scripts-user", "modules-final" (the stage
	// itself), "init-network/activate-datasource".
	Name string
	// Stage is Name's first segment: "init-network", "modules-config",
	// "modules-final" (cloud-init posts nothing of init-local: it reads
	// the webhook from the user-data, which it has only from then on).
	Stage string
	// Module is the config module the step runs, as cloud-init names it
	// in /etc/cloud/cloud.cfg ("package-update-upgrade-install",
	// "scripts-user", "set_hostname"); empty for a stage's own events and
	// other steps.
	Module string
	// Activity is what the module does, in a few words, for an operator:
	// BootActivity(Module), "" for a module without a phrase and for
	// steps that are not modules.
	Activity string
	// Type is callback.EventStart or callback.EventFinish.
	Type callback.EventType
	// Result is how a finished step ended: callback.ResultSuccess,
	// ResultWarn or ResultFail; empty on a start. A module that fails
	// fails its stage too: its FAIL comes first, then the stage's.
	Result callback.Result
	// Description is cloud-init's own text ("running config-runcmd with
	// frequency once-per-instance", "config-runcmd ran successfully"),
	// sanitized by the callback handler (no control characters, at most
	// callback.MaxDescription bytes).
	Description string
	// Time is when the server says the step started or finished, by its
	// own clock (Event.Time is the control plane's).
	Time time.Time
}

// Failed reports whether the step finished with FAIL.
func (b BootProgress) Failed() bool { return b.Result == callback.ResultFail }

// String renders the step: "modules-final/config-scripts-user finished
// FAIL (running runcmd)".
func (b BootProgress) String() string {
	s := b.Name + " started"
	if b.Type == callback.EventFinish {
		s = b.Name + " finished " + string(b.Result)
	}
	if b.Activity != "" {
		s += " (" + b.Activity + ")"
	}
	return s
}

// bootActivities are the phrases of the modules of Debian's cloud-init
// that take time worth showing, by module name with '_' written '-'
// (cloud-init's own list mixes both). Consecutive modules that do one
// thing share a phrase. The modules missing here take milliseconds
// (migrator, seed_random, mounts, the host name, set-passwords, the
// runcmd module, which only writes the script scripts-user runs, the
// script directories that stay empty, final-message) or do not run on
// Debian.
var bootActivities = map[string]string{
	"bootcmd":                        "running bootcmd",
	"write-files":                    "writing files",
	"write-files-deferred":           "writing files",
	"growpart":                       "growing the root file system",
	"resizefs":                       "growing the root file system",
	"disk-setup":                     "setting up disks",
	"ca-certs":                       "installing CA certificates",
	"rsyslog":                        "configuring rsyslog",
	"users-groups":                   "creating users",
	"ssh":                            "setting up SSH",
	"keyboard":                       "setting the keyboard layout",
	"locale":                         "setting the locale",
	"apt-configure":                  "configuring apt sources",
	"ntp":                            "setting up NTP",
	"timezone":                       "setting the time zone",
	"package-update-upgrade-install": "installing packages",
	"snap":                           "installing snaps",
	"puppet":                         "installing Puppet",
	"chef":                           "installing Chef",
	"salt-minion":                    "installing Salt",
	"scripts-user":                   "running runcmd",
	"phone-home":                     "phoning home",
	"power-state-change":             "changing the power state",
}

// BootActivity returns what cloud-init's config module does, in a few
// words ("installing packages" for "package-update-upgrade-install",
// "running runcmd" for "scripts-user", "phoning home" for "phone-home"),
// or "" for a module that has no phrase here: one that takes no time
// worth showing. '_' and '-' in the name are the same.
func BootActivity(module string) string {
	return bootActivities[strings.ReplaceAll(module, "_", "-")]
}

// EventsURL returns the endpoint of the reporting webhook that the
// tenant's current server was given with Config.BootProgress (r as
// stored): the phone_home URL with callback.EventParam, its token bound
// to r.CallbackNonce (see callback.Handler.EventsURL).
func (p *Provisioner) EventsURL(r store.Record) string {
	return p.handler.EventsURL(p.cfg.CallbackBase, r.ID, r.CallbackNonce)
}

// withReporter adds the boot progress webhook to cfg (Config.BootProgress):
// a reporter named ReporterName posting to the tenant's EventsURL. A
// bootstrap reporter of that name with another endpoint is an error; the
// bootstrap's other reporters are kept.
func (p *Provisioner) withReporter(cfg *cloudinit.Config, r store.Record) error {
	if !p.cfg.BootProgress {
		return nil
	}
	want := cloudinit.Reporter{Type: cloudinit.ReporterWebhook, Endpoint: p.EventsURL(r)}
	if have, ok := cfg.Reporting[ReporterName]; ok && have.Endpoint != "" && have.Endpoint != want.Endpoint {
		return fmt.Errorf("%w: the bootstrap sets a reporter named %q; leave that name to the Provisioner (Config.BootProgress)", ErrConfig, ReporterName)
	}
	reporting := maps.Clone(cfg.Reporting)
	if reporting == nil {
		reporting = make(map[string]cloudinit.Reporter, 1)
	}
	reporting[ReporterName] = want
	cfg.Reporting = reporting
	return nil
}

// onBootEvent is the callback handler's OnEvent: it reports the boot step
// as an Event, and logs one that did not succeed at Warn (the handler
// logs the others at Debug).
func (p *Provisioner) onBootEvent(ctx context.Context, r store.Record, ev callback.BootEvent) {
	b := &BootProgress{
		Name:        ev.Name,
		Stage:       ev.Stage,
		Module:      ev.Module,
		Activity:    BootActivity(ev.Module),
		Type:        ev.Type,
		Result:      ev.Result,
		Description: ev.Description,
		Time:        ev.Time,
	}
	if ev.Result == callback.ResultFail || ev.Result == callback.ResultWarn {
		p.log.LogAttrs(ctx, slog.LevelWarn, "boot step did not succeed",
			slog.String("tenant", r.ID), slog.String("server", r.ServerID),
			slog.String("step", ev.Name), slog.String("activity", b.Activity),
			slog.String("result", string(ev.Result)), slog.String("description", ev.Description))
	}
	p.emit(ctx, Event{Tenant: r.ID, Boot: b})
}
