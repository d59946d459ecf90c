package hetzner_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/hatchery-dev/hatchery/internal/hcloudtest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/hetzner"
)

// Example creates, adopts, inspects and deletes a server against the fake
// Hetzner Cloud API (no network). With a real account, drop
// hcloud.WithEndpoint and pass the project's API token.
func Example() {
	api := hcloudtest.New(hcloudtest.Options{RateLimit: 3600})
	defer api.Close()
	api.AddSSHKey("ops", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@example")

	client := hetzner.NewClient("token", hcloud.WithEndpoint(api.URL()))
	p := hetzner.New(client, hetzner.Options{
		ServerType: "cx22",
		Image:      "ubuntu-24.04",
		Location:   "fsn1",
		SSHKeys:    []string{"ops"},
		Labels:     map[string]string{"app": "rachel8"},
	})
	ctx := context.Background()
	if err := p.Init(ctx); err != nil { // resolves "ops" to its ID
		fmt.Println(err)
		return
	}

	req := provider.CreateRequest{
		Name:     "tenant-0001",
		UserData: []byte("#cloud-config\nhostname: tenant-0001\n"),
		Labels:   map[string]string{"hatchery.dev/tenant": "0001"},
	}
	srv, err := p.Create(ctx, req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(srv.ID, srv.Name, srv.Status, srv.Addr())
	fmt.Println("IPv6:", srv.IPv6, "managed:", srv.Labels[hetzner.ManagedLabel])

	// Creating the same name again adopts the server instead of failing.
	again, _ := p.Create(ctx, req)
	fmt.Println("adopted:", again.ID == srv.ID)

	// A name taken by a server that is not ours is a conflict.
	api.AddServer("tenant-0002", nil)
	req.Name = "tenant-0002"
	_, err = p.Create(ctx, req)
	fmt.Println("conflict:", errors.Is(err, provider.ErrConflict))

	fmt.Println("delete:", p.Delete(ctx, srv.ID))
	_, err = p.Get(ctx, srv.ID)
	fmt.Println("gone:", errors.Is(err, provider.ErrNotFound))
	fmt.Println("POST /servers:", api.Count("POST", "/servers"), "requests:", api.Count("", ""))
	// Output:
	// 1000002 tenant-0001 initializing 203.0.113.3:22
	// IPv6: 2001:db8:2::1 managed: true
	// adopted: true
	// conflict: true
	// delete: <nil>
	// gone: true
	// POST /servers: 3 requests: 8
}

// ExampleProvider_List checks the token, then lists one control plane's
// servers: Hetzner filters them by label, 50 to a request, and servers of
// others in the project are never listed.
func ExampleProvider_List() {
	api := hcloudtest.New(hcloudtest.Options{})
	defer api.Close()
	api.AddServers("prod", 120, map[string]string{hetzner.ManagedLabel: "true", "hatchery.dev/plane": "prod"})
	api.AddServers("staging", 30, map[string]string{hetzner.ManagedLabel: "true", "hatchery.dev/plane": "staging"})
	api.AddServer("by-hand", map[string]string{"hatchery.dev/plane": "prod"})

	client := hetzner.NewClient("token", hcloud.WithEndpoint(api.URL()))
	p := hetzner.New(client, hetzner.Options{ServerType: "cx22", Image: "debian-12"})
	ctx := context.Background()
	if err := p.CheckCredentials(ctx); err != nil {
		fmt.Println(err) // wraps provider.ErrUnauthorized for a bad token
		return
	}
	servers, err := p.List(ctx, map[string]string{"hatchery.dev/plane": "prod"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(servers), "servers, first:", servers[0].Name, servers[0].Location, servers[0].ServerType)
	fmt.Println("requests:", api.Count("", ""))
	// Output:
	// 120 servers, first: prod-0 fsn1 cx22
	// requests: 4
}
