package inject_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/opensshd"
	"github.com/hatchery-dev/hatchery/internal/sshtest"
)

// Over SSH, a pipelined Run reports each step as its markers arrive, not
// when the whole script has ended: a long list shows where it is.
func TestEventsArriveLive(t *testing.T) {
	t.Parallel()
	key := sshtest.NewKey(t)
	srv := opensshd.Start(t, opensshd.Options{AuthorizedKeys: []ssh.PublicKey{key.PublicKey()}})
	pinned, err := inject.PinnedHostKeys([]string{srv.HostKeyLine()})
	require.NoError(t, err)
	ctx := t.Context()
	c, err := inject.Dial(ctx, srv.Addr, inject.SSHConfig{User: srv.User, Signer: key, HostKeyCallback: pinned})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	var mu sync.Mutex
	at := map[string]time.Time{}
	var order []string
	steps := []inject.Step{{Name: "quick", Cmd: "true"}, {Name: "slow", Cmd: "sleep 2"}}
	err = inject.Run(ctx, c, steps, inject.WithEvents(func(e inject.Event) {
		mu.Lock()
		defer mu.Unlock()
		k := e.Step + map[bool]string{false: " started", true: " done"}[e.Done]
		at[k] = time.Now()
		order = append(order, k)
	}))
	end := time.Now()
	require.NoError(t, err)
	assert.Equal(t, []string{"quick started", "quick done", "slow started", "slow done"}, order, "each once, in order")
	assert.Greater(t, end.Sub(at["quick done"]), time.Second, "the first step was reported while the second ran")
	assert.Less(t, end.Sub(at["slow done"]), time.Second)
}
