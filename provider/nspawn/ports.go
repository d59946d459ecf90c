package nspawn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Ports for the servers' sshd: below Linux's default ephemeral range
// (32768-60999), so the kernel never hands one of them to a socket bound
// to port 0 or to an outgoing connection.
const (
	portMin = 20000
	portMax = 29999
)

// portDir is where the Providers of every process on the host record the
// ports they gave to servers.
const portDir = "/run/hatchery-nspawn/ports"

// ports hands out the sshd ports. A port is free when no reservation in
// dir names a live server and binding 127.0.0.1:port succeeds;
// reservations are made under a lock, so Providers in several processes
// never give one port twice. The bind check covers other programs,
// which may still take a port between the check and the server's sshd
// binding it (about a second later): the server's sshd then fails, and
// SSH connections meet the other program, whose host key is not the
// pinned one.
type ports struct {
	dir      string
	min, max int
}

// reserve picks a free port for the server whose directory is owner and
// records it.
func (pp ports) reserve(ctx context.Context, owner string) (int, error) {
	if err := os.MkdirAll(pp.dir, 0o700); err != nil {
		return 0, fmt.Errorf("nspawn: port registry: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(pp.dir, lockName))
	if err != nil {
		return 0, fmt.Errorf("nspawn: port registry: %w", err)
	}
	defer unlock()
	n := pp.max - pp.min + 1
	start := rand.IntN(n)
	for i := range n {
		port := pp.min + (start+i)%n
		path := filepath.Join(pp.dir, strconv.Itoa(port))
		if b, err := os.ReadFile(path); err == nil {
			if live(string(b), port) {
				continue
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("nspawn: port registry: %w", err)
		}
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken by someone else
		}
		l.Close()
		if err := os.WriteFile(path, []byte(owner), 0o600); err != nil {
			return 0, fmt.Errorf("nspawn: port registry: %w", err)
		}
		return port, nil
	}
	return 0, fmt.Errorf("%w: nspawn: no free port in %d-%d", errNoPort, pp.min, pp.max)
}

var errNoPort = errors.New("no free port")

// release forgets the reservation of port if owner holds it.
func (pp ports) release(ctx context.Context, port int, owner string) error {
	if port == 0 {
		return nil
	}
	unlock, err := lockFile(ctx, filepath.Join(pp.dir, lockName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("nspawn: port registry: %w", err)
	}
	defer unlock()
	path := filepath.Join(pp.dir, strconv.Itoa(port))
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && string(b) != owner {
		return nil
	}
	if err == nil {
		err = os.Remove(path)
	}
	if err != nil {
		return fmt.Errorf("nspawn: port registry: %w", err)
	}
	return nil
}

// live reports whether the server directory owner still holds port: its
// record exists and names the port (or none yet: it is being created).
func live(owner string, port int) bool {
	if !filepath.IsAbs(owner) || strings.ContainsRune(owner, 0) {
		return false
	}
	b, err := os.ReadFile(filepath.Join(owner, recordFile))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist) // unreadable: keep it, to be safe
	}
	var r struct {
		Port int `json:"port"`
	}
	if json.Unmarshal(b, &r) != nil {
		return true
	}
	return r.Port == 0 || r.Port == port
}
