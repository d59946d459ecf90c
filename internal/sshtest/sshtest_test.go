package sshtest_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/hatchery-dev/hatchery/internal/sshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func dial(t *testing.T, s *sshtest.Server, key ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	return ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User:            "tester",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey()),
		Timeout:         5 * time.Second,
	})
}

func TestKeyIsFixed(t *testing.T) {
	t.Parallel()
	a, b := sshtest.Key("a"), sshtest.Key("a")
	assert.Equal(t, a.PublicKey().Marshal(), b.PublicKey().Marshal())
	assert.NotEqual(t, a.PublicKey().Marshal(), sshtest.Key("b").PublicKey().Marshal())
	assert.Regexp(t, `^ssh-ed25519 AAAA\S+$`, sshtest.AuthorizedLine(a.PublicKey()))
}

func TestScriptAndAuth(t *testing.T) {
	t.Parallel()
	key := sshtest.Key("client")
	s := sshtest.Start(t, sshtest.Options{
		HostKey:        sshtest.Key("host"),
		AuthorizedKeys: []ssh.PublicKey{key.PublicKey()},
		Handler: sshtest.Script(func(cmd string, stdin []byte) (string, string, int) {
			return cmd + ":" + string(stdin), "err", 3
		}),
	})
	require.Equal(t, sshtest.AuthorizedLine(sshtest.Key("host").PublicKey()), s.HostKeyLine())

	c, err := dial(t, s, key)
	require.NoError(t, err)
	defer c.Close()
	sess, err := c.NewSession()
	require.NoError(t, err)
	var stdout, stderr bytes.Buffer
	sess.Stdin, sess.Stdout, sess.Stderr = bytes.NewBufferString("data"), &stdout, &stderr
	err = sess.Run("do it")
	var ee *ssh.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 3, ee.ExitStatus())
	assert.Equal(t, "do it:data", stdout.String())
	assert.Equal(t, "err", stderr.String())
	assert.Equal(t, []string{"do it"}, s.Commands())
	assert.Equal(t, []string{"tester"}, s.Users())

	_, err = dial(t, s, sshtest.Key("stranger"))
	require.ErrorContains(t, err, "unable to authenticate")
	assert.Equal(t, 2, s.Conns())
}

func TestExecSignalAndClose(t *testing.T) {
	t.Parallel()
	key := sshtest.NewKey(t)
	s := sshtest.Start(t, sshtest.Options{AuthorizedKeys: []ssh.PublicKey{key.PublicKey()}})
	c, err := dial(t, s, key)
	require.NoError(t, err)
	defer c.Close()

	sess, err := c.NewSession()
	require.NoError(t, err)
	sess.Stdin = bytes.NewBufferString("x")
	out, err := sess.CombinedOutput("cat; echo \" $HOME\" >/dev/null; exit 4")
	var ee *ssh.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 4, ee.ExitStatus())
	assert.Equal(t, "x", string(out))

	sess, err = c.NewSession()
	require.NoError(t, err)
	stdout, err := sess.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, sess.Start("echo started; exec sleep 30"))
	line := make([]byte, len("started\n"))
	_, err = io.ReadFull(stdout, line) // the command runs: a signal now reaches it
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, sess.Signal(ssh.SIGTERM))
	err = sess.Wait()
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 128+15, ee.ExitStatus())
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Equal(t, []string{"TERM"}, s.Signals())

	// Close stops a command that is still running.
	sess, err = c.NewSession()
	require.NoError(t, err)
	require.NoError(t, sess.Start("sleep 30"))
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the running command")
	}
}

func TestOpenCountsLiveConnections(t *testing.T) {
	t.Parallel()
	key := sshtest.NewKey(t)
	s := sshtest.Start(t, sshtest.Options{AuthorizedKeys: []ssh.PublicKey{key.PublicKey()}})
	a, err := dial(t, s, key)
	require.NoError(t, err)
	defer a.Close()
	b, err := dial(t, s, key)
	require.NoError(t, err)
	assert.Equal(t, 2, s.Open(), "the handshake is done: both are counted")

	require.NoError(t, b.Close())
	require.Eventually(t, func() bool { return s.Open() == 1 }, 10*time.Second, 5*time.Millisecond)
	s.Drop()
	require.Eventually(t, func() bool { return s.Open() == 0 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, 2, s.Conns(), "Conns counts every connection ever accepted")
}
