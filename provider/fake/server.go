package fake

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/provider"
)

// Server is one simulated server. Its methods are safe for concurrent use.
type Server struct {
	id, name string
	seq      int
	labels   map[string]string
	// where and when: fixed at Create
	serverType, location string
	created              time.Time
	spec                 spec
	faults               Faults
	log                  *slog.Logger

	dir    string // the sandbox: fs, bin and state below it
	fs     string // the server's file system root
	fsReal string // fs with symbolic links resolved, as the stand-ins record paths
	bin    string // stand-ins, first on PATH
	state  string // the simulation's own state
	keep   bool

	hostKey    gossh.Signer
	postedKey  gossh.PublicKey // what phone_home posts (differs with WrongHostKey)
	addr       string
	ln         net.Listener
	ssh        *gliderssh.Server
	delay      time.Duration
	interval   time.Duration
	client     *http.Client    // Options.HTTPClient, or nil
	transport  *http.Transport // cloned per request when client is nil
	dsaKey     string          // the DSA host key's .pub line
	done       chan struct{}   // closed when the server starts stopping
	wg         sync.WaitGroup  // every goroutine the server started
	booted     chan struct{}   // closed when the simulated cloud-init is finished
	stoppedC   chan struct{}   // closed when stop has finished
	stopOnce   sync.Once
	mu         sync.Mutex
	stopping   bool
	status     string
	conns      map[net.Conn]struct{}
	commands   []string
	dropped    bool
	phoneHomes int
	eventPosts int // reporting webhook requests

	iso     *isolation
	nsMu    sync.Mutex
	nsTried bool    // the namespace was set up, or found unavailable
	holder  *holder // keeps the namespace; nil when there is none
}

type serverConfig struct {
	id, name             string
	labels               map[string]string
	serverType, location string
	spec                 spec
	faults               Faults
	parent               string
	keep                 bool
	delay, interval      time.Duration
	client               *http.Client
	transport            *http.Transport
	iso                  *isolation
	log                  *slog.Logger
}

// boot builds the sandbox, starts the SSH server and the simulated
// cloud-init. On error nothing is left running or on disk.
func boot(c serverConfig) (_ *Server, err error) {
	seq, _ := strconv.Atoi(c.id)
	s := &Server{
		id: c.id, name: c.name, seq: seq, labels: c.labels, spec: c.spec, faults: c.faults, log: c.log,
		serverType: c.serverType, location: c.location, created: time.Now(),
		keep: c.keep, delay: c.delay, interval: c.interval, client: c.client, transport: c.transport, iso: c.iso,
		status:   "initializing",
		done:     make(chan struct{}),
		conns:    map[net.Conn]struct{}{},
		booted:   make(chan struct{}),
		stoppedC: make(chan struct{}),
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if s.hostKey, err = gossh.NewSignerFromKey(priv); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	s.postedKey = s.hostKey.PublicKey()
	if c.faults.WrongHostKey {
		other, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("host key: %w", err)
		}
		if s.postedKey, err = gossh.NewPublicKey(other); err != nil {
			return nil, fmt.Errorf("host key: %w", err)
		}
	}

	if s.dsaKey, err = newDSAKeyLine(s.hostname()); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}

	if s.dir, err = os.MkdirTemp(c.parent, c.name+"-"); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(s.dir)
		}
	}()
	s.fs = filepath.Join(s.dir, "fs")
	s.bin = filepath.Join(s.dir, "bin")
	s.state = filepath.Join(s.dir, "state")
	if err := s.setup(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}

	if s.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("ssh listener: %w", err)
	}
	s.addr = s.ln.Addr().String()
	s.ssh = s.sshServer()
	s.wg.Add(2)
	go s.serve()
	go s.cloudInit()
	return s, nil
}

// stop ends everything the server runs and removes its sandbox unless
// kept. It returns when all of the server's goroutines have ended.
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopping = true
		s.status = "off"
		conns := slices.Collect(maps.Keys(s.conns))
		s.mu.Unlock()

		close(s.done)
		_ = s.ln.Close()
		for _, c := range conns {
			_ = c.Close()
		}
		_ = s.ssh.Close()
		s.wg.Wait()
		s.stopNamespace()
		if !s.keep {
			if err := os.RemoveAll(s.dir); err != nil {
				s.log.Warn("fake: remove sandbox", "err", err)
			}
		}
		close(s.stoppedC)
	})
	<-s.stoppedC
}

// errStopped is the cause of the contexts a server's stop ends.
var errStopped = errors.New("fake: server stopped")

// untilStop returns a context derived from parent that also ends, with
// cause errStopped, when the server stops. The caller must hold a count
// of s.wg (see enter) and call cancel.
func (s *Server) untilStop(parent context.Context) (ctx context.Context, cancel context.CancelFunc) {
	ctx, cancelCause := context.WithCancelCause(parent)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.done:
			cancelCause(errStopped)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancelCause(context.Canceled) }
}

// enter registers one more running goroutine unless the server is
// stopping; the caller must call s.wg.Done when it returns true.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) info() provider.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return provider.Server{
		ID:         s.id,
		Name:       s.name,
		IPv4:       "127.0.0.1",
		Status:     s.status,
		Labels:     maps.Clone(s.labels),
		SSHAddr:    s.addr,
		ServerType: s.serverType,
		Location:   s.location,
		Created:    s.created,
	}
}

func (s *Server) setStatus(st string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopping {
		s.status = st
	}
}

// ID returns the server's ID.
func (s *Server) ID() string { return s.id }

// Name returns the server's name.
func (s *Server) Name() string { return s.name }

// Info returns the server as the provider reports it.
func (s *Server) Info() provider.Server { return s.info() }

// Addr returns where the server's SSH daemon listens, host:port.
func (s *Server) Addr() string { return s.addr }

// InstanceID returns the instance ID the server posts at phone_home.
func (s *Server) InstanceID() string { return "i-" + s.id }

// HostKey returns the host key the SSH server presents.
func (s *Server) HostKey() gossh.PublicKey { return s.hostKey.PublicKey() }

// HostKeyLine returns the server's /etc/ssh/ssh_host_ed25519_key.pub: the
// authorized_keys line of HostKey with a root@HOST comment (the
// cloud-config's hostname, else the server name: the host name when
// cloud-init's ssh module made the keys) and a newline.
func (s *Server) HostKeyLine() string { return keyLine(s.HostKey(), s.hostname()) }

// Booted returns a channel closed when the simulated cloud-init has
// finished: phone_home answered, given up or skipped, its status written
// and its boot events posted or dropped (or the server was deleted
// first).
func (s *Server) Booted() <-chan struct{} { return s.booted }

// PhoneHomes returns how many phone_home requests the server has sent.
func (s *Server) PhoneHomes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phoneHomes
}

// EventPosts returns how many requests the server's reporting webhooks
// have sent (retries included).
func (s *Server) EventPosts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eventPosts
}

// Commands returns every exec command the SSH server received, in order,
// as the client sent them (before paths were rewritten).
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands)
}

// Execs returns how many exec sessions the SSH server received.
func (s *Server) Execs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.commands)
}

// Dir returns the server's sandbox directory. The server's file system is
// its "fs" subdirectory (see Path); the rest is the simulation's own.
func (s *Server) Dir() string { return s.dir }

// Path maps an absolute path on the server, such as "/home/rachel/.env",
// to the real file in the sandbox. A relative path is taken from "/".
func (s *Server) Path(abs string) string {
	return filepath.Join(s.fs, filepath.Clean("/"+abs))
}

// UnitState is what the simulated systemd knows of a unit.
type UnitState struct {
	Enabled bool // systemctl enable was run
	Active  bool // started and running
	Failed  bool // started, then failed (Faults.UnitFails)
}

// Unit returns the state of a systemd unit; a name without a unit type
// means NAME.service.
func (s *Server) Unit(name string) UnitState {
	u := unitName(name)
	if strings.ContainsAny(u, "/\x00") {
		return UnitState{}
	}
	exists := func(dir string) bool {
		_, err := os.Stat(filepath.Join(s.state, "systemd", dir, u))
		return err == nil
	}
	return UnitState{Enabled: exists("enabled"), Active: exists("active"), Failed: exists("failed")}
}

// Journal returns a unit's simulated journal, as root's journalctl prints it.
func (s *Server) Journal(name string) string {
	u := unitName(name)
	if strings.ContainsAny(u, "/\x00") {
		return ""
	}
	b, _ := os.ReadFile(filepath.Join(s.state, "journal", u))
	return string(b)
}

// Owner returns the owner of a server path as the simulation recorded it
// ("user:group"): set by the chown stand-in (-R applies to what is below,
// a symbolic link is followed unless -h), by write_files, or by creating
// the cloud-config users' homes, and carried along by the mv stand-in
// when a file or directory is renamed (replacing what the destination
// had). It is "" for a path that was never given an owner (every file
// really belongs to the OS user running the test); a part never set is
// empty ("rachel:").
func (s *Server) Owner(abs string) string {
	target := s.realPath(abs)
	var user, group string
	for _, r := range s.ownerRules() {
		if r.path == target || (r.rec && under(target, r.path)) {
			user, group = override(user, r.user), override(group, r.group)
		}
	}
	if user == "" && group == "" {
		return ""
	}
	return user + ":" + group
}

// realPath maps a server path to the sandbox file as the stand-ins record
// it: with symbolic links in the sandbox's own path resolved.
func (s *Server) realPath(abs string) string {
	return filepath.Join(s.fsReal, filepath.Clean("/"+abs))
}

// ownerRule is one chown as recorded: it sets the non-empty parts of the
// owner of path, and of what is below it when rec.
type ownerRule struct {
	path, user, group string
	rec               bool
}

// ownerRules replays the owners log the stand-ins append to: a line
// "PATH\tUSER\tGROUP\tRECURSIVE" is a chown, a line "mv\tSRC\tDST" a
// rename. The rules for SRC and what is below it move to DST, after the
// owner SRC had from a recursive chown above it (which it keeps); the
// rules of what DST was are dropped.
func (s *Server) ownerRules() []ownerRule {
	f, err := os.Open(filepath.Join(s.state, "owners"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var rules []ownerRule
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		switch {
		case len(fields) == 3 && fields[0] == "mv":
			rules = moveRules(rules, filepath.Clean(fields[1]), filepath.Clean(fields[2]))
		case len(fields) == 4:
			rules = append(rules, ownerRule{filepath.Clean(fields[0]), fields[1], fields[2], fields[3] == "1"})
		}
	}
	return rules
}

// moveRules applies a rename of src to dst to the rules.
func moveRules(rules []ownerRule, src, dst string) []ownerRule {
	if src == dst || under(dst, src) {
		return rules
	}
	inherited := ownerRule{path: dst, rec: true}
	var kept, moved []ownerRule
	for _, r := range rules {
		switch {
		case under(src, r.path) && r.path != src:
			if r.rec {
				inherited.user, inherited.group = override(inherited.user, r.user), override(inherited.group, r.group)
			}
			kept = append(kept, r)
		case under(r.path, src):
			r.path = dst + strings.TrimPrefix(r.path, src)
			moved = append(moved, r)
		case under(r.path, dst):
			// what dst was is replaced
		default:
			kept = append(kept, r)
		}
	}
	if inherited.user != "" || inherited.group != "" {
		kept = append(kept, inherited)
	}
	return append(kept, moved...)
}

// under reports whether path is dir or below it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator)) || dir == string(filepath.Separator)
}

// override returns v when it is set, else old.
func override(old, v string) string {
	if v != "" {
		return v
	}
	return old
}

// unitName appends .service to a name without a unit type, as systemctl does.
func unitName(name string) string {
	for _, t := range []string{".service", ".socket", ".timer", ".target", ".path", ".mount", ".slice", ".scope"} {
		if strings.HasSuffix(name, t) {
			return name
		}
	}
	return name + ".service"
}

// keyLine renders a public key as a .pub file line: key, comment, newline.
func keyLine(k gossh.PublicKey, host string) string {
	return strings.TrimSuffix(string(gossh.MarshalAuthorizedKey(k)), "\n") + " root@" + host + "\n"
}
