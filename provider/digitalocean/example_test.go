package digitalocean_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/digitalocean/godo"

	"github.com/hatchery-dev/hatchery/internal/dotest"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/digitalocean"
)

// Example creates, adopts, inspects, lists and deletes a droplet against
// the fake DigitalOcean API (no network). With a real account, drop
// godo.SetBaseURL and pass the token.
func Example() {
	api := dotest.New(dotest.Options{RateLimit: 5000})
	defer api.Close()
	api.AddSSHKey("ops", "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa")

	client, err := digitalocean.NewClient("token", godo.SetBaseURL(api.URL()))
	if err != nil {
		fmt.Println(err)
		return
	}
	p := digitalocean.New(client, digitalocean.Options{
		Size:    "s-1vcpu-2gb",
		Image:   "ubuntu-24-04-x64",
		Region:  "fra1",
		SSHKeys: []string{"3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"},
		Labels:  map[string]string{"app": "rachel8"},
	})
	ctx := context.Background()
	if err := p.Init(ctx); err != nil { // checks the token and the key
		fmt.Println(err)
		return
	}

	req := provider.CreateRequest{
		Name:     "tenant-0001",
		UserData: []byte("#cloud-config\nhostname: tenant-0001\n"),
		Labels:   map[string]string{"hatchery-tenant": "0001"},
	}
	srv, err := p.Create(ctx, req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %s %s address=%q\n", srv.ID, srv.Name, srv.Status, srv.Addr())

	// The address comes with Get, once the droplet is active.
	srv, _ = p.Get(ctx, srv.ID)
	fmt.Println(srv.Status, srv.Addr(), "tenant:", srv.Labels["hatchery-tenant"])

	// Creating the same name again adopts the droplet.
	again, _ := p.Create(ctx, req)
	fmt.Println("adopted:", again.ID == srv.ID)

	// A name taken by a droplet that is not ours is a conflict.
	api.AddDroplet("tenant-0002")
	req.Name = "tenant-0002"
	_, err = p.Create(ctx, req)
	fmt.Println("conflict:", errors.Is(err, provider.ErrConflict))

	servers, _ := p.List(ctx, map[string]string{"hatchery-tenant": "0001"})
	fmt.Println("listed:", len(servers))

	fmt.Println("delete:", p.Delete(ctx, srv.ID))
	_, err = p.Get(ctx, srv.ID)
	fmt.Println("gone:", errors.Is(err, provider.ErrNotFound))
	fmt.Println("POST /v2/droplets:", api.Count(http.MethodPost, "/v2/droplets"), "requests:", api.Count("", ""))
	// Output:
	// 3000001 tenant-0001 new address=""
	// active 127.0.1.2:22 tenant: 0001
	// adopted: true
	// conflict: true
	// listed: 1
	// delete: <nil>
	// gone: true
	// POST /v2/droplets: 1 requests: 10
}
