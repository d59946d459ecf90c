package fake_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
)

// TestNoGoroutineOutlivesClose is not parallel: it counts goroutines.
// Servers are stopped in every state they can be in: phone_home waiting
// on a callback that never answers, phone_home sleeping between tries,
// a command running, a session whose client never closes stdin.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	before := runtime.NumGoroutine()

	hang := make(chan struct{})
	arrived := make(chan string, 10)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		switch r.URL.Path {
		case "/hang":
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		case "/retry":
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	p := fake.New(fake.Options{Dir: t.TempDir(), PhoneHomeInterval: time.Hour})
	k := newKey(t)
	create := func(name, path string) *fake.Server {
		ps, err := p.Create(context.Background(), provider.CreateRequest{Name: name, UserData: userData(doc{URL: cb.URL + path, Key: k.line})})
		require.NoError(t, err)
		s, ok := p.Server(ps.ID)
		require.True(t, ok)
		return s
	}
	hanging := create("hanging", "/hang")
	create("retrying", "/retry")
	busy := create("busy", "/ok")
	for range 3 {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("phone_home did not arrive")
		}
	}

	c := dial(t, busy, "rachel", k)
	go func() { _, _ = runErr(c, "touch /home/rachel/started; sleep 60", "") }()
	sess, err := c.NewSession()
	require.NoError(t, err)
	_, err = sess.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, sess.Start("cat > /dev/null"))
	require.Eventually(t, func() bool {
		_, err := os.Stat(busy.Path("/home/rachel/started"))
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)

	holder := fake.HolderPID(busy) // 0 where there is no namespace
	base := fake.BaseHolderPID(p)

	start := time.Now()
	require.NoError(t, p.Delete(context.Background(), hanging.ID()))
	assert.Less(t, time.Since(start), 5*time.Second, "Delete does not wait for a hanging phone_home")
	start = time.Now()
	require.NoError(t, p.Close())
	assert.Less(t, time.Since(start), 5*time.Second, "Close does not wait for commands or tries")

	if holder != 0 {
		assert.True(t, gone(holder), "the namespace holder outlived Close")
		assert.True(t, gone(base), "the base namespace holder outlived Close")
	}
	_ = c.Close()
	close(hang)
	cb.Close()

	var stacks string
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if runtime.NumGoroutine() <= before && !ours(stacks) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after Close:\n%s", before, runtime.NumGoroutine(), stacks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ours reports whether a goroutine other than a test's runs code of the
// package.
func ours(stacks string) bool {
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "hatchery/provider/fake.") && !strings.Contains(g, "testing.tRunner") {
			return true
		}
	}
	return false
}
