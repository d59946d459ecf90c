package fake

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
)

// rawConnKey holds a connection's net.Conn in its gliderlabs context, so the
// DropAfter fault can cut it.
type rawConnKey struct{}

// sshServer configures the gliderlabs server. serve feeds it connections
// itself (instead of Serve) so that stop can wait for every one of them.
func (s *Server) sshServer() *gliderssh.Server {
	return &gliderssh.Server{
		Version:     "OpenSSH_9.2p1 Debian-2+deb12u3",
		HostSigners: []gliderssh.Signer{s.hostKey},
		Handler:     s.handle,
		PublicKeyHandler: func(ctx gliderssh.Context, key gliderssh.PublicKey) bool {
			u, ok := s.spec.user(ctx.User())
			if !ok {
				return false
			}
			accepted := false
			for _, k := range u.keys {
				// no early return: every key is compared, in constant time
				if gliderssh.KeysEqual(k, key) {
					accepted = true
				}
			}
			return accepted
		},
		PtyCallback: func(gliderssh.Context, gliderssh.Pty) bool { return false },
		SessionRequestCallback: func(_ gliderssh.Session, requestType string) bool {
			return requestType == "exec"
		},
		ConnCallback: func(ctx gliderssh.Context, c net.Conn) net.Conn {
			ctx.SetValue(rawConnKey{}, c)
			return c
		},
		ChannelHandlers:   map[string]gliderssh.ChannelHandler{"session": gliderssh.DefaultSessionHandler},
		RequestHandlers:   map[string]gliderssh.RequestHandler{},
		SubsystemHandlers: map[string]gliderssh.SubsystemHandler{},
	}
}

// serve accepts connections until the listener is closed.
func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			s.ssh.HandleConn(c)
		}()
	}
}

// handle runs one exec session.
func (s *Server) handle(sess gliderssh.Session) {
	if !s.enter() {
		return
	}
	defer s.wg.Done()
	raw := sess.RawCommand()
	s.mu.Lock()
	s.commands = append(s.commands, raw)
	n := len(s.commands)
	drop := s.faults.DropAfter > 0 && n > s.faults.DropAfter && !s.dropped
	if drop {
		s.dropped = true
	}
	s.mu.Unlock()
	if drop {
		s.log.Info("fake: fault DropAfter: cutting the SSH connection", "session", n)
		if c, ok := sess.Context().Value(rawConnKey{}).(net.Conn); ok {
			_ = c.Close()
		}
		return
	}
	s.log.Debug("fake: exec", "user", sess.User(), "cmd", raw)
	_ = sess.Exit(s.run(sess, raw))
}

// run runs one command with /bin/sh in the sandbox and returns its exit
// status: the command's paths are checked and rewritten, and it runs in
// the server's read-only mount namespace when there is one. It is killed
// when the connection ends or the server stops.
func (s *Server) run(sess gliderssh.Session, raw string) int {
	if err := checkCommand(raw); err != nil {
		s.log.Warn("fake: command refused", "err", err)
		fmt.Fprintln(sess.Stderr(), err)
		return RefusedExit
	}
	ctx, cancel := s.untilStop(sess.Context())
	defer cancel()

	user := sess.User()
	home := s.Path(homeOf(user))
	argv := []string{"/bin/sh", "-c", rewritePaths(raw, s.fs, s.bin)}
	if pid := s.namespace(); pid > 0 {
		argv = append(append([]string{s.iso.nsenter}, s.nsenterArgs(pid, home)...), argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = home
	cmd.Env = []string{
		"PATH=" + s.bin + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		"USER=" + user,
		"LOGNAME=" + user,
		"SHELL=/bin/sh",
		"LANG=C.UTF-8",
		"TMPDIR=" + filepath.Join(s.fs, "tmp"),
		"HATCHERY_FAKE_USER=" + user,
	}
	cmd.Stdout = sess
	cmd.Stderr = sess.Stderr()
	cmd.WaitDelay = time.Second
	processGroup(cmd)
	// Not cmd.Stdin = sess: exec would wait for the client's EOF even
	// after the command exited. The pipe is closed by Wait.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		fmt.Fprintf(sess.Stderr(), "fake: %v\n", err)
		return 255
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(sess.Stderr(), "fake: %v\n", err)
		return 127
	}
	s.wg.Add(2) // s.handle holds a count: safe
	go func() {
		defer s.wg.Done()
		_, _ = io.Copy(stdin, sess)
		_ = stdin.Close()
	}()
	// Signals the client sends go to the command's process group, as sshd
	// passes them on (inject sends TERM when its context ends).
	exited := s.watchSignals(sess, cmd)
	_ = cmd.Wait()
	exited()
	return exitCode(cmd.ProcessState)
}

// sigBuffer is the capacity of a session's signal channel: more than
// gliderlabs can still send once the watcher has stopped (the up to 128
// signals it buffered before registration, plus the requests queued in
// the channel when the connection ends).
const sigBuffer = 256

// watchSignals passes the signals the client sends on sess to cmd's
// process group until the returned function is called (after cmd.Wait);
// later signals are dropped. The caller must hold a count of s.wg; the
// watcher takes one more.
//
// The channel is registered once and never unregistered, and the watcher
// drains it until the connection ends, not merely until the command
// does. gliderlabs/ssh v0.3.8 delivers the signals that arrived before
// registration from a goroutine that reads the registration without the
// session's lock, so Signals(nil) would race with it (and could leave it
// blocked on a nil channel); and it sends later signals under that lock,
// which Exit needs, so nobody receiving would hang the session.
func (s *Server) watchSignals(sess gliderssh.Session, cmd *exec.Cmd) (exited func()) {
	var (
		mu   sync.Mutex
		done bool
	)
	sigs := make(chan gliderssh.Signal, sigBuffer)
	sess.Signals(sigs)
	go func() {
		defer s.wg.Done()
		ctx := sess.Context()
		for {
			select {
			case sig := <-sigs:
				mu.Lock()
				if !done {
					s.log.Debug("fake: signal", "signal", sig)
					signalGroup(cmd, string(sig))
				}
				mu.Unlock()
			case <-ctx.Done():
				// Empty the channel, so that what gliderlabs may still
				// send fits in it.
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
	return func() {
		mu.Lock()
		done = true
		mu.Unlock()
	}
}
