package inject

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Defaults for SSHConfig's zero values.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultKeepAlive    = 15 * time.Second
	DefaultKeepAliveMax = 3
	DefaultBackoff      = 250 * time.Millisecond
	DefaultMaxBackoff   = 5 * time.Second
	// DefaultMaxOutput is SSHConfig.MaxOutput's default: 16 MiB.
	DefaultMaxOutput = 16 << 20
)

// MaxStderr is how much of a command's stderr (*SSH).Run returns: its
// last MaxStderr bytes, kept as they arrive.
const MaxStderr = 64 << 10

// cancelGrace is how long Stream waits, after ctx ends or the output
// passed its limit, for the server to confirm that the stopped command's
// session is closed.
const cancelGrace = 2 * time.Second

// drainGrace is how long Stream lets a cancelled command end on its
// SIGTERM, reading what it sent until then, before it closes the session.
const drainGrace = 300 * time.Millisecond

// SSHConfig configures Dial. User, HostKeyCallback and a key (Signer or
// Agent) are required.
type SSHConfig struct {
	User   string
	Signer ssh.Signer // see ParsePrivateKey
	// HostKeyCallback checks the server's host key: PinnedHostKeys,
	// KnownHosts or ssh.FixedHostKey. Required: nil is an error, never
	// "accept anything".
	HostKeyCallback ssh.HostKeyCallback
	// Timeout bounds each attempt's connect plus handshake; 0 means
	// DefaultTimeout. The context bounds everything, retries included.
	Timeout time.Duration

	// HostKeyAlgorithms, when set, are the host key algorithms offered, in
	// order (see PinnedHostKeyAlgorithms).
	HostKeyAlgorithms []string
	// Agent also offers the keys of the SSH agent at AgentSocket, or at
	// $SSH_AUTH_SOCK when AgentSocket is empty.
	Agent       bool
	AgentSocket string
	// Jump, when set, is a connection to a bastion: the TCP connection to
	// addr is opened through it (a direct-tcpip channel).
	Jump *SSH
	// KeepAlive is the interval of keepalive@openssh.com requests; a
	// connection that leaves one unanswered for KeepAliveMax intervals is
	// closed, which fails the running command. 0 means DefaultKeepAlive;
	// negative turns keepalives off.
	KeepAlive time.Duration
	// KeepAliveMax is how many intervals a keepalive may go unanswered
	// (OpenSSH's ServerAliveCountMax); 0 means DefaultKeepAliveMax.
	KeepAliveMax int
	// Attempts caps the connection attempts; 0 retries until the context
	// ends. Only connection refused, reset, unreachable, EOF during the
	// handshake and timeouts are retried; a host key or authentication
	// failure is final at once.
	Attempts int
	// Backoff is the first pause between attempts (DefaultBackoff);
	// pauses double up to MaxBackoff (DefaultMaxBackoff), each drawn at
	// random from its upper half.
	Backoff, MaxBackoff time.Duration
	// MaxOutput bounds what one session may send, stdout and stderr
	// together, in bytes: past it the session is closed (which stops the
	// command) and Run and Stream return an *OutputLimitError. It bounds
	// the memory (*SSH).Run holds for stdout, and the time and traffic a
	// server that floods its output can take; Run itself holds only a
	// bounded tail of it whatever the limit. 0 means DefaultMaxOutput;
	// negative means no limit.
	MaxOutput int64
	// Logger receives retries and keepalive failures; nil is quiet.
	Logger *slog.Logger
}

// SSH is a connection to a server, a Runner: each Run is one session.
// Safe for concurrent use.
type SSH struct {
	client    *ssh.Client
	addr      string
	log       *slog.Logger
	maxOutput int64

	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

var _ StreamRunner = (*SSH)(nil)

// Dial connects to addr ("host:port") and authenticates, retrying while
// the server is not up yet (see SSHConfig.Attempts) until ctx ends. It
// dials with net.Dialer.DialContext (or through cfg.Jump) and shakes hands
// with ssh.NewClientConn, so ctx and cfg.Timeout bound every part. A host
// key the callback refuses fails with an error wrapping ErrHostKey, a
// refused key with one wrapping ErrAuth; neither is retried.
func Dial(ctx context.Context, addr string, cfg SSHConfig) (*SSH, error) {
	if cfg.HostKeyCallback == nil {
		return nil, fmt.Errorf("%w: SSHConfig.HostKeyCallback is nil (pin the server's keys with PinnedHostKeys)", ErrInvalid)
	}
	if cfg.User == "" {
		return nil, fmt.Errorf("%w: SSHConfig.User is empty", ErrInvalid)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var signers []ssh.Signer
	if cfg.Signer != nil {
		signers = append(signers, cfg.Signer)
	}
	if cfg.Agent {
		sock := cfg.AgentSocket
		if sock == "" {
			sock = os.Getenv("SSH_AUTH_SOCK")
		}
		if sock == "" {
			return nil, fmt.Errorf("%w: SSHConfig.Agent is set but SSH_AUTH_SOCK is empty", ErrInvalid)
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", sock)
		if err != nil {
			return nil, fmt.Errorf("inject: ssh agent: %w", err)
		}
		// The agent signs during the handshake only.
		defer conn.Close()
		as, err := agent.NewClient(conn).Signers()
		if err != nil {
			return nil, fmt.Errorf("inject: ssh agent: %w", err)
		}
		signers = append(signers, as...)
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("%w: no key: set SSHConfig.Signer or SSHConfig.Agent", ErrInvalid)
	}
	timeout := cmpOr(cfg.Timeout, DefaultTimeout)
	backoff := cmpOr(cfg.Backoff, DefaultBackoff)
	maxBackoff := cmpOr(cfg.MaxBackoff, DefaultMaxBackoff)
	auth := []ssh.AuthMethod{ssh.PublicKeys(signers...)}

	for attempt := 1; ; attempt++ {
		c, err := dialOnce(ctx, addr, &cfg, auth, timeout)
		if err == nil {
			s := &SSH{client: c, addr: addr, log: log, maxOutput: cfg.MaxOutput, done: make(chan struct{})}
			if s.maxOutput == 0 {
				s.maxOutput = DefaultMaxOutput
			}
			if ka := cmpOr(cfg.KeepAlive, DefaultKeepAlive); ka > 0 {
				n := cfg.KeepAliveMax
				if n <= 0 {
					n = DefaultKeepAliveMax
				}
				s.wg.Add(1)
				go s.keepalive(ka, n)
			}
			return s, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(err, cerr) {
				return nil, fmt.Errorf("dial %s: %w", addr, err)
			}
			return nil, fmt.Errorf("dial %s: %w (last attempt: %w)", addr, cerr, err)
		}
		if !retryable(err) || (cfg.Attempts > 0 && attempt >= cfg.Attempts) {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		log.InfoContext(ctx, "inject: ssh not reachable yet, retrying", "addr", addr, "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("dial %s: %w (last attempt: %w)", addr, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// errAttemptTimeout marks an attempt that ran out of SSHConfig.Timeout.
var errAttemptTimeout = errors.New("connect and handshake timed out")

func dialOnce(ctx context.Context, addr string, cfg *SSHConfig, auth []ssh.AuthMethod, timeout time.Duration) (*ssh.Client, error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if cfg.Jump != nil {
		conn, err = cfg.Jump.client.DialContext(actx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(actx, "tcp", addr)
	}
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("%w after %v: %w", errAttemptTimeout, timeout, errors.Join(context.DeadlineExceeded, err))
		}
		return nil, err
	}
	// The handshake knows no context: closing the connection ends it.
	stop := context.AfterFunc(actx, func() { conn.Close() })

	var mu sync.Mutex
	var hostKeyErr error
	check := func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := cfg.HostKeyCallback(host, remote, key)
		if err != nil && !errors.Is(err, ErrHostKey) {
			err = fmt.Errorf("%w: %w", ErrHostKey, err)
		}
		mu.Lock()
		hostKeyErr = err
		mu.Unlock()
		return err
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              auth,
		HostKeyCallback:   check,
		HostKeyAlgorithms: cfg.HostKeyAlgorithms,
	})
	if !stop() {
		// actx ended during the handshake and closed the connection.
		if err == nil {
			cc.Close()
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("%w after %v: %w", errAttemptTimeout, timeout, context.DeadlineExceeded)
	}
	if err != nil {
		conn.Close()
		mu.Lock()
		hkErr := hostKeyErr
		mu.Unlock()
		switch {
		case hkErr != nil && !errors.Is(err, ErrHostKey):
			return nil, fmt.Errorf("%w (%w)", hkErr, err)
		case errors.Is(err, ErrHostKey):
			return nil, err
		case authFailed(err):
			return nil, fmt.Errorf("%w: %w", ErrAuth, err)
		}
		return nil, err
	}
	return ssh.NewClient(cc, chans, reqs), nil
}

// authFailed recognises x/crypto/ssh's authentication failure, which has
// no type of its own, and OpenSSH's disconnect after too many keys.
func authFailed(err error) bool {
	s := err.Error()
	return strings.Contains(s, "unable to authenticate") ||
		strings.Contains(s, "no supported methods remain") ||
		strings.Contains(s, "Too many authentication failures")
}

// retryable reports whether a failed attempt may succeed later: the
// server is booting, sshd is restarting, the network is not there yet.
func retryable(err error) bool {
	if errors.Is(err, ErrHostKey) || errors.Is(err, ErrAuth) || errors.Is(err, ErrInvalid) {
		return false
	}
	for _, e := range []error{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.ETIMEDOUT,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EPIPE,
		io.EOF, io.ErrUnexpectedEOF, errAttemptTimeout,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oce *ssh.OpenChannelError
	return errors.As(err, &oce) && oce.Reason == ssh.ConnectionFailed
}

func (s *SSH) keepalive(every time.Duration, unanswered int) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			// A server that does not know the request answers "failure":
			// an answer all the same.
			_, _, err := s.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		wait := time.Duration(unanswered) * every
		timer := time.NewTimer(wait)
		select {
		case err := <-reply:
			timer.Stop()
			if err != nil {
				s.log.Warn("inject: ssh keepalive failed; closing the connection", "addr", s.addr, "err", err)
				s.client.Close()
				return
			}
		case <-timer.C:
			s.log.Warn("inject: ssh keepalive unanswered; closing the connection", "addr", s.addr, "wait", wait)
			s.client.Close()
			return
		case <-s.done:
			timer.Stop()
			return
		}
	}
}

// Client returns the underlying x/crypto/ssh client.
func (s *SSH) Client() *ssh.Client { return s.client }

// Close closes the connection and stops its keepalives. Commands still
// running fail.
func (s *SSH) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.client.Close()
		s.wg.Wait()
	})
	return err
}

// Run runs cmd in a new session with stdin fed to it (then EOF), and
// returns its stdout and the last MaxStderr bytes of its stderr; see
// Stream. Together they hold at most SSHConfig.MaxOutput bytes.
func (s *SSH) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, []byte, error) {
	stdout := growBuffer{max: s.maxOutput}
	stderr := tailBuffer{max: MaxStderr}
	err := s.Stream(ctx, cmd, stdin, &stdout, &stderr)
	return stdout.b, stderr.Bytes(), err
}

// growBuffer collects what is written to it, doubling its capacity as
// it grows but never beyond max (when max >= 0) more than it must.
type growBuffer struct {
	max int64
	b   []byte
}

func (g *growBuffer) Write(p []byte) (int, error) {
	if need := len(g.b) + len(p); need > cap(g.b) {
		c := max(2*cap(g.b), need, 512)
		if g.max >= 0 {
			c = min(c, max(int(g.max), need))
		}
		b := make([]byte, len(g.b), c)
		copy(b, g.b)
		g.b = b
	}
	g.b = append(g.b, p...)
	return len(p), nil
}

// Stream runs cmd in a new session with stdin fed to it (then EOF), and
// writes its output to stdout and stderr (nil: discarded) as it arrives,
// never to both at once and never after Stream returns. A non-zero exit
// is an *ssh.ExitError. Past SSHConfig.MaxOutput bytes of output the
// session is closed and Stream returns an *OutputLimitError.
//
// When ctx ends, the command is sent SIGTERM (which OpenSSH delivers to
// the command's process group, unless it refuses to: see the package doc)
// and the session is closed, which also closes the command's stdin and
// output; Stream then returns an error wrapping ctx.Err() and, when the
// command's exit status arrived within a short grace period, the
// *ssh.ExitError too.
func (s *SSH) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	type opened struct {
		sess *ssh.Session
		err  error
	}
	oc := make(chan opened, 1)
	go func() {
		sess, err := s.client.NewSession()
		oc <- opened{sess, err}
	}()
	var sess *ssh.Session
	select {
	case o := <-oc:
		if o.err != nil {
			return fmt.Errorf("ssh session: %w", o.err)
		}
		sess = o.sess
	case <-ctx.Done():
		go func() {
			if o := <-oc; o.sess != nil {
				o.sess.Close()
			}
		}()
		return ctx.Err()
	}
	defer sess.Close()

	// Cancelled, the command gets SIGTERM and a moment (drainGrace) to
	// end, so that the output it sent before is read (the step it ran in
	// is the one blamed), then the session is closed (which stops it
	// where sshd refuses the signal: its script's watchdog sees the
	// session go); over the output limit, the session is closed at once.
	var sigOnce, closeOnce sync.Once
	aborted := make(chan struct{})
	signal := func() {
		sigOnce.Do(func() {
			close(aborted)
			sess.Signal(ssh.SIGTERM)
		})
	}
	closeSess := func() { closeOnce.Do(func() { sess.Close() }) }
	abort := func() { signal(); closeSess() }
	out := &output{limit: s.maxOutput, abort: abort}
	sess.Stdout, sess.Stderr = out.writer("stdout", stdout), out.writer("stderr", stderr)
	// No write reaches stdout or stderr once Stream has returned.
	defer out.close()
	in, err := sess.StdinPipe()
	if err != nil {
		return fmt.Errorf("ssh session: %w", err)
	}
	stop := context.AfterFunc(ctx, signal)
	defer stop()
	if err := sess.Start(cmd); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return fmt.Errorf("ssh exec: %w", err)
	}
	src := &detachable{r: stdin}
	go func() {
		if stdin != nil {
			io.Copy(in, src)
		}
		in.Close()
	}()
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-aborted: // ctx ended, or the output passed its limit
		drain := time.NewTimer(drainGrace)
		select {
		case werr = <-waited:
		case <-drain.C:
			closeSess()
			t := time.NewTimer(cancelGrace)
			select {
			case werr = <-waited:
			case <-t.C:
				werr = errors.New("no exit status yet")
			}
			t.Stop()
		}
		drain.Stop()
	}
	// Nothing reads the caller's stdin after Stream returns.
	src.detach()
	if lerr := out.close(); lerr != nil {
		return lerr
	}
	if cerr := ctx.Err(); cerr != nil && werr == nil {
		werr = fmt.Errorf("command stopped: %w", cerr)
	} else if cerr != nil {
		// %w twice: an exit status that arrived in the grace period
		// (the command exited on its own, or on SIGTERM) stays in reach
		// of errors.As, for the step's exit code.
		werr = fmt.Errorf("command stopped: %w (%w)", cerr, werr)
	}
	return werr
}

// detachable reads from r until detach; then it reports EOF. A Read
// already blocked in r when detach is called still completes.
type detachable struct {
	r        io.Reader
	detached atomic.Bool
}

func (d *detachable) Read(p []byte) (int, error) {
	if d.detached.Load() {
		return 0, io.EOF
	}
	return d.r.Read(p)
}

func (d *detachable) detach() { d.detached.Store(true) }
