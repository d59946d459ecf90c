// Package sshtest runs an in-process SSH server (gliderlabs/ssh) on
// 127.0.0.1 for tests: fixed or generated keys, public-key authentication
// against a list of keys, and a handler that scripts the remote side.
//
// The server records every exec command it receives, counts connections
// and keepalive requests, and stops every handler it started on Close (or
// at the end of the test).
//
// A handler that hands the session to exec.Cmd as Stdin waits for the
// client to close its side of stdin: exec.Cmd.Wait waits for the copy from
// Stdin to finish. Clients of this server must close stdin (inject's SSH
// runner always does).
package sshtest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
)

// Handler scripts the remote side of one session. It is gliderlabs/ssh's
// handler type; the session's exit status is what it passes to
// Session.Exit (0 when it returns without calling Exit).
type Handler = gliderssh.Handler

// Session is gliderlabs/ssh's session, as Handler receives it.
type Session = gliderssh.Session

// Options configures a Server. The zero value is a server with a generated
// host key that refuses every client key and runs commands with Exec.
type Options struct {
	// HostKey is the server's host key; nil means a generated ed25519 key.
	HostKey ssh.Signer
	// AuthorizedKeys are the client keys accepted, for any user name.
	// When empty, every key is refused.
	AuthorizedKeys []ssh.PublicKey
	// Handler runs each session; nil means Exec().
	Handler Handler
	// Forwarding allows direct-tcpip channels, so the server can be a jump
	// host.
	Forwarding bool
	// Addr is the address to listen on; "" means 127.0.0.1 on a free port.
	Addr string
}

// Server is a running test SSH server.
type Server struct {
	srv     *gliderssh.Server
	ln      net.Listener
	hostKey ssh.Signer

	mu         sync.Mutex
	commands   []string
	users      []string
	raw        map[net.Conn]struct{}
	conns      int
	keepalives int
	signals    []string
	closed     bool

	handlers sync.WaitGroup
	serving  sync.WaitGroup
	done     chan struct{}
	once     sync.Once
}

// Key returns a fixed ed25519 signer derived from seed: the same seed
// always gives the same key, so tests can name keys without files.
func Key(seed string) ssh.Signer {
	sum := sha256.Sum256([]byte("hatchery sshtest key " + seed))
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(sum[:]))
	if err != nil {
		panic(err) // cannot happen for a valid ed25519 key
	}
	return s
}

// NewKey returns a freshly generated ed25519 signer.
func NewKey(tb testing.TB) ssh.Signer {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// AuthorizedLine returns key as an authorized_keys line without the
// trailing newline ("ssh-ed25519 AAAA..."), the form inject.PinnedHostKeys
// reads.
func AuthorizedLine(key ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// Start starts a server and stops it when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// New starts a server; the caller must Close it.
func New(opts Options) (*Server, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	hostKey := opts.HostKey
	if hostKey == nil {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			ln.Close()
			return nil, err
		}
		if hostKey, err = ssh.NewSignerFromKey(priv); err != nil {
			ln.Close()
			return nil, err
		}
	}
	handler := opts.Handler
	if handler == nil {
		handler = Exec()
	}
	s := &Server{ln: ln, hostKey: hostKey, raw: map[net.Conn]struct{}{}, done: make(chan struct{})}
	authorized := append([]ssh.PublicKey(nil), opts.AuthorizedKeys...)
	s.srv = &gliderssh.Server{
		HostSigners: []gliderssh.Signer{hostKey},
		Handler: func(sess gliderssh.Session) {
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				sess.Exit(255)
				return
			}
			s.handlers.Add(1)
			s.commands = append(s.commands, sess.RawCommand())
			s.users = append(s.users, sess.User())
			s.mu.Unlock()
			defer s.handlers.Done()
			handler(sess)
		},
		PublicKeyHandler: func(_ gliderssh.Context, key gliderssh.PublicKey) bool {
			for _, k := range authorized {
				if gliderssh.KeysEqual(k, key) {
					return true
				}
			}
			return false
		},
		ConnCallback: func(ctx gliderssh.Context, c net.Conn) net.Conn {
			ctx.SetValue(serverKey{}, s)
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.closed {
				c.Close()
				return nil
			}
			s.conns++
			s.raw[c] = struct{}{}
			return &trackedConn{Conn: c, s: s}
		},
		RequestHandlers: map[string]gliderssh.RequestHandler{
			"keepalive@openssh.com": func(gliderssh.Context, *gliderssh.Server, *ssh.Request) (bool, []byte) {
				s.mu.Lock()
				s.keepalives++
				s.mu.Unlock()
				return true, nil
			},
		},
		ChannelHandlers: map[string]gliderssh.ChannelHandler{
			"session": gliderssh.DefaultSessionHandler,
		},
	}
	if opts.Forwarding {
		s.srv.ChannelHandlers["direct-tcpip"] = gliderssh.DirectTCPIPHandler
		s.srv.LocalPortForwardingCallback = func(gliderssh.Context, string, uint32) bool { return true }
	}
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		s.srv.Serve(ln)
	}()
	return s, nil
}

type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.raw, c.Conn)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HostKey is the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// HostKeyLine is the host key as an authorized_keys line, as cloud-init's
// phone_home posts it (without the trailing newline).
func (s *Server) HostKeyLine() string { return AuthorizedLine(s.hostKey.PublicKey()) }

// Commands returns every exec command received so far, in order.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Users returns the user name of every session so far, in order.
func (s *Server) Users() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.users...)
}

// Conns reports how many TCP connections the server has accepted.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Open reports how many TCP connections are open now: a test can wait for
// a client's Close to reach the server.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.raw)
}

// Keepalives reports how many keepalive@openssh.com requests arrived.
func (s *Server) Keepalives() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keepalives
}

// Signals returns the signals clients sent to sessions run by Exec.
func (s *Server) Signals() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.signals...)
}

func (s *Server) recordSignal(sig string) {
	s.mu.Lock()
	s.signals = append(s.signals, sig)
	s.mu.Unlock()
}

// Drop closes every open connection at the TCP level, as a network failure
// would; the server keeps listening.
func (s *Server) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.raw {
		c.Close()
	}
}

// Close stops the server, drops every connection and waits for every
// handler to return.
func (s *Server) Close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		s.mu.Unlock()
		s.srv.Close()
		// gliderlabs closes only the listeners Serve has registered; a
		// Serve that has not got that far would accept forever.
		s.ln.Close()
		s.Drop()
		s.serving.Wait()
		s.handlers.Wait()
	})
}

// Script returns a handler that reads the whole of stdin (until the
// client's EOF), calls fn with the command and stdin, writes fn's stdout
// and stderr and exits with its code.
func Script(fn func(cmd string, stdin []byte) (stdout, stderr string, code int)) Handler {
	return func(sess gliderssh.Session) {
		in, err := io.ReadAll(sess)
		if err != nil {
			sess.Exit(255)
			return
		}
		stdout, stderr, code := fn(sess.RawCommand(), in)
		io.WriteString(sess, stdout)
		io.WriteString(sess.Stderr(), stderr)
		sess.Exit(code)
	}
}

// Exec returns a handler that runs each command with /bin/sh -c on this
// machine, with env added to the server's environment, in its own process
// group. A signal request from the client is delivered to the whole group;
// closing the server kills it. When the connection drops, the command
// sees EOF on stdin and a broken pipe on output, as under OpenSSH.
func Exec(env ...string) Handler { return ExecWith(nil, env...) }

// ExecWith is Exec with the command text passed through rewrite first
// (nil: unchanged), e.g. to move absolute paths into a sandbox the way
// provider/fake's simulated servers do. Commands() still records the
// command as received.
func ExecWith(rewrite func(cmd string) string, env ...string) Handler {
	return func(sess gliderssh.Session) {
		line := sess.RawCommand()
		if rewrite != nil {
			line = rewrite(line)
		}
		cmd := exec.Command("/bin/sh", "-c", line)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = sess
		cmd.Stdout = sess
		cmd.Stderr = sess.Stderr()
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			io.WriteString(sess.Stderr(), err.Error()+"\n")
			sess.Exit(127)
			return
		}
		// The signal channel is registered once and never unregistered:
		// gliderlabs v0.3.8 delivers signals that arrived before
		// registration from a goroutine that reads the registered channel
		// without its lock, so Signals(nil) would race with it. The
		// watcher drains the channel until the connection ends and drops
		// what arrives after the command exited.
		sigs := make(chan gliderssh.Signal, 8)
		sess.Signals(sigs)
		var (
			mu     sync.Mutex
			exited bool
		)
		go func() {
			s := serverOf(sess)
			ctx := sess.Context()
			stop := closing(s)
			for {
				select {
				case sig := <-sigs:
					mu.Lock()
					if !exited {
						if s != nil {
							s.recordSignal(string(sig))
						}
						syscall.Kill(-cmd.Process.Pid, signum(sig))
					}
					mu.Unlock()
				case <-stop:
					stop = nil
					mu.Lock()
					if !exited {
						syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					}
					mu.Unlock()
				case <-ctx.Done():
					// The connection is gone (or the server closing cut
					// it): nobody can read the command's output any more.
					mu.Lock()
					if !exited {
						syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					}
					mu.Unlock()
					for {
						select {
						case <-sigs:
						default:
							return
						}
					}
				}
			}
		}()
		err := cmd.Wait()
		mu.Lock()
		exited = true
		mu.Unlock()
		code := 0
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
			if code < 0 {
				code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
			}
		case err != nil:
			code = 255
		}
		sess.Exit(code)
	}
}

// serverOf finds the sshtest Server a session belongs to, through the
// connection context; Exec also works under a plain gliderlabs server, so
// a missing Server is fine.
func serverOf(sess gliderssh.Session) *Server {
	v, _ := sess.Context().Value(serverKey{}).(*Server)
	return v
}

type serverKey struct{}

func closing(s *Server) <-chan struct{} {
	if s == nil {
		return nil
	}
	return s.done
}

func signum(sig gliderssh.Signal) syscall.Signal {
	switch sig {
	case gliderssh.SIGKILL:
		return syscall.SIGKILL
	case gliderssh.SIGINT:
		return syscall.SIGINT
	case gliderssh.SIGHUP:
		return syscall.SIGHUP
	case gliderssh.SIGQUIT:
		return syscall.SIGQUIT
	default:
		return syscall.SIGTERM
	}
}
