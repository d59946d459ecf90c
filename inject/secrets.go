package inject

import (
	"context"
	"fmt"
	"maps"
)

// SecretSource gives the secrets of a tenant, by name. Implementations
// return an error wrapping ErrNoSecrets for a tenant they know nothing of.
type SecretSource interface {
	Secrets(ctx context.Context, id string) (map[string]string, error)
}

// StaticSecrets is a SecretSource held in memory: tenant ID -> secret name
// -> value. For tests and examples.
type StaticSecrets map[string]map[string]string

var _ SecretSource = StaticSecrets(nil)

// Secrets returns a copy of the tenant's secrets, or an error wrapping
// ErrNoSecrets.
func (s StaticSecrets) Secrets(ctx context.Context, id string) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, ok := s[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoSecrets, id)
	}
	return maps.Clone(m), nil
}
