package provision_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// bootLog keeps a Provisioner's events, in the order reported.
type bootLog struct {
	mu  sync.Mutex
	all []provision.Event
}

func (l *bootLog) add(e provision.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, e)
}

func (l *bootLog) events() []provision.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

// bootOf returns the boot steps in events, and the index of each.
func bootOf(events []provision.Event) (steps []provision.BootProgress, at []int) {
	for i, e := range events {
		if e.Boot != nil {
			steps = append(steps, *e.Boot)
			at = append(at, i)
		}
	}
	return steps, at
}

func statusAt(events []provision.Event, to store.Status) int {
	return slices.IndexFunc(events, func(e provision.Event) bool { return e.Boot == nil && e.Step == "" && e.To == to })
}

// On a real Debian 12 server, with BootProgress: real cloud-init posts
// its events to the Provisioner's Handler; they come as Events for the
// modules of init-network, modules-config and modules-final, in order,
// installing packages among them; the end of the final stage, posted
// after phone_home, is taken (cloud-init logs no failed post); nothing
// comes after ready.
func TestNspawnBootProgress(t *testing.T) {
	t.Parallel()
	w := newRealWorld(t)
	var log bootLog
	w.cfg.BootProgress = true
	w.cfg.OnEvent = log.add
	w.cfg.BootstrapFunc = withPackages // jq, from the Debian mirror the host uses
	w.start(t)
	ctx := realContext(t)

	_, r := w.provision(ctx, t)
	require.Equal(t, store.StatusReady, r.Status, "error: %s", r.Error)
	time.Sleep(2 * time.Second) // anything late would come now

	events := log.events()
	steps, at := bootOf(events)
	t.Logf("%d boot events", len(steps))
	require.NotEmpty(t, steps)
	stages := []string{"init-network", "modules-config", "modules-final"}
	seen := map[string]bool{}
	last, lastTime := 0, time.Time{}
	for _, s := range steps {
		stage := slices.Index(stages, s.Stage)
		require.GreaterOrEqual(t, stage, last, "stages in order: %s after %s", s.Name, stages[last])
		last = stage
		assert.False(t, s.Time.Before(lastTime), "%s: in the order the server made them", s.Name)
		lastTime = s.Time
		assert.False(t, s.Failed(), s.Name)
		if s.Module != "" {
			seen[s.Stage] = true
		}
	}
	assert.Len(t, seen, 3, "modules of every stage: %v", seen)
	pkgs := slices.IndexFunc(steps, func(s provision.BootProgress) bool {
		return s.Activity == "installing packages" && s.Type == callback.EventFinish && s.Result == callback.ResultSuccess
	})
	require.GreaterOrEqual(t, pkgs, 0, "installing packages")
	assert.True(t, steps[pkgs].Time.Before(events[statusAt(events, store.StatusInjectingSecrets)].Time), "installed before phone_home")
	assert.Equal(t, "modules-final", steps[len(steps)-1].Name, "the final stage's own finish, after phone_home, is taken")
	assert.Less(t, at[len(at)-1], statusAt(events, store.StatusReady), "nothing after ready")

	out := w.shell(ctx, t, r)("sudo -n grep -c 'Failed posting event' /var/log/cloud-init.log; true")
	assert.Equal(t, "0\n", out, "cloud-init posted every event")
}

// On a real server, a runcmd that fails: its FAIL (scripts-user) comes
// before the tenant fails, with cloud-init's own error in the record.
func TestNspawnBootProgressRuncmdFails(t *testing.T) {
	t.Parallel()
	w := newRealWorld(t)
	var log bootLog
	w.cfg.BootProgress = true
	w.cfg.OnEvent = log.add
	w.cfg.BootstrapFunc = bootstrapWith(func(c *cloudinit.Config) {
		c.RunCmd = append(c.RunCmd, cloudinit.Command{"sh", "-c", "echo nspawn-runcmd-fails >&2; exit 7"})
	})
	w.start(t)

	_, r := w.provision(realContext(t), t)
	require.Equal(t, store.StatusFailed, r.Status)
	assert.Contains(t, r.Error, "('scripts-user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))")

	events := log.events()
	steps, at := bootOf(events)
	i := slices.IndexFunc(steps, func(s provision.BootProgress) bool { return s.Failed() })
	require.GreaterOrEqual(t, i, 0, "a FAIL came")
	assert.Equal(t, "modules-final/config-scripts-user", steps[i].Name)
	assert.Equal(t, "running runcmd", steps[i].Activity)
	assert.Equal(t, "running config-scripts-user with frequency once-per-instance", steps[i].Description)
	assert.Less(t, at[i], statusAt(events, store.StatusFailed), "before the tenant failed")
	assert.True(t, steps[i].Time.Before(events[statusAt(events, store.StatusInjectingSecrets)].Time), "made before phone_home")
	var fails []string
	for _, s := range steps {
		if s.Failed() {
			fails = append(fails, s.Name)
		}
	}
	assert.Equal(t, []string{"modules-final/config-scripts-user", "modules-final"}, fails)
}
