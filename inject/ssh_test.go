package inject_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/latency"
	"github.com/hatchery-dev/hatchery/internal/sshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// bundle is a test SSH server and a client key it accepts.
type bundle struct {
	srv *sshtest.Server
	key ssh.Signer
}

func setup(t *testing.T, opts sshtest.Options) bundle {
	t.Helper()
	key := sshtest.NewKey(t)
	opts.AuthorizedKeys = append(opts.AuthorizedKeys, key.PublicKey())
	return bundle{srv: sshtest.Start(t, opts), key: key}
}

func (b bundle) config(t *testing.T) inject.SSHConfig {
	t.Helper()
	cb, err := inject.PinnedHostKeys([]string{b.srv.HostKeyLine() + " root@host\n"})
	require.NoError(t, err)
	return inject.SSHConfig{User: "rachel", Signer: b.key, HostKeyCallback: cb, Timeout: 5 * time.Second}
}

func (b bundle) dial(t *testing.T, cfg inject.SSHConfig) *inject.SSH {
	t.Helper()
	c, err := inject.Dial(context.Background(), b.srv.Addr(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSSHRun(t *testing.T) {
	t.Parallel()
	b := setup(t, sshtest.Options{Handler: sshtest.Script(func(cmd string, stdin []byte) (string, string, int) {
		switch cmd {
		case "ok":
			return "out:" + string(stdin), "err", 0
		default:
			return "", "no such command", 42
		}
	})})
	c := b.dial(t, b.config(t))
	stdout, stderr, err := c.Run(context.Background(), "ok", strings.NewReader("input"))
	require.NoError(t, err)
	assert.Equal(t, "out:input", string(stdout))
	assert.Equal(t, "err", string(stderr))

	stdout, stderr, err = c.Run(context.Background(), "other", nil)
	var ee *ssh.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 42, ee.ExitStatus())
	assert.Empty(t, stdout)
	assert.Equal(t, "no such command", string(stderr))
	assert.Equal(t, []string{"rachel", "rachel"}, b.srv.Users())
	assert.Equal(t, 1, b.srv.Conns(), "one connection, a session per Run")
}

func TestSSHRunSteps(t *testing.T) {
	t.Parallel()
	bin, _ := standins(t)
	b := setup(t, sshtest.Options{Handler: sshtest.Exec("PATH=" + bin)})
	c := b.dial(t, b.config(t))
	for _, m := range modes {
		dir := t.TempDir()
		steps := []inject.Step{
			inject.WaitCloudInit(false),
			inject.Mkdir(dir+"/app", 0o700),
			inject.WriteFile(dir+"/app/.env", []byte("TOKEN=secret-token-value\n"), 0o600),
			{Name: "fail", Cmd: "cat " + dir + "/app/.env >&2; exit 5"},
		}
		err := inject.Run(context.Background(), c, steps, inject.WithPipelining(m.pipelined))
		var se *inject.StepError
		require.ErrorAs(t, err, &se, m.name)
		assert.Equal(t, 3, se.Index)
		assert.Equal(t, 5, se.ExitCode)
		assert.Equal(t, "[REDACTED]\n", se.Stderr)
		got, err := os.ReadFile(dir + "/app/.env")
		require.NoError(t, err)
		assert.Equal(t, "TOKEN=secret-token-value\n", string(got))
	}
	cmds := b.srv.Commands()
	assert.Len(t, cmds, 1+4, "pipelined: one session; stepwise: one per step")
	for _, cmd := range cmds {
		assert.NotContains(t, cmd, "secret-token-value")
	}
}

func TestDialRefusesWrongHostKeyAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, sshtest.Options{})
	cfg := b.config(t)
	var err error
	cfg.HostKeyCallback, err = inject.PinnedHostKeys([]string{sshtest.AuthorizedLine(sshtest.Key("not the server").PublicKey())})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = inject.Dial(ctx, b.srv.Addr(), cfg)
	require.ErrorIs(t, err, inject.ErrHostKey)
	assert.NotErrorIs(t, err, inject.ErrAuth)
	assert.Contains(t, err.Error(), ssh.FingerprintSHA256(b.srv.HostKey()))
	assert.Equal(t, 1, b.srv.Conns(), "never retried")
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestDialRefusedKeyIsFinal(t *testing.T) {
	t.Parallel()
	b := setup(t, sshtest.Options{})
	cfg := b.config(t)
	cfg.Signer = sshtest.Key("stranger")
	_, err := inject.Dial(context.Background(), b.srv.Addr(), cfg)
	require.ErrorIs(t, err, inject.ErrAuth)
	assert.NotErrorIs(t, err, inject.ErrHostKey)
	assert.Equal(t, 1, b.srv.Conns(), "never retried")
}

func TestDialRequiresConfig(t *testing.T) {
	t.Parallel()
	b := setup(t, sshtest.Options{})
	for name, mutate := range map[string]func(*inject.SSHConfig){
		"nil host key callback": func(c *inject.SSHConfig) { c.HostKeyCallback = nil },
		"no user":               func(c *inject.SSHConfig) { c.User = "" },
		"no key":                func(c *inject.SSHConfig) { c.Signer = nil },
		"agent without socket":  func(c *inject.SSHConfig) { c.Agent, c.AgentSocket = true, "" },
	} {
		cfg := b.config(t)
		mutate(&cfg)
		if name == "agent without socket" && os.Getenv("SSH_AUTH_SOCK") != "" {
			continue
		}
		_, err := inject.Dial(context.Background(), b.srv.Addr(), cfg)
		assert.ErrorIs(t, err, inject.ErrInvalid, name)
	}
	assert.Equal(t, 0, b.srv.Conns(), "nothing dialled")
}

func TestDialRetriesUntilServerIsUp(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // refused until the server starts

	key := sshtest.NewKey(t)
	host := sshtest.Key("booting host")
	cb, err := inject.PinnedHostKeys([]string{sshtest.AuthorizedLine(host.PublicKey())})
	require.NoError(t, err)
	started := make(chan *sshtest.Server, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		started <- sshtest.Start(t, sshtest.Options{Addr: addr, HostKey: host, AuthorizedKeys: []ssh.PublicKey{key.PublicKey()}})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := inject.Dial(ctx, addr, inject.SSHConfig{User: "u", Signer: key, HostKeyCallback: cb, Backoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	srv := <-started
	assert.Equal(t, 1, srv.Conns())
}

func TestDialGivesUpWithContext(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	cb, err := inject.PinnedHostKeys([]string{sshtest.AuthorizedLine(sshtest.Key("h").PublicKey())})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = inject.Dial(ctx, addr, inject.SSHConfig{User: "u", Signer: sshtest.Key("c"), HostKeyCallback: cb, Backoff: 10 * time.Millisecond})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "last attempt")
	assert.Less(t, time.Since(start), 5*time.Second)

	// Attempts caps the retries; the last attempt's error is kept.
	_, err = inject.Dial(context.Background(), addr, inject.SSHConfig{User: "u", Signer: sshtest.Key("c"), HostKeyCallback: cb, Attempts: 3, Backoff: time.Millisecond})
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
}

func TestDialTimeoutBoundsHandshake(t *testing.T) {
	t.Parallel()
	// A server that accepts connections and never says a word.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	})
	cb, err := inject.PinnedHostKeys([]string{sshtest.AuthorizedLine(sshtest.Key("h").PublicKey())})
	require.NoError(t, err)
	start := time.Now()
	_, err = inject.Dial(context.Background(), ln.Addr().String(), inject.SSHConfig{
		User: "u", Signer: sshtest.Key("c"), HostKeyCallback: cb,
		Timeout: 100 * time.Millisecond, Attempts: 2, Backoff: time.Millisecond,
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
	// The listener's goroutine may not have taken the second connection
	// from the accept queue yet.
	require.Eventually(t, func() bool { return len(accepted) >= 2 }, 20*time.Second, 5*time.Millisecond, "a timeout is retried")
	assert.Len(t, accepted, 2)
}

func TestJumpHost(t *testing.T) {
	t.Parallel()
	bastion := setup(t, sshtest.Options{Forwarding: true})
	target := setup(t, sshtest.Options{Handler: sshtest.Script(func(cmd string, _ []byte) (string, string, int) {
		return "target ran " + cmd, "", 0
	})})
	jump := bastion.dial(t, bastion.config(t))
	cfg := target.config(t)
	cfg.Jump = jump
	c, err := inject.Dial(context.Background(), target.srv.Addr(), cfg)
	require.NoError(t, err)
	defer c.Close()
	out, _, err := c.Run(context.Background(), "hostname", nil)
	require.NoError(t, err)
	assert.Equal(t, "target ran hostname", string(out))
	assert.Equal(t, 1, target.srv.Conns())
	assert.Empty(t, bastion.srv.Commands(), "the bastion only forwards")
}

func TestAgentAuth(t *testing.T) {
	t.Parallel()
	key := sshtest.NewKey(t) // a Signer the server refuses
	keyring := agent.NewKeyring()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				agent.ServeAgent(keyring, c)
			}()
		}
	}()
	raw := ed25519Key(t)
	require.NoError(t, keyring.Add(agent.AddedKey{PrivateKey: raw}))
	agentSigner, err := ssh.NewSignerFromKey(raw)
	require.NoError(t, err)
	srv := sshtest.Start(t, sshtest.Options{AuthorizedKeys: []ssh.PublicKey{agentSigner.PublicKey()},
		Handler: sshtest.Script(func(string, []byte) (string, string, int) { return "via agent", "", 0 })})
	cb, err := inject.PinnedHostKeys([]string{srv.HostKeyLine()})
	require.NoError(t, err)
	c, err := inject.Dial(context.Background(), srv.Addr(), inject.SSHConfig{
		User: "u", Signer: key, Agent: true, AgentSocket: sock, HostKeyCallback: cb,
	})
	require.NoError(t, err, "the Signer is refused, the agent's key is accepted")
	defer c.Close()
	out, _, err := c.Run(context.Background(), "x", nil)
	require.NoError(t, err)
	assert.Equal(t, "via agent", string(out))
}

func TestKeepAlive(t *testing.T) {
	t.Parallel()
	b := setup(t, sshtest.Options{})
	cfg := b.config(t)
	cfg.KeepAlive = 20 * time.Millisecond
	// A loaded machine may take longer than a few intervals to answer:
	// this test is about sending keepalives, not about giving up.
	cfg.KeepAliveMax = 1000
	c := b.dial(t, cfg)
	require.Eventually(t, func() bool { return b.srv.Keepalives() >= 3 }, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Close())
	n := b.srv.Keepalives()
	// Once the server has seen the connection go, nothing more can
	// arrive: at most the one keepalive that was on its way at Close.
	require.Eventually(t, func() bool { return b.srv.Open() == 0 }, 20*time.Second, 5*time.Millisecond)
	assert.LessOrEqual(t, b.srv.Keepalives(), n+1, "Close stops keepalives")
}

// TestKeepAliveDetectsDeadLink: the link goes silent (every chunk held for
// an hour) in the middle of a command; the keepalive closes the connection
// and Run fails instead of hanging.
func TestKeepAliveDetectsDeadLink(t *testing.T) {
	t.Parallel()
	b := setup(t, sshtest.Options{})
	p, err := latency.New(b.srv.Addr(), 0)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	cfg := b.config(t)
	cfg.KeepAlive = 50 * time.Millisecond
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	c, err := inject.Dial(context.Background(), p.Addr(), cfg)
	require.NoError(t, err)
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Run(context.Background(), "sleep 20", nil)
		done <- err
	}()
	// The command has reached the server: the link dies under it.
	require.Eventually(t, func() bool { return len(b.srv.Commands()) == 1 }, 20*time.Second, 5*time.Millisecond)
	p.SetDelay(time.Hour)
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run hung on a dead link")
	}
	assert.Contains(t, logs.String(), "keepalive unanswered; closing the connection")
}

// syncBuffer is a bytes.Buffer for a logger written from several
// goroutines.
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

// cancelWhenStarted cancels once the remote command has created path
// (the commands below start with `: >path`): a sync point instead of a
// sleep. It gives up waiting after a minute, and cancels all the same.
func cancelWhenStarted(path string, cancel func()) {
	go func() {
		defer cancel()
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(path); err == nil {
				return
			}
		}
	}()
}

func TestRunCancelStopsCommand(t *testing.T) {
	t.Parallel()
	b := setup(t, sshtest.Options{})
	c := b.dial(t, b.config(t))
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancelWhenStarted(dir+"/sleeping", cancel)
	start := time.Now()
	_, _, err := c.Run(ctx, ": >"+dir+"/sleeping; sleep 20", nil)
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 20*time.Second)
	// The server records the signal as its handler delivers it, maybe
	// after Run has returned.
	require.Eventually(t, func() bool { return len(b.srv.Signals()) > 0 }, 20*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"TERM"}, b.srv.Signals(), "the remote command got SIGTERM")

	// The connection is still good.
	out, _, err := c.Run(context.Background(), "printf ok", nil)
	require.NoError(t, err)
	assert.Equal(t, "ok", string(out))

	// And Run as a whole stops with a StepError wrapping the cancellation.
	for _, m := range modes {
		ctx, cancel = context.WithCancel(context.Background())
		defer cancel()
		mark := dir + "/slow-" + m.name
		cancelWhenStarted(mark, cancel)
		err = inject.Run(ctx, c, []inject.Step{{Name: "quick", Cmd: "true"}, {Name: "slow", Cmd: ": >" + mark + "; sleep 20"}, {Name: "never", Cmd: "true"}},
			inject.WithPipelining(m.pipelined))
		var se *inject.StepError
		require.ErrorAs(t, err, &se, m.name)
		assert.Equal(t, "slow", se.Step, m.name)
		assert.ErrorIs(t, err, context.Canceled, m.name)
	}
}

// TestRunCancelKeepsExitCode: the command exits on its own while Run
// waits out the cancellation's grace period (here nothing the client sends
// reaches the server any more, neither the signal nor the close). The exit
// status that arrives is kept, beside the context's error.
func TestRunCancelKeepsExitCode(t *testing.T) {
	t.Parallel()
	b := setup(t, sshtest.Options{})
	p, err := latency.New(b.srv.Addr(), 0)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	cfg := b.config(t)
	cfg.KeepAlive = -1
	c, err := inject.Dial(context.Background(), p.Addr(), cfg)
	require.NoError(t, err)
	defer c.Close()

	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- inject.Run(ctx, c, []inject.Step{{Name: "slow", Cmd: ": >" + dir + "/started; while [ ! -e " + dir + "/go ]; do sleep 0.01; done; exit 7"}})
	}()
	require.Eventually(t, func() bool { _, err := os.Stat(dir + "/started"); return err == nil }, 20*time.Second, 5*time.Millisecond)
	// sshtest's handler sends the exit status only once it has the
	// client's EOF on stdin (real sshd does not wait for it), which Run
	// sends right after the command starts but the script, whose step
	// reads /dev/null, does not wait for: give it time to arrive before
	// the link is held.
	time.Sleep(300 * time.Millisecond)
	p.SetDelays(time.Hour, 0)
	cancel()
	require.NoError(t, os.WriteFile(dir+"/go", nil, 0o644))

	err = <-done
	require.ErrorIs(t, err, context.Canceled)
	var se *inject.StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 7, se.ExitCode, "the exit status that arrived in the grace period")
	var ee *ssh.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 7, ee.ExitStatus())
}

func TestPinnedHostKeys(t *testing.T) {
	t.Parallel()
	ed := sshtest.Key("ed").PublicKey()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecPub, err := ssh.NewPublicKey(&ec.PublicKey)
	require.NoError(t, err)
	lines := []string{
		"N/A", "", "# comment",
		string(ssh.MarshalAuthorizedKey(ed)), // with its trailing newline, as phone_home posts it
		strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ecPub))) + " root@server",
	}
	cb, err := inject.PinnedHostKeys(lines)
	require.NoError(t, err)
	assert.NoError(t, cb("h:22", nil, ed))
	assert.NoError(t, cb("h:22", nil, ecPub))
	err = cb("h:22", nil, sshtest.Key("other").PublicKey())
	assert.ErrorIs(t, err, inject.ErrHostKey)

	algos, err := inject.PinnedHostKeyAlgorithms(lines)
	require.NoError(t, err)
	assert.Equal(t, []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256}, algos)

	_, err = inject.PinnedHostKeys([]string{"N/A", ""})
	assert.ErrorIs(t, err, inject.ErrInvalid, "nothing to pin")
	_, err = inject.PinnedHostKeys([]string{"ssh-ed25519 not-base64"})
	assert.ErrorIs(t, err, inject.ErrInvalid)
}

// FuzzPinnedHostKeys: any lines either build a callback or fail with
// ErrInvalid; never a panic, never a callback that accepts an unlisted key.
func FuzzPinnedHostKeys(f *testing.F) {
	f.Add(sshtest.AuthorizedLine(sshtest.Key("a").PublicKey()), "N/A")
	f.Add("ssh-ed25519 AAAA", "")
	f.Add("", "# nothing")
	stranger := sshtest.Key("stranger").PublicKey()
	f.Fuzz(func(t *testing.T, a, b string) {
		cb, err := inject.PinnedHostKeys([]string{a, b})
		if err != nil {
			if !errors.Is(err, inject.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if cb("h:22", nil, stranger) == nil {
			if !strings.Contains(a+b, strings.Fields(sshtest.AuthorizedLine(stranger))[1]) {
				t.Fatal("accepted a key that was not pinned")
			}
		}
	})
}

func TestKnownHosts(t *testing.T) {
	t.Parallel()
	b := setup(t, sshtest.Options{Handler: sshtest.Script(func(string, []byte) (string, string, int) { return "", "", 0 })})
	path := filepath.Join(t.TempDir(), "known_hosts")
	require.NoError(t, os.WriteFile(path, []byte(knownhosts.Line([]string{b.srv.Addr()}, b.srv.HostKey())+"\n"), 0o600))
	cfg := b.config(t)
	var err error
	cfg.HostKeyCallback, err = inject.KnownHosts(path)
	require.NoError(t, err)
	b.dial(t, cfg)

	other := setup(t, sshtest.Options{})
	require.NoError(t, os.WriteFile(path, []byte(knownhosts.Line([]string{other.srv.Addr()}, b.srv.HostKey())+"\n"), 0o600))
	cfg = other.config(t)
	cfg.HostKeyCallback, err = inject.KnownHosts(path)
	require.NoError(t, err)
	_, err = inject.Dial(context.Background(), other.srv.Addr(), cfg)
	require.ErrorIs(t, err, inject.ErrHostKey)
	var ke *knownhosts.KeyError
	require.ErrorAs(t, err, &ke)
	assert.Len(t, ke.Want, 1, "a changed key, not an unknown host")

	_, err = inject.KnownHosts()
	assert.ErrorIs(t, err, inject.ErrInvalid)
	_, err = inject.KnownHosts(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestParsePrivateKey(t *testing.T) {
	t.Parallel()
	raw := ed25519Key(t)
	plain, err := ssh.MarshalPrivateKey(raw, "comment")
	require.NoError(t, err)
	want, err := ssh.NewSignerFromKey(raw)
	require.NoError(t, err)
	// A throwaway key from ssh-keygen -a 1 -N "correct horse": one bcrypt
	// round keeps the test fast under -race.
	enc, err := os.ReadFile("testdata/encrypted_ed25519")
	require.NoError(t, err)
	encPubLine, err := os.ReadFile("testdata/encrypted_ed25519.pub")
	require.NoError(t, err)
	encPub, _, _, _, err := ssh.ParseAuthorizedKey(encPubLine)
	require.NoError(t, err)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	require.NoError(t, err)
	pkcs8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	ecPub, err := ssh.NewPublicKey(&ec.PublicKey)
	require.NoError(t, err)

	tests := []struct {
		name       string
		key        []byte
		passphrase string
		want       ssh.PublicKey
		wantErr    error
	}{
		{"openssh", pem.EncodeToMemory(plain), "", want.PublicKey(), nil},
		{"openssh, passphrase ignored", pem.EncodeToMemory(plain), "unused", want.PublicKey(), nil},
		{"encrypted", enc, "correct horse", encPub, nil},
		{"encrypted without passphrase", enc, "", nil, inject.ErrPassphrase},
		{"pkcs8 ecdsa", pkcs8, "", ecPub, nil},
	}
	for _, tt := range tests {
		s, err := inject.ParsePrivateKey(tt.key, []byte(tt.passphrase))
		if tt.wantErr != nil {
			assert.ErrorIs(t, err, tt.wantErr, tt.name)
			continue
		}
		require.NoError(t, err, tt.name)
		assert.Equal(t, tt.want.Marshal(), s.PublicKey().Marshal(), tt.name)
	}
	_, err = inject.ParsePrivateKey(enc, []byte("wrong"))
	require.Error(t, err)
	assert.NotErrorIs(t, err, inject.ErrPassphrase)
	_, err = inject.ParsePrivateKey([]byte("not a key at all, but secret-ish text"), nil)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret-ish")
}
