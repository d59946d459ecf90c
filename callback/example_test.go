package callback_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

// Mount the handler in a ServeMux, put URL into the server's cloud-config
// (phone_home: {url: ..., post: all}), and start the injection from OnReady.
func Example() {
	ctx := context.Background()
	st := memory.New()
	id := "4b3f1c2e-8d1a-4c5b-9e2f-0a1b2c3d4e5f"
	_ = st.Create(ctx, store.Record{ID: id, Status: store.StatusCloudInit})

	ready := make(chan store.Record, 1)
	h := &callback.Handler{
		Store:  st,
		Key:    []byte("example key: use 32 random bytes"),
		IDFunc: func(r *http.Request) string { return r.PathValue("id") },
		OnReady: func(ctx context.Context, r store.Record) {
			ready <- r // e.g. inject the tenant's secrets over SSH, pinned to r.HostKeys
		},
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/provision/callback/{id}", h)

	phoneHomeURL := h.URL("https://cp.example.com/api/provision/callback", id)
	fmt.Println(phoneHomeURL)

	// What cloud-init posts once the server has booted.
	body := url.Values{
		"pub_key_dsa":     {"N/A"},
		"pub_key_ed25519": {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO8OAwe6RMyFXnzHx8bVdo55w1mGeWHQMBItKIJqRJTU root@tenant-a\n"},
		"instance_id":     {"12345678"},
		"hostname":        {"tenant-a"},
	}.Encode()
	req := httptest.NewRequest("POST", phoneHomeURL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	fmt.Println(w.Code)

	r := <-ready
	fmt.Println(r.Status, r.Hostname, r.InstanceID)
	fmt.Println(r.HostKeys[0])
	// Output:
	// https://cp.example.com/api/provision/callback/4b3f1c2e-8d1a-4c5b-9e2f-0a1b2c3d4e5f?token=6c0e21484ef93e2e656a95590389a70588481580214662a603cce52773624057
	// 200
	// injecting_secrets tenant-a 12345678
	// ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO8OAwe6RMyFXnzHx8bVdo55w1mGeWHQMBItKIJqRJTU
}

// A Handler behind http.StripPrefix needs no IDFunc: the tenant ID is the
// last segment of the path.
func ExampleHandler_URL() {
	h := &callback.Handler{Store: memory.New(), Key: []byte("example key: use 32 random bytes")}
	mux := http.NewServeMux()
	mux.Handle("/hooks/phone-home/", http.StripPrefix("/hooks/phone-home", h))

	fmt.Println(h.URL("http://127.0.0.1:8080/hooks/phone-home/", "0f0e0d0c-0b0a-4999-8888-777766665555"))
	// Output:
	// http://127.0.0.1:8080/hooks/phone-home/0f0e0d0c-0b0a-4999-8888-777766665555?token=eae43d0d5446cb30d5f62f941f067ce3f5a4003aee701eca077160416e07bccc
}

// Bind each server's URL to it: a new CallbackNonce per server created,
// stored on the record before the server's user-data is rendered. The
// token of an earlier server of the tenant is refused once the record
// carries the next nonce; the reporting webhook's endpoint is the same URL
// with event=1.
func ExampleHandler_AttemptURL() {
	ctx := context.Background()
	st := memory.New()
	id := "4b3f1c2e-8d1a-4c5b-9e2f-0a1b2c3d4e5f"
	h := &callback.Handler{Store: st, Key: []byte("example key: use 32 random bytes")}
	base := "https://cp.example.com/api/provision/callback"

	const first, second = "00000000000000000000000000000001", "00000000000000000000000000000002" // callback.NewNonce() in real use
	_ = st.Create(ctx, store.Record{ID: id, Status: store.StatusCloudInit, CallbackNonce: second})
	earlier := h.AttemptURL(base, id, first)
	current := h.AttemptURL(base, id, second)
	fmt.Println(current)
	fmt.Println(h.EventsURL(base, id, second))

	post := func(u string) int {
		body := "pub_key_ed25519=" + url.QueryEscape("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO8OAwe6RMyFXnzHx8bVdo55w1mGeWHQMBItKIJqRJTU\n")
		req := httptest.NewRequest("POST", u, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	fmt.Println("earlier server:", post(earlier))
	fmt.Println("current server:", post(current))
	// Output:
	// https://cp.example.com/api/provision/callback/4b3f1c2e-8d1a-4c5b-9e2f-0a1b2c3d4e5f?token=00000000000000000000000000000002.ef55a77ddab27e2533cb24092841773be0ccf1c24ffec3007d463aa548a27c45
	// https://cp.example.com/api/provision/callback/4b3f1c2e-8d1a-4c5b-9e2f-0a1b2c3d4e5f?token=00000000000000000000000000000002.ef55a77ddab27e2533cb24092841773be0ccf1c24ffec3007d463aa548a27c45&event=1
	// earlier server: 401
	// current server: 200
}
