package latency_test

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/internal/latency"
	"github.com/stretchr/testify/require"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestForwardsAndDelays(t *testing.T) {
	t.Parallel()
	const delay = 20 * time.Millisecond
	p, err := latency.New(echoServer(t), delay)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })

	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	start := time.Now()
	for range 3 {
		_, err = c.Write([]byte("ping\n"))
		require.NoError(t, err)
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "ping\n", line)
	}
	// Three round trips cannot be faster than 3*2*delay.
	require.GreaterOrEqual(t, time.Since(start), 6*delay)
	require.Equal(t, 1, p.Accepted())
}

func TestCutAfter(t *testing.T) {
	t.Parallel()
	p, err := latency.New(echoServer(t), 0)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	p.CutAfter(10)

	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("0123456789abcdef"))
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	require.NoError(t, err, "the cut closes the connection: EOF, not a timeout")
	require.Empty(t, got, "the chunk that crossed the limit is never delivered")
}

func TestCutAndClose(t *testing.T) {
	t.Parallel()
	p, err := latency.New(echoServer(t), time.Millisecond)
	require.NoError(t, err)
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	buf := make([]byte, 1)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)

	p.Cut()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(buf)
	require.ErrorIs(t, err, io.EOF)
	require.NoError(t, p.Close())
	_, err = net.Dial("tcp", p.Addr())
	require.Error(t, err, "closed proxy no longer listens")
}

// TestSetDelays holds what the client sends while what the server sends
// still flows.
func TestSetDelays(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "hello\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
	}()
	p, err := latency.New(ln.Addr().String(), 0)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	p.SetDelays(time.Hour, 0)

	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("ping\n"))
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "hello\n", line, "server to client is not delayed")
	select {
	case l := <-got:
		t.Fatalf("the server got %q: client to server is not held", l)
	case <-time.After(100 * time.Millisecond):
	}
}
