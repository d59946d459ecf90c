package fake_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/hatchery-dev/hatchery/cloudinit"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
)

// A simulated server boots from cloud-config, phones home like cloud-init,
// and runs SSH commands in its sandbox.
func Example() {
	// The control plane's phone_home endpoint.
	posted := make(chan url.Values, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil {
			posted <- r.PostForm
		}
	}))
	defer cb.Close()

	p := fake.New(fake.Options{})
	defer p.Close()

	// The key the control plane logs in with.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		log.Fatal(err)
	}
	userData, err := cloudinit.Build(cloudinit.Config{
		Users: []cloudinit.User{{
			Name:              "rachel",
			Sudo:              "ALL=(ALL) NOPASSWD:ALL",
			SSHAuthorizedKeys: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))},
		}},
		PhoneHome: &cloudinit.PhoneHome{
			URL:  cb.URL + "/callback/$INSTANCE_ID",
			Post: []string{"pub_key_ed25519", "instance_id", "hostname"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	srv, err := p.Create(ctx, provider.CreateRequest{Name: "tenant-1", UserData: userData})
	if err != nil {
		log.Fatal(err)
	}
	form := <-posted
	fmt.Println("phoned home:", form.Get("hostname"), form.Get("instance_id"))

	// Pin the host key the server posted, as the callback handler does.
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(form.Get("pub_key_ed25519")))
	if err != nil {
		log.Fatal(err)
	}
	client, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		User:            "rachel",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hostKey),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput("sudo -n sh -c 'echo welcome > /etc/motd' && cat /etc/motd")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print("over SSH: ", string(out))

	s, _ := p.Server(srv.ID)
	data, err := os.ReadFile(s.Path("/etc/motd"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print("in the sandbox: ", string(data))
	// Output:
	// phoned home: tenant-1 i-1
	// over SSH: welcome
	// in the sandbox: welcome
}
