// Package provider defines how Hatchery talks to a cloud: the Provider
// interface that creates, inspects and deletes servers, and the errors
// drivers translate their API's failures to.
//
// Drivers: provider/hetzner (Hetzner Cloud through hcloud-go/v2),
// provider/digitalocean (DigitalOcean through godo), provider/nspawn (real
// Debian servers on the local machine, systemd-nspawn) and provider/fake
// (simulated servers in-process, for tests and the quickstart). Each runs
// provider/providertest, the conformance suite.
//
// # Optional abilities
//
// The Provider interface stays small; what only some drivers can do comes
// as an optional interface, found by a type assertion, as database/sql/driver
// does: [Lister] (servers by label, for drift checks and orphan sweeps),
// [CredentialChecker] (fail fast on a bad token), [InstanceIDer] (the
// instance ID cloud-init reports, to bind a phone_home to its server) and
// [UserDataLimiter] (the provider's own user-data size limit).
package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Provider creates, inspects and deletes servers. Implementations are safe
// for concurrent use. Their errors name the driver, the operation and the
// server once, as os.PathError does (`hetzner: create server "x": ...`),
// so that callers add only what the driver cannot know.
type Provider interface {
	// Create creates a server and returns it as soon as the provider has
	// accepted it; readiness comes later, from cloud-init's phone_home.
	// The server may have no address yet (a DigitalOcean droplet has none
	// until it is active): Get reports it once the provider knows it.
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

	// ServerType, Location and Image choose the server, in the driver's own
	// names (Hetzner: "cx22", "fsn1", "debian-12"); empty means the
	// driver's default, usually set in its Options.
	ServerType string
	Location   string
	Image      string
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
	// ServerType and Location are where the server ended up, in the
	// driver's own names; empty when the driver cannot tell.
	ServerType string
	Location   string
	// Created is when the provider created the server; zero when the
	// driver cannot tell.
	Created time.Time
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
	// ErrUnauthorized means the provider refused the credentials (a
	// missing, revoked or read-only token). It is final: retrying with the
	// same credentials cannot succeed.
	ErrUnauthorized = errors.New("provider: credentials refused")
)

// Lister is implemented by providers that can list their servers by label
// in a few API calls, whatever their number.
type Lister interface {
	// List returns the servers created by this driver that carry every
	// label of selector (every server of the driver when selector is
	// empty). Servers the driver did not create are never returned.
	List(ctx context.Context, selector map[string]string) ([]Server, error)
}

// CredentialChecker is implemented by providers that can check their
// credentials with one cheap call.
type CredentialChecker interface {
	// CheckCredentials returns nil when the provider accepts the
	// credentials, an error wrapping ErrUnauthorized when it refuses them,
	// and another error when it could not tell.
	CheckCredentials(ctx context.Context) error
}

// InstanceIDer is implemented by providers that know the instance ID
// cloud-init reports on their servers (its datasource's instance ID), so
// that a phone_home can be bound to the server it came from.
type InstanceIDer interface {
	// InstanceID returns the instance ID cloud-init reports on the server
	// with the given provider ID.
	InstanceID(serverID string) string
}

// UserDataLimiter is implemented by providers whose API limits the size of
// cloud-init user-data.
type UserDataLimiter interface {
	// MaxUserData returns the largest user-data the provider accepts, in
	// bytes.
	MaxUserData() int
}
