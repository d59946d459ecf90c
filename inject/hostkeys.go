package inject

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// parseHostKeys reads authorized_keys lines ("ssh-ed25519 AAAA... comment",
// with or without a trailing newline). Blank lines, comments and cloud-init's
// "N/A" placeholder for a key type the server lacks are skipped.
func parseHostKeys(lines []string) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || l == "N/A" || strings.HasPrefix(l, "#") {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l))
		if err != nil {
			return nil, fmt.Errorf("%w: host key line %d: %v", ErrInvalid, i, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no host keys to pin", ErrInvalid)
	}
	return keys, nil
}

// PinnedHostKeys returns a HostKeyCallback that accepts exactly the keys
// in lines, the authorized_keys lines a server posted at phone_home (as
// the callback handler stores them). A host certificate is accepted when
// the key it certifies is pinned. Any other key fails with an error
// wrapping ErrHostKey.
//
// Pin every key the server posted, or set SSHConfig.HostKeyAlgorithms to
// PinnedHostKeyAlgorithms(lines): otherwise the server may present a key
// of another type than the pinned one, which is then refused.
func PinnedHostKeys(lines []string) (ssh.HostKeyCallback, error) {
	keys, err := parseHostKeys(lines)
	if err != nil {
		return nil, err
	}
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		k := key
		if c, ok := key.(*ssh.Certificate); ok {
			k = c.Key
		}
		b := k.Marshal()
		for _, p := range keys {
			if bytes.Equal(p.Marshal(), b) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s key %s is not one of the %d pinned", ErrHostKey, key.Type(), ssh.FingerprintSHA256(key), len(keys))
	}, nil
}

// PinnedHostKeyAlgorithms returns the host key algorithms that match the
// keys in lines, for SSHConfig.HostKeyAlgorithms, so the server presents
// a key that is pinned. RSA keys map to rsa-sha2-512 and rsa-sha2-256.
func PinnedHostKeyAlgorithms(lines []string) ([]string, error) {
	keys, err := parseHostKeys(lines)
	if err != nil {
		return nil, err
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range keys {
		names := []string{k.Type()}
		if k.Type() == ssh.KeyAlgoRSA {
			names = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				algos = append(algos, n)
			}
		}
	}
	return algos, nil
}

// KnownHosts returns a HostKeyCallback backed by OpenSSH known_hosts files
// (golang.org/x/crypto/ssh/knownhosts). An unknown or changed key fails
// the handshake with an error wrapping ErrHostKey (and the
// *knownhosts.KeyError, for errors.As).
func KnownHosts(files ...string) (ssh.HostKeyCallback, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no known_hosts file", ErrInvalid)
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("inject: known_hosts: %w", err)
	}
	return cb, nil
}

// ParsePrivateKey parses a private key in PEM (PKCS#1, PKCS#8, SEC 1) or
// OpenSSH format. An encrypted key needs passphrase; without one the error
// wraps ErrPassphrase. A passphrase given for a key that is not encrypted
// is ignored. Errors never quote the key.
func ParsePrivateKey(key, passphrase []byte) (ssh.Signer, error) {
	s, err := ssh.ParsePrivateKey(key)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if len(passphrase) == 0 {
			return nil, ErrPassphrase
		}
		s, err = ssh.ParsePrivateKeyWithPassphrase(key, passphrase)
	}
	if err != nil {
		return nil, fmt.Errorf("inject: private key: %w", err)
	}
	return s, nil
}
