package provision_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// Behind the bastion: the servers' SSH addresses are on 127.0.0.9, where
// nothing listens; the bastion reaches them on 127.0.0.1.
const hiddenHost = "127.0.0.9"

// bastion is an SSH jump host that forwards direct-tcpip channels for
// hiddenHost to 127.0.0.1, and records where they went.
type bastion struct {
	addr    string
	hostKey ssh.PublicKey
	mu      sync.Mutex
	dests   []string
	users   []string
}

func (b *bastion) forwarded() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dests...)
}

func (b *bastion) loggedIn() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.users...)
}

func startBastion(t *testing.T, authorized ...ssh.PublicKey) *bastion {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hostKey := newSigner(t)
	b := &bastion{addr: ln.Addr().String(), hostKey: hostKey.PublicKey()}
	srv := &gliderssh.Server{
		HostSigners: []gliderssh.Signer{hostKey},
		PublicKeyHandler: func(_ gliderssh.Context, key gliderssh.PublicKey) bool {
			for _, k := range authorized {
				if gliderssh.KeysEqual(k, key) {
					return true
				}
			}
			return false
		},
		ChannelHandlers: map[string]gliderssh.ChannelHandler{
			"direct-tcpip": func(_ *gliderssh.Server, conn *ssh.ServerConn, nc ssh.NewChannel, _ gliderssh.Context) {
				var d struct {
					DestAddr   string
					DestPort   uint32
					OriginAddr string
					OriginPort uint32
				}
				if err := ssh.Unmarshal(nc.ExtraData(), &d); err != nil || d.DestAddr != hiddenHost {
					_ = nc.Reject(ssh.Prohibited, "not behind this bastion")
					return
				}
				b.mu.Lock()
				b.dests = append(b.dests, net.JoinHostPort(d.DestAddr, strconv.Itoa(int(d.DestPort))))
				b.users = append(b.users, conn.User())
				b.mu.Unlock()
				var dialer net.Dialer
				dst, err := dialer.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(d.DestPort))))
				if err != nil {
					_ = nc.Reject(ssh.ConnectionFailed, err.Error())
					return
				}
				ch, reqs, err := nc.Accept()
				if err != nil {
					dst.Close()
					return
				}
				go ssh.DiscardRequests(reqs)
				go func() { _, _ = io.Copy(ch, dst); ch.Close() }()
				_, _ = io.Copy(dst, ch)
				dst.Close()
			},
		},
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return b
}

// hiddenProvider reports its servers' SSH addresses on hiddenHost.
type hiddenProvider struct{ provider.Provider }

func hide(srv provider.Server) provider.Server {
	if _, port, err := net.SplitHostPort(srv.SSHAddr); err == nil {
		srv.SSHAddr = net.JoinHostPort(hiddenHost, port)
	}
	return srv
}

func (h hiddenProvider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	srv, err := h.Provider.Create(ctx, req)
	return hide(srv), err
}

func (h hiddenProvider) Get(ctx context.Context, id string) (provider.Server, error) {
	srv, err := h.Provider.Get(ctx, id)
	return hide(srv), err
}

// startAgent serves an SSH agent holding key on a Unix socket.
func startAgent(t *testing.T) (sock string, key ssh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	kr := agent.NewKeyring()
	require.NoError(t, kr.Add(agent.AddedKey{PrivateKey: priv}))
	sock = filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _ = agent.ServeAgent(kr, c) }()
		}
	}()
	return sock, signer.PublicKey()
}

// A control plane behind a bastion: every SSH connection to a tenant's
// server goes through Config.SSHJump, authenticated with Config.Signer or
// with an SSH agent's key. A bastion whose host key is not the pinned one
// fails the attempt for good, without blaming the tenant's server (its pin
// is kept, the server too).
func TestJumpHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		agent     bool
		wrongKey  bool
		wantReady bool
	}{
		{name: "signer", wantReady: true},
		{name: "agent", agent: true, wantReady: true},
		{name: "bastion's host key refused", wrongKey: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bundleOpts{})
			cfg := b.config("r1", nil)
			cfg.Provider = hiddenProvider{b.cloud}
			cfg.MaxAttempts = 1
			jump := &provision.JumpHost{User: "operator"}
			var bs *bastion
			if tt.agent {
				sock, key := startAgent(t)
				bs = startBastion(t, key)
				cfg.SSHAgentSocket = sock
				jump.Agent = true
			} else {
				bs = startBastion(t, b.signer.PublicKey())
			}
			jump.Addr = bs.addr
			jump.HostKeyCallback = ssh.FixedHostKey(bs.hostKey)
			if tt.wrongKey {
				jump.HostKeyCallback = ssh.FixedHostKey(newSigner(t).PublicKey())
			}
			cfg.SSHJump = jump
			p := b.replica(cfg)
			id := newID()
			require.NoError(t, p.Provision(context.Background(), id))
			r, err := p.Wait(ctxTimeout(t, 30*time.Second), id)
			require.NoError(t, err)
			srv := b.server(id)
			if tt.wantReady {
				require.Equal(t, store.StatusReady, r.Status, r.Error)
				assert.Equal(t, 1, injections(srv))
				_, port, _ := net.SplitHostPort(srv.Addr())
				assert.Equal(t, []string{net.JoinHostPort(hiddenHost, port)}, bs.forwarded(), "one connection, through the bastion")
				assert.Equal(t, []string{"operator"}, bs.loggedIn())
				return
			}
			require.Equal(t, store.StatusFailed, r.Status)
			assert.True(t, strings.HasPrefix(r.Error, "final: inject: ssh jump host "), r.Error)
			assert.NotEmpty(t, r.HostKeys, "the tenant's pin is not blamed")
			assert.Empty(t, srv.Commands())
			assert.Empty(t, bs.forwarded())
			assert.Equal(t, 1, b.cloud.distinctServers(provision.DefaultServerName(id)))
		})
	}
}
