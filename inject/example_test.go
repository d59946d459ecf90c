package inject_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/internal/sshtest"
	"golang.org/x/crypto/ssh"
)

// Connect to a server pinned to the host key it posted at phone_home, and
// write a tenant's secrets into a file, atomically, without them ever
// appearing in a command line.
func ExampleRun() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	// A stand-in server; in production this is the tenant's VPS, and the
	// host key line comes from the store (Record.HostKeys).
	clientKey := sshtest.Key("control plane")
	srv, _ := sshtest.New(sshtest.Options{AuthorizedKeys: []ssh.PublicKey{clientKey.PublicKey()}})
	defer srv.Close()
	hostKeys := []string{srv.HostKeyLine() + "\n"}

	pinned, err := inject.PinnedHostKeys(hostKeys)
	if err != nil {
		fmt.Println(err)
		return
	}
	conn, err := inject.Dial(ctx, srv.Addr(), inject.SSHConfig{
		User:            "rachel",
		Signer:          clientKey,
		HostKeyCallback: pinned,
		Timeout:         10 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	secrets := inject.StaticSecrets{"tenant-1": {"ANTHROPIC_API_KEY": "sk-ant-example-0123"}}
	env, err := secrets.Secrets(ctx, "tenant-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	var data bytes.Buffer
	var values []string
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&data, "%s=%s\n", k, env[k])
		values = append(values, env[k])
	}

	steps := []inject.Step{
		inject.Mkdir(dir+"/app", 0o700),
		inject.WriteFile(dir+"/app/.env", data.Bytes(), 0o600),
	}
	if err := inject.Run(ctx, conn, steps, inject.WithRedact(values...)); err != nil {
		fmt.Println(err)
		return
	}
	fi, _ := os.Stat(dir + "/app/.env")
	fmt.Println(fi.Mode())
	fmt.Println("sessions:", len(srv.Commands()))
	fmt.Println("secret in a command line:", strings.Contains(srv.Commands()[0], "sk-ant-example-0123"))
	// Output:
	// -rw-------
	// sessions: 1
	// secret in a command line: false
}

// A failing step is named in a *StepError, with its stderr redacted.
func ExampleStepError() {
	// A Runner that runs commands on this machine: enough to show Run.
	local := inject.RunnerFunc(func(ctx context.Context, cmd string, stdin io.Reader) ([]byte, []byte, error) {
		var stdout, stderr bytes.Buffer
		c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
		c.Stdin, c.Stdout, c.Stderr = stdin, &stdout, &stderr
		err := c.Run()
		return stdout.Bytes(), stderr.Bytes(), err
	})
	steps := []inject.Step{
		{Name: "check token", Cmd: `read t; printf 'token %s rejected\n' "$t" >&2; exit 3`, Stdin: []byte("tok-1234567890\n")},
	}
	err := inject.Run(context.Background(), local, steps)
	var se *inject.StepError
	if errors.As(err, &se) {
		fmt.Println(se.Step, se.Index, se.ExitCode)
		fmt.Print(se.Stderr)
	}
	// Output:
	// check token 0 3
	// token [REDACTED] rejected
}

// StaticSecrets serves secrets from memory, for tests and examples.
func ExampleStaticSecrets() {
	src := inject.StaticSecrets{"tenant-1": {"TOKEN": "t0k3n-value"}}
	_, err := src.Secrets(context.Background(), "tenant-2")
	fmt.Println(errors.Is(err, inject.ErrNoSecrets))
	// Output: true
}
