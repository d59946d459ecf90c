// Package opensshd starts a real OpenSSH sshd for tests: on 127.0.0.1, on
// a free port, as the current user, with a generated ed25519 host key and
// its whole configuration in a temporary directory.
//
// Every session goes through a ForceCommand wrapper that appends
// $SSH_ORIGINAL_COMMAND to a log (so tests can check what reached the
// server's command line, where `ps` would show it) and then runs it with
// /bin/sh -c. The server is stopped when the test ends.
//
// When sshd is not installed the test is skipped, or fails when
// HATCHERY_INTEGRATION=1 (see internal/testenv).
package opensshd

import (
	"bytes"
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/internal/testenv"
	"golang.org/x/crypto/ssh"
)

// Options configures the server.
type Options struct {
	// AuthorizedKeys are the client keys sshd accepts for the current user.
	AuthorizedKeys []ssh.PublicKey
	// Env is exported by the wrapper before it runs each command, as
	// NAME=value entries (e.g. "PATH=/stand-ins:/usr/bin:/bin").
	Env []string
}

// Server is a running sshd.
type Server struct {
	Addr    string        // 127.0.0.1:port
	User    string        // the user to log in as (the current user)
	Dir     string        // the temporary directory holding config, keys and logs
	HostKey ssh.PublicKey // the server's ed25519 host key

	cmd     *exec.Cmd
	log     string
	stderr  *syncBuffer
	stopped chan struct{}
}

// Start starts sshd and registers its shutdown with tb.Cleanup.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	sshd := testenv.LookPath(tb, "sshd", "/usr/sbin")
	u, err := user.Current()
	if err != nil {
		tb.Fatalf("opensshd: current user: %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd running as root needs its privilege separation directory,
		// which the package's service unit normally creates.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			tb.Fatalf("opensshd: %v", err)
		}
	}
	dir := tb.TempDir()
	s := &Server{User: u.Username, Dir: dir, log: filepath.Join(dir, "commands.log")}

	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "opensshd test host key")
	if err != nil {
		tb.Fatal(err)
	}
	write(tb, filepath.Join(dir, "host_ed25519"), pem.EncodeToMemory(block), 0o600)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	s.HostKey = signer.PublicKey()

	var ak bytes.Buffer
	for _, k := range opts.AuthorizedKeys {
		ak.Write(ssh.MarshalAuthorizedKey(k))
	}
	write(tb, filepath.Join(dir, "authorized_keys"), ak.Bytes(), 0o600)

	var wrap strings.Builder
	wrap.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&wrap, "printf '%%s\\0' \"$SSH_ORIGINAL_COMMAND\" >> %s\n", quote(s.log))
	for _, kv := range opts.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			tb.Fatalf("opensshd: bad Env entry %q", kv)
		}
		fmt.Fprintf(&wrap, "export %s=%s\n", k, quote(v))
	}
	wrap.WriteString("exec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n")
	write(tb, filepath.Join(dir, "wrap.sh"), []byte(wrap.String()), 0o755)

	var lastErr string
	for range 5 {
		port := freePort(tb)
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		cfg := strings.Join([]string{
			"ListenAddress " + s.Addr,
			"HostKey " + filepath.Join(dir, "host_ed25519"),
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
			"ForceCommand " + filepath.Join(dir, "wrap.sh"),
			"StrictModes no",
			"UsePAM no",
			"PermitRootLogin prohibit-password",
			"PubkeyAuthentication yes",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"AllowTcpForwarding yes",
			"MaxStartups 100",
			"MaxSessions 100",
			"LogLevel VERBOSE",
			"",
		}, "\n")
		cfgPath := filepath.Join(dir, "sshd_config")
		write(tb, cfgPath, []byte(cfg), 0o600)

		s.stderr = &syncBuffer{}
		s.cmd = exec.Command(sshd, "-D", "-e", "-f", cfgPath)
		s.cmd.Stderr = s.stderr
		s.cmd.Stdout = s.stderr
		if err := s.cmd.Start(); err != nil {
			tb.Fatalf("opensshd: start %s: %v", sshd, err)
		}
		s.stopped = make(chan struct{})
		go func(cmd *exec.Cmd, stopped chan struct{}) {
			cmd.Wait()
			close(stopped)
		}(s.cmd, s.stopped)
		if s.ready(10 * time.Second) {
			tb.Cleanup(s.stop)
			return s
		}
		s.stop()
		lastErr = s.stderr.String()
		if !strings.Contains(lastErr, "Address already in use") {
			break
		}
	}
	tb.Fatalf("opensshd: sshd did not come up:\n%s", lastErr)
	return nil
}

// ready waits until sshd answers with its version banner, or exits.
func (s *Server) ready(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.stopped:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 8)
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "SSH-2.0") {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func (s *Server) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	<-s.stopped
}

// HostKeyLine is the host key as an authorized_keys line, as cloud-init's
// phone_home posts it (without the trailing newline).
func (s *Server) HostKeyLine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKey)))
}

// Commands returns every command line the server was asked to run, in
// order, as the wrapper logged it.
func (s *Server) Commands() []string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return nil
	}
	parts := strings.Split(string(b), "\x00")
	return parts[:len(parts)-1]
}

// Log returns what sshd has written to its log so far.
func (s *Server) Log() string { return s.stderr.String() }

func write(tb testing.TB, path string, data []byte, mode os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		tb.Fatalf("opensshd: %v", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		tb.Fatalf("opensshd: %v", err)
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("opensshd: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// quote quotes s for /bin/sh.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
