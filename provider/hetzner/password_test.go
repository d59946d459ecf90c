package hetzner_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/hetzner"
)

// TestRootPasswordDiscarded creates servers without SSH keys, for which the
// API answers with a root password, and checks that the password reaches
// nothing the driver returns, logs or keeps.
func TestRootPasswordDiscarded(t *testing.T) {
	t.Parallel()
	b := setup(t, config{})
	ctx := context.Background()
	srv, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	id := b.api.Servers()[0].ID
	pw := b.api.RootPassword(id)
	require.NotEmpty(t, pw, "the API generated a root password")

	// Every other way the driver hands out a server.
	adopted, err := b.p.Create(ctx, request("t-1"))
	require.NoError(t, err)
	got, err := b.p.Get(ctx, srv.ID)
	require.NoError(t, err)
	listed, err := b.p.List(ctx, nil)
	require.NoError(t, err)
	b.api.AddServer("t-2", nil)
	_, conflict := b.p.Create(ctx, request("t-2"))
	require.ErrorIs(t, conflict, provider.ErrConflict)

	for _, v := range []any{srv, adopted, got, listed, conflict.Error()} {
		assert.NotContains(t, fmt.Sprintf("%#v", v), pw)
	}
	assert.NotContains(t, b.log.String(), pw)
	assert.Empty(t, retained(reflect.ValueOf(b.p), pw, "p"), "the Provider keeps no copy")

	// It warns once that servers get passwords.
	assert.Equal(t, 1, strings.Count(b.log.String(), "no SSHKeys"), b.log.String())
}

// TestSSHKeysNoPassword checks that Options.SSHKeys reach the create
// request, so that Hetzner makes no root password, and that nothing warns.
func TestSSHKeysNoPassword(t *testing.T) {
	t.Parallel()
	opts := defaultOptions()
	opts.SSHKeys = []string{"control-plane"}
	b := setup(t, config{opts: opts})
	key := b.api.AddSSHKey("control-plane", "ssh-ed25519 AAAA control-plane")
	_, err := b.p.Create(context.Background(), request("t-1"))
	require.NoError(t, err)
	assert.Equal(t, []int64{key}, b.api.Created()[0].SSHKeys)
	assert.Empty(t, b.api.RootPassword(b.api.Servers()[0].ID), "no root password generated")
	assert.NotContains(t, b.log.String(), "no SSHKeys")
}

// retained walks everything reachable from v but the hcloud client (whose
// HTTP buffers are net/http's) and returns the paths of the strings and
// byte slices that contain secret.
func retained(v reflect.Value, secret, path string) []string {
	var found []string
	seen := map[[2]uintptr]bool{}
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if v.IsNil() {
				return
			}
			if v.Kind() == reflect.Pointer {
				k := [2]uintptr{v.Pointer(), uintptr(v.Type().Elem().Size())}
				if seen[k] {
					return
				}
				seen[k] = true
			}
			walk(v.Elem(), path)
		case reflect.Struct:
			for i := range v.NumField() {
				f := v.Type().Field(i)
				if v.Type() == reflect.TypeFor[hetzner.Provider]() && f.Name == "client" {
					continue
				}
				walk(v.Field(i), path+"."+f.Name)
			}
		case reflect.Slice, reflect.Array:
			if v.Type().Elem().Kind() == reflect.Uint8 {
				b := make([]byte, v.Len())
				for i := range b {
					b[i] = byte(v.Index(i).Uint())
				}
				if bytes.Contains(b, []byte(secret)) {
					found = append(found, path)
				}
				return
			}
			for i := range v.Len() {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case reflect.Map:
			it := v.MapRange()
			for it.Next() {
				walk(it.Key(), path+"{key}")
				walk(it.Value(), path+"{value}")
			}
		case reflect.String:
			if strings.Contains(v.String(), secret) {
				found = append(found, path)
			}
		}
	}
	walk(v, path)
	return found
}
