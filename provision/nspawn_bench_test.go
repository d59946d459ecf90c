package provision_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/nspawntest"
	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// BenchmarkNspawnProvisionToReady provisions one tenant at a time on a real
// local server (provider/nspawn) with the tests' minimal recipe (a user
// and a file in the cloud-config; .env, a unit, daemon-reload, enable,
// start, is-active over SSH) and splits the time from Provision to ready,
// by the Provisioner's own events, into:
//
//   - s/provision-to-ready: the whole;
//   - s/create-to-phone_home: the server's boot, from Create's return to
//     the phone_home callback (systemd, cloud-init's stages, the host
//     keys), which the control plane does not control;
//   - s/phone_home-to-ready: the control plane's share, from the callback
//     to ready (SSH pinned to the posted key, the wait for cloud-init's
//     last stage, the steps, the check);
//   - s/phone_home-to-waited: the part of it until the cloud-init wait
//     ended, the first of the injection's two runs: the SSH connection and
//     `cloud-init status --wait` (cloud-init's modules after phone_home).
//     The rest is the recipe's steps, pipelined into one run (inject
//     reports their events as that run ends, so they cannot split it).
//
// Run it alone, one iteration or a few, on a quiet machine:
//
//	go test -run '^$' -bench NspawnProvisionToReady -benchtime 3x ./provision/
func BenchmarkNspawnProvisionToReady(b *testing.B) {
	cloud := nspawntest.New(b, nspawn.Options{})
	mux := http.NewServeMux()
	cp := httptest.NewServer(mux) // on 127.0.0.1, which the servers share
	b.Cleanup(cp.Close)

	var mu sync.Mutex
	at := map[string]map[string]time.Time{} // tenant -> mark -> time
	mark := func(id, name string, t time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if at[id] == nil {
			at[id] = map[string]time.Time{}
		}
		if _, ok := at[id][name]; !ok {
			at[id][name] = t
		}
	}
	p, err := provision.New(provision.Config{
		Provider:         cloud,
		Store:            memory.New(),
		Secrets:          &secretBox{},
		BootstrapFunc:    bootstrap,
		StepsFunc:        steps,
		SSHUser:          sshUser,
		Signer:           newSigner(b),
		CallbackBase:     cp.URL + "/callback",
		CallbackKey:      []byte(randHex(32)),
		MaxAttempts:      1,
		PhoneHomeTimeout: 5 * time.Minute,
		Logger:           testenv.Logger(b),
		OnEvent: func(e provision.Event) {
			switch {
			case e.To == store.StatusCloudInit:
				mark(e.Tenant, "created", e.Time)
			case e.To == store.StatusInjectingSecrets:
				mark(e.Tenant, "phone_home", e.Time)
			case e.To == store.StatusReady:
				mark(e.Tenant, "ready", e.Time)
			case e.Step != "" && e.StepIndex == 0 && e.StepDone:
				mark(e.Tenant, "waited", e.Time)
			}
		},
	})
	require.NoError(b, err)
	b.Cleanup(func() { p.Close() })
	mux.Handle("POST /callback/{id}", p.Handler())

	var total, boot, share, wait time.Duration
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
		id := newID()
		start := time.Now()
		require.NoError(b, p.Provision(ctx, id))
		r, err := p.Wait(ctx, id)
		require.NoError(b, err)
		require.Equal(b, store.StatusReady, r.Status, "error: %s", r.Error)
		b.StopTimer()
		mu.Lock()
		m := at[id]
		mu.Unlock()
		total += m["ready"].Sub(start)
		boot += m["phone_home"].Sub(m["created"])
		share += m["ready"].Sub(m["phone_home"])
		wait += m["waited"].Sub(m["phone_home"])
		require.NoError(b, p.Deprovision(ctx, id))
		cancel()
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(total.Seconds()/n, "s/provision-to-ready")
	b.ReportMetric(boot.Seconds()/n, "s/create-to-phone_home")
	b.ReportMetric(share.Seconds()/n, "s/phone_home-to-ready")
	b.ReportMetric(wait.Seconds()/n, "s/phone_home-to-waited")
}
