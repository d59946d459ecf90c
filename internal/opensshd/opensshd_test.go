package opensshd_test

import (
	"bytes"
	"testing"

	"github.com/hatchery-dev/hatchery/internal/opensshd"
	"github.com/hatchery-dev/hatchery/internal/sshtest"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func TestStart(t *testing.T) {
	t.Parallel()
	key := sshtest.Key("opensshd client")
	srv := opensshd.Start(t, opensshd.Options{
		AuthorizedKeys: []ssh.PublicKey{key.PublicKey()},
		Env:            []string{"HATCHERY_TEST=it's set"},
	})

	c, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{
		User:            srv.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey),
	})
	require.NoError(t, err)
	defer c.Close()
	sess, err := c.NewSession()
	require.NoError(t, err)
	defer sess.Close()
	sess.Stdin = bytes.NewBufferString("in")
	out, err := sess.Output(`cat; printf ' %s' "$HATCHERY_TEST"`)
	require.NoError(t, err)
	require.Equal(t, "in it's set", string(out))
	require.Equal(t, []string{`cat; printf ' %s' "$HATCHERY_TEST"`}, srv.Commands())

	other := sshtest.Key("someone else")
	_, err = ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{
		User:            srv.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(other)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey),
	})
	require.ErrorContains(t, err, "unable to authenticate")

	wrongHost := sshtest.Key("not the host")
	_, err = ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{
		User:            srv.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(wrongHost.PublicKey()),
	})
	require.ErrorContains(t, err, "host key mismatch")
}
