package nspawn

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/hatchery-dev/hatchery/provider"
)

// record is a server as kept on disk, in StateDir/ID/server.json: all a
// Provider in any process needs to find, report and stop it.
type record struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	Suite   string            `json:"suite"`
	Image   string            `json:"image"` // the image directory: the overlay's lower layer
	Machine string            `json:"machine"`
	Port    int               `json:"port"`
	// Cgroups are the server's cgroup directories, the unified (v2)
	// hierarchy's first, then the v1 name=systemd one on a hybrid host.
	Cgroups []string `json:"cgroups"`
	// Deleting is set once a Delete began; such a server is no longer
	// listed, and its name is free.
	Deleting bool `json:"deleting,omitempty"`
}

const (
	recordFile  = "server.json"
	consoleFile = "console.log"
	lockName    = ".lock"
)

// newID returns a random server ID: 12 lowercase hex digits.
func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// validID reports whether id has the shape newID gives, which also keeps
// it a single path element.
func validID(id string) bool {
	if len(id) != 12 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// InstanceID returns the cloud-init instance ID of the server with the
// given ID: the instance-id of its NoCloud meta-data, which cloud-init
// reports (and posts at phone_home as instance_id). For
// provision.Config.InstanceIDFunc:
//
//	cfg.InstanceIDFunc = func(r store.Record) string { return nspawn.InstanceID(r.ServerID) }
func InstanceID(serverID string) string { return "nspawn-" + serverID }

func (r record) server(status string) provider.Server {
	return provider.Server{
		ID:      r.ID,
		Name:    r.Name,
		IPv4:    "127.0.0.1",
		Status:  status,
		Labels:  maps.Clone(r.Labels),
		SSHAddr: "127.0.0.1:" + strconv.Itoa(r.Port),
		Created: r.Created,
	}
}

// hasLabels reports whether the record carries every label of want.
func (r record) hasLabels(want map[string]string) bool {
	for k, v := range want {
		if got, ok := r.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// dir returns the directory of the server with the given ID.
func (p *Provider) dir(id string) string { return filepath.Join(p.stateDir, id) }

// readRecord reads the record of the server with the given ID; a missing
// server is an error wrapping fs.ErrNotExist.
func (p *Provider) readRecord(id string) (record, error) {
	b, err := os.ReadFile(filepath.Join(p.dir(id), recordFile))
	if err != nil {
		return record{}, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("nspawn: server %s: %s: %w", id, recordFile, err)
	}
	if r.ID != id {
		return record{}, fmt.Errorf("nspawn: server %s: %s names server %q", id, recordFile, r.ID)
	}
	return r, nil
}

// writeRecord writes r atomically.
func (p *Provider) writeRecord(r record) error {
	b, err := json.MarshalIndent(r, "", "\t")
	if err != nil {
		return err
	}
	path := filepath.Join(p.dir(r.ID), recordFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// records returns the records of every server in the state directory,
// oldest first. Entries that are not servers, servers whose record
// vanished while reading (a Delete in another process) and records that
// cannot be read (logged) are skipped.
func (p *Provider) records(ctx context.Context) ([]record, error) {
	entries, err := os.ReadDir(p.stateDir)
	if err != nil {
		return nil, fmt.Errorf("nspawn: read state directory: %w", err)
	}
	var out []record
	for _, e := range entries {
		if !e.IsDir() || !validID(e.Name()) {
			continue
		}
		r, err := p.readRecord(e.Name())
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			p.log.WarnContext(ctx, "nspawn: skipping a server whose record cannot be read", "id", e.Name(), "err", err)
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b record) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// lockFile takes an exclusive flock on path (created if missing), waiting
// until ctx ends. Locks are per open file, so they exclude goroutines of
// one process as well as other processes. unlock releases it.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	delay := time.Millisecond
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if ok {
			return func() { f.Close() }, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}
