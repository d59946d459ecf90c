package callback_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/store"
)

// paramKey is where router puts the path parameter, as chi does with its
// route context.
type paramKey struct{}

// router is a stand-in for chi or gorilla: it matches
// POST prefix + "/{id}", strips the prefix and hands the ID over in the
// request's context. It answers 404 and 405 itself, as chi does.
type router struct {
	prefix string
	next   http.Handler
}

func (rt router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, rt.prefix+"/")
	if !ok || id == "" || strings.Contains(id, "/") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	r2 := r.WithContext(context.WithValue(r.Context(), paramKey{}, id))
	r2.URL.Path = "/" + id
	rt.next.ServeHTTP(w, r2)
}

// TestMount mounts the handler three ways and checks that the ID reaches
// it, the token from URL works and a bad token is refused.
func TestMount(t *testing.T) {
	t.Parallel()
	const prefix = "/api/provision/callback"
	mounts := []struct {
		name  string
		mount func(h *callback.Handler) http.Handler
	}{
		{"ServeMux pattern", func(h *callback.Handler) http.Handler {
			h.IDFunc = func(r *http.Request) string { return r.PathValue("id") }
			mux := http.NewServeMux()
			mux.Handle("POST "+prefix+"/{id}", h)
			return mux
		}},
		{"StripPrefix", func(h *callback.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle(prefix+"/", http.StripPrefix(prefix, h))
			return mux
		}},
		{"chi-like router", func(h *callback.Handler) http.Handler {
			h.IDFunc = func(r *http.Request) string { id, _ := r.Context().Value(paramKey{}).(string); return id }
			return router{prefix: prefix, next: h}
		}},
	}
	for _, m := range mounts {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, store.Record{ID: tenant, Status: store.StatusCloudInit})
			srv := m.mount(b.h)
			u := b.h.URL("http://cp.test"+prefix, tenant)

			w := serve(srv, request(http.MethodGet, u, "", ""))
			assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
			assert.Equal(t, "POST", w.Header().Get("Allow"))

			bad := strings.Replace(u, "?token=", "?token=0", 1)
			assert.Equal(t, http.StatusUnauthorized, serve(srv, request(http.MethodPost, bad, formCT, goodForm)).Code)
			wrongID := strings.Replace(u, tenant, other, 1)
			assert.Equal(t, http.StatusUnauthorized, serve(srv, request(http.MethodPost, wrongID, formCT, goodForm)).Code)
			assert.Equal(t, http.StatusNotFound, serve(srv, request(http.MethodPost, "http://cp.test/elsewhere/"+tenant, formCT, goodForm)).Code)

			w = serve(srv, request(http.MethodPost, u, formCT, goodForm))
			assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
			assert.Equal(t, tenant, b.waitReady(t).ID)
			assert.Equal(t, store.StatusInjectingSecrets, b.get(t, tenant).Status)
			assert.Equal(t, http.StatusOK, serve(srv, request(http.MethodPost, u, formCT, goodForm)).Code)
			b.noReady(t)
		})
	}
}
