package provision_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
	"github.com/hatchery-dev/hatchery/store/sqlite"
)

// eventsPerBoot is how many events a Debian 12 server posts in one boot
// with a bootstrap like Rachel8's (write_files, packages, runcmd): 71,
// measured on provider/nspawn (65 without write_files and packages).
const eventsPerBoot = 71

// BenchmarkBootEvent measures what Config.BootProgress costs the control
// plane per boot event, against the phone_home callback every boot costs
// anyway, in one run, in process (no network): an event through the
// Provisioner's Handler (token check, one store read, the Event reported),
// and a phone_home through the callback.Handler (token check, the body
// parsed, the transition written). us/boot is a boot's events
// (eventsPerBoot) at that cost.
func BenchmarkBootEvent(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"sqlite", func(b *testing.B) store.Store {
			st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "hatchery.db"))
			require.NoError(b, err)
			b.Cleanup(func() { st.Close() })
			return st
		}},
		{"memory", func(*testing.B) store.Store { return memory.New() }},
	}
	const event = `{"name": "modules-final/config-package-update-upgrade-install", "description": "running config-package-update-upgrade-install with frequency once-per-instance", "event_type": "start", "origin": "cloudinit", "timestamp": 1796481394.5040686}`
	hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newSigner(b).PublicKey()))) + " root@tenant\n"
	for _, s := range stores {
		key := []byte(randHex(32))
		b.Run("event/"+s.name, func(b *testing.B) {
			st := s.open(b)
			cloud := fake.New(fake.Options{Dir: b.TempDir()})
			b.Cleanup(func() { cloud.Close() })
			reported := 0
			p, err := provision.New(provision.Config{
				Provider: cloud, Store: st, Secrets: &secretBox{}, BootstrapFunc: bootstrap, StepsFunc: steps,
				SSHUser: sshUser, Signer: newSigner(b), CallbackBase: "http://127.0.0.1:1/cb", CallbackKey: key,
				BootProgress: true,
				OnEvent: func(e provision.Event) {
					if e.Boot != nil {
						reported++
					}
				},
			})
			require.NoError(b, err)
			b.Cleanup(func() { p.Close() })
			r := store.Record{ID: newID(), Status: store.StatusCloudInit, CallbackNonce: callback.NewNonce()}
			require.NoError(b, st.Create(context.Background(), r))
			target, h := p.EventsURL(r), p.Handler()
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, target, strings.NewReader(event)))
				if w.Code != http.StatusOK {
					b.Fatalf("answer %d: %s", w.Code, w.Body)
				}
			}
			if reported != b.N {
				b.Fatalf("%d events reported, want %d", reported, b.N)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)*eventsPerBoot, "us/boot")
		})
		b.Run("phone_home/"+s.name, func(b *testing.B) {
			st := s.open(b)
			h := &callback.Handler{Store: st, Key: key}
			// One tenant in cloud_init per phone_home, made beforehand.
			targets := make([]string, b.N)
			for i := range targets {
				r := store.Record{ID: newID(), Status: store.StatusCloudInit, CallbackNonce: callback.NewNonce()}
				require.NoError(b, st.Create(context.Background(), r))
				targets[i] = h.AttemptURL("http://127.0.0.1:1/cb", r.ID, r.CallbackNonce)
			}
			form := url.Values{"pub_key_ed25519": {hostKey}, "instance_id": {"i-1"}, "hostname": {"tenant"}}.Encode()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				w := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodPost, targets[i], strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("answer %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
