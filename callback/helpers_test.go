package callback_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/store"
	"github.com/hatchery-dev/hatchery/store/memory"
)

const (
	tenant = "4b3f1c2e-8d1a-4c5b-9e2f-0a1b2c3d4e5f"
	other  = "0f0e0d0c-0b0a-4999-8888-777766665555"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// Public host keys as ssh-keygen writes them (.pub files, comment and
// trailing newline included), and their normalized form.
const (
	pubRSA     = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC6qh0rwEkRj/NsdSwWDdb5pzvPnjlEewvpGdhNpN2uuP39JTqJpDmzmaWJhmRERP1XfeGr1FaV1cLJmKDUMl/sZf/hiLu08l4mjUSrviX6FTPfa8L2qND/I6rNRgyNXF4O4UwHHjBjvcCHvdEpOykJeXoHM1UH2n8Hi5luTvbdXvxeaAwG/vsO/9xREofAnfBTiX8WzV8Z9+c5RFROg/7XiEOZ3OdO7kSUIPprMCO/6uS+aCAayxqRwyQV/Mk7hkCIQvtyOswoSyfXvDJtjPpcn7L7FrK0H5M/tUfb0jl06hHYDb9HxpG13JDxt0ploAS0YJ7+UGjm9AdUr+kGrU/41ZRR0mhaPBX90zoogs5Y4EBPGvgbM5ZvDWyqkTdaLEPOHCwP3/5I7bWwwLjfKNaAXK9YAmUChEHO3MMY0X5H3YsfAhKJR8/oyvk0+pIR1BQifUGzhSiW66rbJR7y16MLsPxhJIyIPOneqoQHoSmcjOMX8iqRCIBGylqdbZtT8H8= root@tenant-a\n"
	pubECDSA   = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCMq+sRCf8eVVUrkXkcmNrwVmvIJM7fYB58XnmH/LcmOHGIzTDcNgPxCMIKxmWG57dbSqOHpHzBa3meQy5M5vW4= root@tenant-a\n"
	pubECDSA3  = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBDsU1+4HwFAWZjScbcff3YsrlgO4PG9YGbUOEHInK7+6n7E2bWsIbGwbbUQtv7OdwF6ouTYVM6xjwt3Jonpb2kor8/6A+14/fw2/iZ2PZ0E9q8Z4ipqMT4wief38UQeelw== x\n"
	pubED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO8OAwe6RMyFXnzHx8bVdo55w1mGeWHQMBItKIJqRJTU root@tenant-a\n"
	pubOther   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOW1NpYiNot7jSIL9DoSBSY98Cg+ORWSiQq+HJ8NGo7a root@other\n"
)

// norm is a .pub line as the handler records it: type and base64 only.
func norm(pub string) string {
	f := strings.Fields(pub)
	return f[0] + " " + f[1]
}

// field is one form field, in the order cloud-init posts them.
type field struct{ name, value string }

// form encodes fields in the given order, as cloud-init (python-requests)
// does; url.Values.Encode would sort them.
func form(fields ...field) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(f.name) + "=" + url.QueryEscape(f.value))
	}
	return b.String()
}

// bookwormDSA is the pub_key_dsa a Debian 12 server (cloud-init 22.4.2,
// OpenSSH 9.2) posted at phone_home, captured from a provider/nspawn
// server: a real DSA host key, which the handler must neither pin nor
// refuse.
const bookwormDSA = "ssh-dss AAAAB3NzaC1kc3MAAACBAPN5spgDs5QCsUjscDVHbEzc2hdzV6Z0rpqgAYYWbshBY4K7FvCPb69gK3SFdx131uIiNNBkmRkkAl787ZxZCsLY8Nq0/3oDIhVDKTA1+FSEOIvjpl+2P37F0iE/D4QMILIIguygFqZI7I9Tfi8TW7m16CqudVFsLD+zUuhyAZTBAAAAFQCF2fT5iwmmjmpHabDW5pPltBvHSwAAAIEAyM5r6f7vdA2Mc9kf6iJGyKP20MfCrPkG+as8dfa97Fxey7vG/QT5wT4bLIn2beMSgBUjDX/XwRJdYmc6/73ANYQFt8x7hhWcdOJ/s6KxKjhxFdsWOJ1TK+ONVOqmGykqjp95Ss+eMWSH8yM1oo1voO4aSOBZYRXsLU3cQVu9uIUAAACAAsr6uHtJCrQU69S2G2LASwXs6FZtaufONE+qdibDDsj52Iw2IpjrsuMKgfVsQZbVF9kBpTswqYXpSDKbLjy7E24WRpOgVyxhRPGeSBnRJSRQdfM2Rhw9PYLWW9n0bAvW77zwlzy+/FMhyp6ezA0zkc42ZCXSXfK5NKZnKqklt38= root@cap\n"

// cloudInitForm is exactly what cloud-init 22.4 posts with post: all on a
// current image (no DSA key).
func cloudInitForm(hostname, instanceID string) string {
	return form(
		field{"pub_key_dsa", "N/A"},
		field{"pub_key_rsa", pubRSA},
		field{"pub_key_ecdsa", pubECDSA},
		field{"pub_key_ed25519", pubED25519},
		field{"instance_id", instanceID},
		field{"hostname", hostname},
		field{"fqdn", hostname + ".localdomain"},
	)
}

var (
	goodForm  = cloudInitForm("tenant-a", "12345678")
	goodKeys  = []string{norm(pubRSA), norm(pubECDSA), norm(pubED25519)}
	formCT    = "application/x-www-form-urlencoded"
	jsonCT    = "application/json"
	goodFinal = func(r *store.Record) { // the record after the transition
		r.Status = store.StatusInjectingSecrets
		r.Hostname = "tenant-a"
		r.InstanceID = "12345678"
		r.HostKeys = goodKeys
	}
)

// syncBuffer is a bytes.Buffer safe for the handler's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bundle is what setup returns: a handler over a memory store, with its
// OnReady calls and log lines captured.
type bundle struct {
	st    *memory.Store
	h     *callback.Handler
	ready chan store.Record
	logs  *syncBuffer
}

// setup returns a handler over a fresh memory store holding recs.
func setup(t testing.TB, recs ...store.Record) *bundle {
	t.Helper()
	b := &bundle{st: memory.New(), ready: make(chan store.Record, 1000), logs: &syncBuffer{}}
	for _, r := range recs {
		require.NoError(t, b.st.Create(context.Background(), r))
	}
	b.h = &callback.Handler{
		Store:   b.st,
		Key:     testKey,
		OnReady: func(_ context.Context, r store.Record) { b.ready <- r },
		Logger:  slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return b
}

func (b *bundle) get(t testing.TB, id string) store.Record {
	t.Helper()
	r, err := b.st.Get(context.Background(), id)
	require.NoError(t, err)
	return r
}

// waitReady returns the next OnReady record, failing after a while.
func (b *bundle) waitReady(t testing.TB) store.Record {
	t.Helper()
	select {
	case r := <-b.ready:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("OnReady was not called")
		return store.Record{}
	}
}

// noReady checks that OnReady is not called (within a short grace period:
// the handler starts the goroutine before it returns).
func (b *bundle) noReady(t testing.TB) {
	t.Helper()
	select {
	case r := <-b.ready:
		t.Fatalf("unexpected OnReady for %s", r.ID)
	case <-time.After(20 * time.Millisecond):
	}
}

// post sends a callback for id with a valid token.
func (b *bundle) post(t testing.TB, id, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	return serve(b.h, request(http.MethodPost, b.h.URL("http://cp.test/callback", id), contentType, body))
}

func request(method, target, contentType, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// failingStore is a store whose writes fail, with a cause that must not
// reach the client.
type failingStore struct{ store.Store }

var errDisk = errors.New("disk on fire at /var/lib/secret-path")

func (f failingStore) Update(context.Context, string, func(*store.Record) error) (store.Record, error) {
	return store.Record{}, errDisk
}

// stuckStore is a store whose writes wait until their context ends.
type stuckStore struct{ store.Store }

func (stuckStore) Update(ctx context.Context, _ string, _ func(*store.Record) error) (store.Record, error) {
	<-ctx.Done()
	return store.Record{}, ctx.Err()
}

// chunked hides a body's length, so the handler must rely on
// http.MaxBytesReader rather than Content-Length.
type chunked struct{ io.Reader }
