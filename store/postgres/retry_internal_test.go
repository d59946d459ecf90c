package postgres

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type safeErr struct{ safe bool }

func (e safeErr) Error() string     { return "write failed" }
func (e safeErr) SafeToRetry() bool { return e.safe }

func TestRetryable(t *testing.T) {
	t.Parallel()
	done, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name             string
		ctx              context.Context
		err              error
		closed, readOnly bool
		want             bool
	}{
		{"never sent", t.Context(), safeErr{true}, true, false, true},
		{"never sent, wrapped", t.Context(), errors.Join(errors.New("batch"), safeErr{true}), false, false, true},
		{"sent, write", t.Context(), safeErr{false}, true, false, false},
		{"sent, read on a broken connection", t.Context(), safeErr{false}, true, true, true},
		{"read, connection fine", t.Context(), errors.New("syntax error"), false, true, false},
		{"context ended", done, safeErr{true}, true, true, false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, retryable(tt.ctx, tt.err, tt.closed, tt.readOnly), tt.name)
	}
}

// TestStale checks the idle-connection probe on a real TCP connection on
// the loopback: idle is fine; data waiting, or the peer gone, is stale.
func TestStale(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	pair := func() (client, server net.Conn) {
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c
		}()
		client, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		server = <-accepted
		require.NotNil(t, server)
		t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
		return client, server
	}

	c, srv := pair()
	require.False(t, stale(c), "an idle connection")
	_, err = srv.Write([]byte("E"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return stale(c) }, 5*time.Second, time.Millisecond, "a message waiting")
	b := make([]byte, 1)
	_, err = c.Read(b)
	require.NoError(t, err, "the probe consumed nothing")
	require.Equal(t, "E", string(b))
	require.False(t, stale(c))

	c, srv = pair()
	require.NoError(t, srv.Close())
	require.Eventually(t, func() bool { return stale(c) }, 5*time.Second, time.Millisecond, "closed by the peer")

	require.False(t, stale(struct{ net.Conn }{c}), "a connection it cannot inspect")
}
