// Package provider defines how Hatchery talks to a cloud: the Provider
// interface that creates, inspects and deletes servers, and the errors
// drivers translate their API's failures to.
//
// Drivers: provider/hetzner (Hetzner Cloud through hcloud-go/v2) and
// provider/fake (simulated servers in-process, for tests and the quickstart).
package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Provider creates, inspects and deletes servers. Implementations are safe
// for concurrent use.
type Provider interface {
	// Create creates a server and returns it as soon as the provider has
	// accepted it; readiness comes later, from cloud-init's phone_home.
	// Creating a name that already belongs to a server of ours adopts it;
	// a name taken by a server that is not ours is an error wrapping
	// ErrConflict.
	Create(ctx context.Context, req CreateRequest) (Server, error)
	// Get returns the server with the given ID, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (Server, error)
	// Delete deletes the server. Deleting a server that does not exist succeeds.
	Delete(ctx context.Context, id string) error
}

// CreateRequest describes a server to create.
type CreateRequest struct {
	Name     string            // unique per provider account; a valid hostname
	UserData []byte            // cloud-init user-data; holds no secret
	Labels   map[string]string // extra labels; drivers add their own marker
}

// Validate checks the request before any API call.
func (r CreateRequest) Validate() error {
	if r.Name == "" {
		return fmt.Errorf("%w: empty server name", ErrInvalid)
	}
	if len(r.Name) > 63 {
		return fmt.Errorf("%w: server name longer than 63 bytes", ErrInvalid)
	}
	for i, c := range r.Name {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(r.Name)-1
		if !ok {
			return fmt.Errorf("%w: server name %q is not a lowercase hostname label", ErrInvalid, r.Name)
		}
	}
	return nil
}

// Server is a server as the provider reports it.
type Server struct {
	ID     string
	Name   string
	IPv4   string
	IPv6   string
	Status string // the provider's own word: "initializing", "running", "off", ...
	Labels map[string]string
	// SSHAddr is where to reach the server's SSH daemon, host:port. Empty
	// means IPv4 on port 22 (see Addr).
	SSHAddr string
}

// Addr returns where to reach the server's SSH daemon: SSHAddr when set,
// else IPv4 on port 22, else IPv6 on port 22, else "".
func (s Server) Addr() string {
	switch {
	case s.SSHAddr != "":
		return s.SSHAddr
	case s.IPv4 != "":
		return net.JoinHostPort(s.IPv4, "22")
	case s.IPv6 != "":
		return net.JoinHostPort(s.IPv6, "22")
	}
	return ""
}

// Errors drivers return, wrapping their API's cause with %w.
var (
	ErrNotFound    = errors.New("provider: server not found")
	ErrQuota       = errors.New("provider: account limit reached")
	ErrUnavailable = errors.New("provider: no capacity for this server type in this location")
	ErrRateLimited = errors.New("provider: rate limited")
	ErrConflict    = errors.New("provider: server name taken by a server that is not ours")
	ErrInvalid     = errors.New("provider: invalid request")
)
