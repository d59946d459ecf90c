package provider_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"

	"github.com/hatchery-dev/hatchery/provider"
)

// memProvider is a provider.Provider that keeps its servers in a map: the
// contract of a driver in a few lines. A real driver does the same
// against its cloud's API, translating the API's errors to the provider
// errors at its boundary (the cause wrapped with %w, so errors.Is finds
// both) and saying its own name, the operation and the server once:
// callers add what they know besides, not those again.
type memProvider struct {
	mu      sync.Mutex
	next    int
	servers map[string]provider.Server // by ID
}

// The compile-time check every driver carries.
var _ provider.Provider = (*memProvider)(nil)

func newMemProvider() *memProvider {
	return &memProvider{servers: make(map[string]provider.Server)}
}

// Create is idempotent by name: a server of ours by that name (one that
// carries every label of the request) is returned as it is, so that a
// create retried after a lost answer, or by another replica, makes no
// second server. A name taken by another server is ErrConflict.
func (p *memProvider) Create(ctx context.Context, req provider.CreateRequest) (provider.Server, error) {
	if err := req.Validate(); err != nil {
		return provider.Server{}, fmt.Errorf("mem: create server: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return provider.Server{}, fmt.Errorf("mem: create server %q: %w", req.Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.servers {
		if s.Name != req.Name {
			continue
		}
		for k, v := range req.Labels {
			if got, ok := s.Labels[k]; !ok || got != v {
				return provider.Server{}, fmt.Errorf("mem: create server %q: %w (server %s)", req.Name, provider.ErrConflict, s.ID)
			}
		}
		return clone(s), nil
	}
	p.next++
	s := provider.Server{
		ID:     strconv.Itoa(p.next),
		Name:   req.Name,
		IPv4:   fmt.Sprintf("192.0.2.%d", p.next), // documentation addresses: nothing is dialled here
		Status: "running",
		Labels: maps.Clone(req.Labels),
	}
	p.servers[s.ID] = s
	return clone(s), nil
}

// Get returns the server, or an error wrapping ErrNotFound.
func (p *memProvider) Get(ctx context.Context, id string) (provider.Server, error) {
	if err := ctx.Err(); err != nil {
		return provider.Server{}, fmt.Errorf("mem: get server %q: %w", id, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.servers[id]
	if !ok {
		return provider.Server{}, fmt.Errorf("mem: get server %q: %w", id, provider.ErrNotFound)
	}
	return clone(s), nil
}

// Delete deletes the server; one that does not exist counts as deleted.
func (p *memProvider) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: delete server %q: %w", id, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.servers, id)
	return nil
}

// clone copies s, so that callers cannot change the stored labels.
func clone(s provider.Server) provider.Server {
	s.Labels = maps.Clone(s.Labels)
	return s
}

// Implementing a Provider: a driver that keeps its servers in memory,
// used as Hatchery uses any driver.
func Example() {
	ctx := context.Background()
	var p provider.Provider = newMemProvider()

	req := provider.CreateRequest{
		Name:     "hatchery-tenant-1",
		UserData: []byte("#cloud-config\n"),
		Labels:   map[string]string{"hatchery.dev/tenant": "1"},
	}
	s, err := p.Create(ctx, req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.ID, s.Name, s.Addr())

	// The same request again adopts the server.
	again, _ := p.Create(ctx, req)
	fmt.Println("adopted:", again.ID == s.ID)

	// The name, for another tenant: not ours.
	other := req
	other.Labels = map[string]string{"hatchery.dev/tenant": "2"}
	_, err = p.Create(ctx, other)
	fmt.Println(errors.Is(err, provider.ErrConflict), err)

	_ = p.Delete(ctx, s.ID)
	fmt.Println("deleted twice:", p.Delete(ctx, s.ID))
	_, err = p.Get(ctx, s.ID)
	fmt.Println(errors.Is(err, provider.ErrNotFound), err)
	// Output:
	// 1 hatchery-tenant-1 192.0.2.1:22
	// adopted: true
	// true mem: create server "hatchery-tenant-1": provider: server name taken by a server that is not ours (server 1)
	// deleted twice: <nil>
	// true mem: get server "1": provider: server not found
}
