package provider_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/hatchery-dev/hatchery/provider"
)

func TestCreateRequestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ok   bool
	}{
		{"hatchery-0b5e6c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b", true},
		{"a", true},
		{"a1-b2", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"-a", false},
		{"a-", false},
		{"A", false},
		{"a_b", false},
		{"a.b", false},
		{"a b", false},
		{"a\nb", false},
		{"é", false},
	}
	for _, tt := range tests {
		err := provider.CreateRequest{Name: tt.name}.Validate()
		if tt.ok {
			assert.NoError(t, err, "%q", tt.name)
		} else {
			assert.ErrorIs(t, err, provider.ErrInvalid, "%q", tt.name)
		}
	}
}

func TestServerAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    provider.Server
		want string
	}{
		{provider.Server{SSHAddr: "127.0.0.1:2222", IPv4: "203.0.113.7"}, "127.0.0.1:2222"},
		{provider.Server{IPv4: "203.0.113.7", IPv6: "2001:db8::1"}, "203.0.113.7:22"},
		{provider.Server{IPv6: "2001:db8::1"}, "[2001:db8::1]:22"},
		{provider.Server{}, ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.s.Addr())
	}
}
