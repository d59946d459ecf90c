package nspawn_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/internal/nspawntest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/nspawn"
)

// Benchmarks of real servers: run them alone, one iteration each, on a
// quiet machine:
//
//	go test -run '^$' -bench . -benchtime 1x ./provider/nspawn/

// arrivals receives phone_home posts on 127.0.0.1 and tells when the
// first one of each server came.
type arrivals struct {
	url string
	mu  sync.Mutex
	got map[string]chan struct{}
}

func newArrivals(b testing.TB) *arrivals {
	a := &arrivals{got: map[string]chan struct{}{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		c := a.ch(name)
		select {
		case <-c:
		default:
			close(c)
		}
	}))
	b.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

func (a *arrivals) ch(name string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.got[name]
	if !ok {
		c = make(chan struct{})
		a.got[name] = c
	}
	return c
}

// userData is a realistic cloud-config: a user with a key, sudo, a
// file, a runcmd, and phone_home with the host keys.
func (a *arrivals) userData(b testing.TB, name string) []byte {
	ud, err := cloudinit.Build(cloudinit.Config{
		Hostname: name,
		Users: []cloudinit.User{{Name: "app", Shell: "/bin/bash", Sudo: "ALL=(ALL) NOPASSWD:ALL",
			SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDlOyN9/eGaoNgL9CkYIuh0xabW6qRBNKnj9K65mF5fY bench"}}},
		WriteFiles: []cloudinit.File{{Path: "/etc/bench", Content: "x\n"}},
		RunCmd:     []cloudinit.Command{{"true"}},
		PhoneHome: &cloudinit.PhoneHome{URL: a.url + "/" + name,
			Post: []string{"pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519", "instance_id", "hostname", "fqdn"}},
	})
	require.NoError(b, err)
	return ud
}

// boot creates n servers at once and waits for their phone_homes; it
// returns them and the mean time from Create to phone_home.
func boot(ctx context.Context, b *testing.B, p *nspawn.Provider, a *arrivals, n int) ([]provider.Server, time.Duration) {
	servers := make([]provider.Server, n)
	took := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name := "bench-" + randHex(4)
			start := time.Now()
			servers[i], errs[i] = p.Create(ctx, provider.CreateRequest{Name: name, UserData: a.userData(b, name)})
			if errs[i] != nil {
				return
			}
			select {
			case <-a.ch(name):
				took[i] = time.Since(start)
			case <-ctx.Done():
				errs[i] = fmt.Errorf("no phone_home from %s: %w", name, ctx.Err())
			}
		})
	}
	wg.Wait()
	var sum time.Duration
	for i := range n {
		require.NoError(b, errs[i])
		sum += took[i]
	}
	return servers, sum / time.Duration(n)
}

func deleteAll(b *testing.B, p *nspawn.Provider, servers []provider.Server) {
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() { require.NoError(b, p.Delete(context.Background(), s.ID)) })
	}
	wg.Wait()
}

// BenchmarkCreate is Create's own cost, before the boot: port, files,
// cgroups, the container's process started.
func BenchmarkCreate(b *testing.B) {
	p := nspawntest.New(b, nspawn.Options{})
	for i := 0; i < b.N; i++ {
		srv, err := p.Create(b.Context(), provider.CreateRequest{Name: "create-" + strconv.Itoa(i), UserData: []byte("#cloud-config\n")})
		require.NoError(b, err)
		b.StopTimer()
		require.NoError(b, p.Delete(b.Context(), srv.ID))
		b.StartTimer()
	}
}

// BenchmarkCreateToPhoneHome measures from Create to cloud-init's
// phone_home, for one server alone and for three created at once; an
// operation is the whole batch, s/server the mean over its servers.
func BenchmarkCreateToPhoneHome(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(strconv.Itoa(n)+"-at-once", func(b *testing.B) {
			p := nspawntest.New(b, nspawn.Options{})
			a := newArrivals(b)
			var mean time.Duration
			for i := 0; i < b.N; i++ {
				ctx, cancel := context.WithTimeout(b.Context(), bootTimeout)
				servers, m := boot(ctx, b, p, a, n)
				cancel()
				mean += m
				b.StopTimer()
				deleteAll(b, p, servers)
				b.StartTimer()
			}
			b.ReportMetric(mean.Seconds()/float64(b.N), "s/server")
		})
	}
}

// BenchmarkMemoryPerServer boots three servers, lets them settle and
// reports the proportional set size (PSS: shared pages split between
// the processes that map them) of every process of each server,
// systemd-nspawn included.
func BenchmarkMemoryPerServer(b *testing.B) {
	p := nspawntest.New(b, nspawn.Options{})
	a := newArrivals(b)
	const n = 3
	var total float64
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(b.Context(), bootTimeout)
		servers, _ := boot(ctx, b, p, a, n)
		cancel()
		time.Sleep(5 * time.Second) // cloud-init's last stage ends after phone_home
		for _, s := range servers {
			cg := nspawn.Cgroups(p, s.ID)
			require.NotEmpty(b, cg)
			total += float64(pss(b, nspawn.Processes(cg[0])))
		}
		b.StopTimer()
		deleteAll(b, p, servers)
		b.StartTimer()
	}
	b.ReportMetric(total/float64(b.N*n)/(1<<20), "MB/server")
}

// pss sums the PSS of processes, in bytes.
func pss(b *testing.B, pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
		if err != nil {
			continue // ended meanwhile
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "Pss:" {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				require.NoError(b, err)
				sum += kb << 10
			}
		}
	}
	return sum
}

// BenchmarkImageBuild builds the default image into a fresh cache:
// "warm" with the packages already downloaded (the shared cache's), "cold"
// downloading them from the mirror (about 60 MB).
func BenchmarkImageBuild(b *testing.B) {
	nspawntest.New(b, nspawn.Options{}) // the shared cache has the packages
	sharedDebs := filepath.Join(sharedCache(b), "debs", nspawn.DefaultSuite)
	for _, warm := range []bool{true, false} {
		name := map[bool]string{true: "warm", false: "cold"}[warm]
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				cache := b.TempDir()
				if warm {
					linkAll(b, sharedDebs, filepath.Join(cache, "debs", nspawn.DefaultSuite))
				}
				p, err := nspawn.New(nspawn.Options{StateDir: b.TempDir(), CacheDir: cache})
				require.NoError(b, err)
				b.StartTimer()
				require.NoError(b, p.Prepare(b.Context()))
				b.StopTimer()
				require.NoError(b, p.Close())
				b.StartTimer()
			}
		})
	}
}

// sharedCache is the cache directory the zero Options use.
func sharedCache(b *testing.B) string {
	if d := os.Getenv(nspawn.CacheEnv); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	require.NoError(b, err)
	return filepath.Join(d, "hatchery", "nspawn")
}

// linkAll hard-links the files of src into dst.
func linkAll(b *testing.B, src, dst string) {
	require.NoError(b, os.MkdirAll(dst, 0o755))
	entries, err := os.ReadDir(src)
	require.NoError(b, err)
	require.NotEmpty(b, entries, "no packages in %s", src)
	for _, e := range entries {
		require.NoError(b, os.Link(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())))
	}
}
