package fake_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
)

// hit is one request the phone_home receiver got.
type hit struct {
	Method, Path, Query, ContentType, UserAgent, Body string
	Header                                            http.Header
	At                                                time.Time
}

// receiver is an httptest server standing in for the control plane's
// callback handler. answer decides the status of the n-th request (from 1);
// nil means 200.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []hit
	answer func(n int, w http.ResponseWriter, r *http.Request) int
	got    chan struct{}
}

func newReceiver(t testing.TB, answer func(n int, w http.ResponseWriter, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{answer: answer, got: make(chan struct{}, 100)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			ContentType: r.Header.Get("Content-Type"), UserAgent: r.Header.Get("User-Agent"),
			Body: string(body), Header: r.Header.Clone(), At: time.Now(),
		})
		n := len(rc.hits)
		rc.mu.Unlock()
		code := http.StatusOK
		if rc.answer != nil {
			code = rc.answer(n, w, r)
		}
		w.WriteHeader(code)
		select {
		case rc.got <- struct{}{}:
		default: // wait counts the hits, not the signals
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) Hits() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// wait waits for n requests in all.
func (rc *receiver) wait(t *testing.T, n int) []hit {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for len(rc.Hits()) < n {
		select {
		case <-rc.got:
		case <-deadline:
			t.Fatalf("phone_home: got %d requests, want %d", len(rc.Hits()), n)
		}
	}
	return rc.Hits()
}

// key is a client key pair for SSH.
type key struct {
	signer gossh.Signer
	line   string // authorized_keys line, no newline
}

func newKey(t testing.TB) key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := gossh.NewSignerFromKey(priv)
	require.NoError(t, err)
	return key{signer: s, line: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(s.PublicKey()))) + " test@example"}
}

// doc holds what a test cloud-config varies.
type doc struct {
	URL      string
	Key      string // rachel's authorized key line
	Post     string // YAML for post, "" to leave it out
	Tries    int
	Extra    string // more top-level YAML
	NoSudo   bool   // rachel's sudo rule asks for a password
	Hostname string
}

// userData builds a cloud-config by hand, as cloudinit.Build would.
func userData(d doc) []byte {
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	if d.Hostname != "" {
		fmt.Fprintf(&b, "hostname: %s\n", d.Hostname)
	}
	sudo := "ALL=(ALL) NOPASSWD:ALL"
	if d.NoSudo {
		sudo = "ALL=(ALL) ALL"
	}
	fmt.Fprintf(&b, `users:
  - name: rachel
    groups: [sudo]
    shell: /bin/bash
    sudo: %q
    ssh_authorized_keys:
      - %s
  - name: guest
    ssh_authorized_keys:
      - %s
`, sudo, d.Key, d.Key)
	b.WriteString(`write_files:
  - path: /etc/rachel8/config.toml
    content: "name = \"rachel8\"\n"
    permissions: "0640"
    owner: rachel:rachel
  - path: /opt/rachel8/hello.txt
    encoding: b64
    content: aGVsbG8K
`)
	b.WriteString(d.Extra)
	fmt.Fprintf(&b, "phone_home:\n  url: %q\n", d.URL)
	if d.Post != "" {
		fmt.Fprintf(&b, "  post: %s\n", d.Post)
	}
	if d.Tries != 0 {
		fmt.Fprintf(&b, "  tries: %d\n", d.Tries)
	}
	return []byte(b.String())
}

const allPost = "[pub_key_dsa, pub_key_rsa, pub_key_ecdsa, pub_key_ed25519, instance_id, hostname, fqdn]"

// bundle is what most tests need: a provider, a phone_home receiver and a
// key rachel accepts.
type bundle struct {
	p   *fake.Provider
	rc  *receiver
	key key
}

func setup(t testing.TB, opts fake.Options, answer func(n int, w http.ResponseWriter, r *http.Request) int) *bundle {
	t.Helper()
	if opts.PhoneHomeInterval == 0 {
		opts.PhoneHomeInterval = 50 * time.Millisecond
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	b := &bundle{p: fake.New(opts), rc: newReceiver(t, answer), key: newKey(t)}
	t.Cleanup(func() { require.NoError(t, b.p.Close()) })
	return b
}

func (b *bundle) url() string { return b.rc.srv.URL + "/cb/$INSTANCE_ID?token=abc123" }

// create creates a server from d (URL and Key filled in when empty) and
// returns it.
func (b *bundle) create(t testing.TB, name string, d doc) (provider.Server, *fake.Server) {
	t.Helper()
	if d.URL == "" {
		d.URL = b.url()
	}
	if d.Key == "" {
		d.Key = b.key.line
	}
	ps, err := b.p.Create(context.Background(), provider.CreateRequest{Name: name, UserData: userData(d), Labels: map[string]string{"tenant": name}})
	require.NoError(t, err)
	s, ok := b.p.Server(ps.ID)
	require.True(t, ok)
	return ps, s
}

func waitBooted(t *testing.T, s *fake.Server) {
	t.Helper()
	select {
	case <-s.Booted():
	case <-time.After(10 * time.Second):
		t.Fatal("server did not finish booting")
	}
}

// dial opens an SSH connection as user, pinning the server's host key.
func dial(t testing.TB, s *fake.Server, user string, k key) *gossh.Client {
	t.Helper()
	c, err := dialErr(s, user, k)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func dialErr(s *fake.Server, user string, k key) (*gossh.Client, error) {
	return gossh.Dial("tcp", s.Addr(), &gossh.ClientConfig{
		User:            user,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(k.signer)},
		HostKeyCallback: gossh.FixedHostKey(s.HostKey()),
		Timeout:         5 * time.Second,
	})
}

// result is what one exec session gave back.
type result struct {
	Stdout, Stderr string
	Code           int
}

// run runs cmd with stdin over c and returns its output and exit status.
func run(t *testing.T, c *gossh.Client, cmd, stdin string) result {
	t.Helper()
	r, err := runErr(c, cmd, stdin)
	require.NoError(t, err, "run %q", cmd)
	return r
}

func runErr(c *gossh.Client, cmd, stdin string) (result, error) {
	sess, err := c.NewSession()
	if err != nil {
		return result{}, err
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errb
	if stdin != "" {
		sess.Stdin = strings.NewReader(stdin)
	}
	err = sess.Run(cmd)
	var ee *gossh.ExitError
	switch {
	case err == nil:
		return result{out.String(), errb.String(), 0}, nil
	case errors.As(err, &ee):
		return result{out.String(), errb.String(), ee.ExitStatus()}, nil
	}
	return result{out.String(), errb.String(), -1}, err
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// requireDSAKey checks that line is a DSA public key's .pub line, as
// ssh-keygen writes it: "ssh-dss BASE64 COMMENT\n", the key a 1024-bit
// group (p, q, g) with y in the subgroup of order q, as FIPS 186 has it.
func requireDSAKey(t testing.TB, line string) {
	t.Helper()
	f := strings.Fields(line)
	require.Len(t, f, 3, line)
	require.Equal(t, "ssh-dss", f[0])
	require.True(t, strings.HasSuffix(line, "\n"))
	blob, err := base64.StdEncoding.DecodeString(f[1])
	require.NoError(t, err)
	var k struct {
		Name       string
		P, Q, G, Y *big.Int
		Rest       []byte `ssh:"rest"`
	}
	require.NoError(t, gossh.Unmarshal(blob, &k))
	require.Equal(t, "ssh-dss", k.Name)
	require.Empty(t, k.Rest)
	require.Equal(t, 1024, k.P.BitLen())
	require.Equal(t, 160, k.Q.BitLen())
	one := big.NewInt(1)
	require.Zero(t, new(big.Int).Exp(k.G, k.Q, k.P).Cmp(one), "g has order q")
	require.Zero(t, new(big.Int).Exp(k.Y, k.Q, k.P).Cmp(one), "y is in g's subgroup")
	require.NotZero(t, k.Y.Cmp(one))
}
