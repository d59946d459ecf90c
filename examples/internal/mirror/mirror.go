package mirror

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hatchery-dev/hatchery/examples/rachel8"
)

// Versions and words of the stand-ins, for tests to look for.
const (
	StandInGHVersion     = "2.99.0+hatchery.mirror" // gh in the apt repository, newer than any Debian's
	StandInBunVersion    = "1.2.99-standin"         // what the stand-in bun --version says
	StandInClaudeVersion = "1.0.99-standin"         // what the stand-in claude --version says
	// StandInBanner starts the line the stand-in bun prints when it runs
	// a file: it reaches the unit's journal.
	StandInBanner = "rachel8 stand-in is running"
	// FailBanner is what the failing installer prints before it fails.
	FailBanner = "stand-in installer: failing on purpose"
)

// ErrRequirements is wrapped by Start's error when a program the mirror
// needs is missing; the message names it and how to install it.
var ErrRequirements = errors.New("mirror: missing programs")

// Options configure a Mirror; the zero value works.
type Options struct {
	// Logger receives the requests served, at debug level; nil means quiet.
	Logger *slog.Logger
}

// Mirror is the running stand-in: an HTTPS server on 127.0.0.1 and the
// files it serves. Close stops it.
type Mirror struct {
	log     *slog.Logger
	dir     string // everything: TLS material, gpg home, repositories
	gnupg   string // GNUPGHOME of the signing keys
	prog    programs
	url     string // https://127.0.0.1:PORT
	caPEM   string
	srv     *http.Server
	done    chan struct{}
	aptKey  string
	primary string // fingerprint of the apt key's primary key
	signing string // fingerprint of its signing subkey
	strange string // armored StrangerKey

	mu   sync.Mutex
	hits map[string]int // by route: "bun", "claude", "git", "apt", "fail"

	closeOnce sync.Once
	closeErr  error
}

// programs are the paths of the programs the mirror runs.
type programs struct {
	git, httpBackend, dpkg, dpkgDeb, scanPackages, gpg, gpgconf string
}

// Requirements checks that the programs the mirror needs are installed;
// its error wraps ErrRequirements and names each missing one with how to
// install it.
func Requirements() error {
	_, err := findPrograms()
	return err
}

func findPrograms() (programs, error) {
	var p programs
	var missing []string
	for _, prog := range []struct {
		dst           *string
		name, install string
	}{
		{&p.git, "git", "apt-get install git"},
		{&p.dpkg, "dpkg", "apt-get install dpkg"},
		{&p.dpkgDeb, "dpkg-deb", "apt-get install dpkg"},
		{&p.scanPackages, "dpkg-scanpackages", "apt-get install dpkg-dev"},
		{&p.gpg, "gpg", "apt-get install gpg"},
		{&p.gpgconf, "gpgconf", "apt-get install gpgconf"},
		{new(string), "gpg-agent", "apt-get install gpg-agent"}, // gpg's key generation needs it
	} {
		path, err := exec.LookPath(prog.name)
		if err != nil {
			missing = append(missing, prog.name+" is not installed ("+prog.install+")")
			continue
		}
		*prog.dst = path
	}
	if p.git != "" {
		out, err := exec.Command(p.git, "--exec-path").Output()
		backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
		if fi, serr := os.Stat(backend); err != nil || serr != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, "git-http-backend is not in git --exec-path (apt-get install git)")
		} else {
			p.httpBackend = backend
		}
	}
	if len(missing) > 0 {
		return p, fmt.Errorf("%w: %s", ErrRequirements, strings.Join(missing, "; "))
	}
	return p, nil
}

// Start builds the stand-ins in a temporary directory and serves them on
// 127.0.0.1 (a port of the system's choosing) until Close.
func Start(ctx context.Context, opts Options) (m *Mirror, err error) {
	prog, err := findPrograms()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hatchery-mirror-")
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m = &Mirror{log: log, dir: dir, gnupg: filepath.Join(dir, "gnupg"), prog: prog, hits: map[string]int{}, done: make(chan struct{})}
	defer func() {
		if err != nil {
			m.cleanup()
		}
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	m.url = "https://" + ln.Addr().String()
	ca, cert, err := newCertificates()
	if err != nil {
		return nil, err
	}
	m.caPEM = ca

	if err := m.buildStandIns(); err != nil {
		return nil, err
	}
	if err := m.buildGit(ctx); err != nil {
		return nil, err
	}
	if err := m.newKeys(ctx); err != nil {
		return nil, err
	}
	if err := m.buildApt(ctx); err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	files := http.FileServer(http.Dir(filepath.Join(dir, "www")))
	mux.Handle("GET /bun/", m.count("bun", files))
	mux.Handle("GET /claude/", m.count("claude", files))
	mux.Handle("GET /fail/", m.count("fail", files))
	mux.Handle("GET /apt/", m.count("apt", files))
	mux.Handle("/git/", m.count("git", &cgi.Handler{
		Path: prog.httpBackend,
		Root: "/git",
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Join(dir, "git"), "GIT_HTTP_EXPORT_ALL=1"},
	}))
	m.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	go func() {
		defer close(m.done)
		_ = m.srv.Serve(tls.NewListener(ln, m.srv.TLSConfig))
	}()
	log.InfoContext(ctx, "mirror: serving", "url", m.url, "dir", dir)
	return m, nil
}

// count counts and logs the requests of a route.
func (m *Mirror) count(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.hits[route]++
		m.mu.Unlock()
		m.log.DebugContext(r.Context(), "mirror: request", "method", r.Method, "path", r.URL.Path, "from", r.RemoteAddr)
		h.ServeHTTP(w, r)
	})
}

// Hits returns how many requests a route has had: "bun", "claude",
// "fail", "git" or "apt".
func (m *Mirror) Hits(route string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hits[route]
}

// URL is the mirror's base URL, https://127.0.0.1:PORT.
func (m *Mirror) URL() string { return m.url }

// CACert is the PEM certificate of the CA that signed the mirror's
// certificate: the extra CA a server needs to trust it.
func (m *Mirror) CACert() string { return m.caPEM }

// BunInstaller is the URL of the stand-in Bun installer.
func (m *Mirror) BunInstaller() string { return m.url + "/bun/install" }

// ClaudeInstaller is the URL of the stand-in Claude CLI installer.
func (m *Mirror) ClaudeInstaller() string { return m.url + "/claude/install.sh" }

// FailingInstaller is the URL of an installer that prints FailBanner and
// exits 1.
func (m *Mirror) FailingInstaller() string { return m.url + "/fail/install" }

// Repo is the git URL of the minimal Rachel8 checkout.
func (m *Mirror) Repo() string { return m.url + "/git/rachel8.git" }

// AptRepo is the URL of the apt repository ("deb URL stable main").
func (m *Mirror) AptRepo() string { return m.url + "/apt" }

// AptKey is the armored public key that signs the apt repository: the
// primary key and its signing subkey.
func (m *Mirror) AptKey() string { return m.aptKey }

// KeyringURL is the URL of the same key as a binary keyring, as the
// GitHub CLI publishes its own.
func (m *Mirror) KeyringURL() string { return m.url + "/apt/keyring.gpg" }

// PrimaryFingerprint and SigningFingerprint are the fingerprints of the
// apt key's primary key (certify only) and of the subkey that signs the
// repository.
func (m *Mirror) PrimaryFingerprint() string { return m.primary }

// SigningFingerprint: see PrimaryFingerprint.
func (m *Mirror) SigningFingerprint() string { return m.signing }

// StrangerKey is the armored public key of a key that signs nothing
// here.
func (m *Mirror) StrangerKey() string { return m.strange }

// RecipeOptions returns o with every source of the recipe pointing at the
// mirror: the installers, the repository, the GitHub CLI's apt
// repository with its key inline, and the mirror's CA added to CACerts.
func (m *Mirror) RecipeOptions(o rachel8.Options) rachel8.Options {
	o.BunInstaller = m.BunInstaller()
	o.ClaudeInstaller = m.ClaudeInstaller()
	o.Repo = m.Repo()
	o.GitHubCLI = rachel8.AptRepo{URL: m.AptRepo(), Key: m.AptKey()}
	o.CACerts = append(append([]string(nil), o.CACerts...), m.CACert())
	return o
}

// Close stops the server and the gpg-agent, and removes the files.
func (m *Mirror) Close() error {
	m.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.srv.Shutdown(ctx); err != nil {
			m.srv.Close()
		}
		<-m.done
		m.closeErr = m.cleanup()
	})
	return m.closeErr
}

// cleanup stops the gpg-agent that key generation started and removes
// the directory.
func (m *Mirror) cleanup() error {
	var errs []error
	if _, err := os.Stat(m.gnupg); err == nil {
		cmd := exec.Command(m.prog.gpgconf, "--kill", "gpg-agent")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+m.gnupg)
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("mirror: stop gpg-agent: %w: %s", err, strings.TrimSpace(string(out))))
		}
	}
	if err := os.RemoveAll(m.dir); err != nil {
		errs = append(errs, fmt.Errorf("mirror: %w", err))
	}
	return errors.Join(errs...)
}

// run runs a program with env added to a minimal environment and returns
// its standard output; its error carries the standard error.
func run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("mirror: %s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
