package nspawn

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
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
// reports (and posts at phone_home as instance_id). Provider.InstanceID
// returns the same (provider.InstanceIDer), which provision uses when
// Config.InstanceIDFunc is nil: there is nothing to set.
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

// ErrUntrustedRecord is wrapped by the errors of Get and Delete for a
// server whose record (StateDir/ID/server.json) is not what a Provider
// writes: a machine, cgroups, an image or a port that a Provider on this
// host would not have given that server. Such a record is never acted on
// (Delete kills no process and removes nothing it names); List and Create
// skip it, with a warning in the log.
var ErrUntrustedRecord = errors.New("server record not trusted")

// imageNameRE is the shape of an image's directory name: imageSpec.key.
var imageNameRE = regexp.MustCompile(`^([a-z]+)-[0-9a-f]{16}$`)

// checkRecord tells why r is not a record this Provider would have
// written for server r.ID, or nil: the machine is "hatchery-" and the ID,
// the cgroups are that machine's (cgroupBases.check), the image is one of
// the cache's, of the record's suite, and the port (0 while the server is
// created) in the servers' range.
func (p *Provider) checkRecord(id string, r record) error {
	if r.ID != id {
		return fmt.Errorf("it names server %q", r.ID)
	}
	if r.Machine != "hatchery-"+id {
		return fmt.Errorf("machine %q is not hatchery-%s", r.Machine, id)
	}
	if err := p.cg.check(r.Machine, r.Cgroups); err != nil {
		return err
	}
	images := filepath.Join(p.cacheDir, "images")
	if m := imageNameRE.FindStringSubmatch(filepath.Base(r.Image)); m == nil || filepath.Dir(r.Image) != images ||
		m[1] != r.Suite || !slices.Contains(knownSuites, r.Suite) {
		return fmt.Errorf("image %q is not an image of suite %q in %s", r.Image, r.Suite, images)
	}
	if r.Port != 0 && (r.Port < p.ports.min || r.Port > p.ports.max) {
		return fmt.Errorf("port %d is outside %d-%d", r.Port, p.ports.min, p.ports.max)
	}
	return nil
}

// serverDir returns the directory of the server with the given ID after
// checking that it is one (not a symbolic link to one elsewhere); a
// missing one is an error wrapping fs.ErrNotExist.
func (p *Provider) serverDir(id string) (string, error) {
	dir := p.dir(id)
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory (%s)", dir, fi.Mode().Type())
	}
	return dir, nil
}

// maxRecord bounds the size of a record read.
const maxRecord = 1 << 20

// readRecord reads the record of the server with the given ID, without
// following a symbolic link, and checks it (checkRecord: an error wrapping
// ErrUntrustedRecord); a missing server is an error wrapping
// fs.ErrNotExist.
func (p *Provider) readRecord(id string) (record, error) {
	dir, err := p.serverDir(id)
	if err != nil {
		return record{}, err
	}
	path := filepath.Join(dir, recordFile)
	fi, err := os.Lstat(path)
	if err != nil {
		return record{}, err
	}
	if !fi.Mode().IsRegular() {
		return record{}, fmt.Errorf("%s: %w: not a regular file (%s)", recordFile, ErrUntrustedRecord, fi.Mode().Type())
	}
	f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return record{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecord))
	if err != nil {
		return record{}, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("%s: %w", recordFile, err)
	}
	if err := p.checkRecord(id, r); err != nil {
		return record{}, fmt.Errorf("%s: %w: %w", recordFile, ErrUntrustedRecord, err)
	}
	return r, nil
}

// writeRecord writes r atomically (a temporary file renamed), following
// no symbolic link.
func (p *Provider) writeRecord(r record) error {
	b, err := json.MarshalIndent(r, "", "\t")
	if err != nil {
		return err
	}
	dir, err := p.serverDir(r.ID)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, recordFile)
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) { // a write that died
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
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
			p.log.WarnContext(ctx, "nspawn: skipping a server whose record cannot be read or is not trusted", "id", e.Name(), "err", err)
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
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|oNoFollow, 0o600)
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
