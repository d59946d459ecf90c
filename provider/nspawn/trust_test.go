package nspawn

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testProvider returns a Provider on fresh directories whose cgroup
// hierarchy is a plain directory: enough for records, not for servers.
func testProvider(t *testing.T) *Provider {
	t.Helper()
	root := t.TempDir()
	mount := filepath.Join(root, "cgroup")
	p := &Provider{
		opts:     Options{StopTimeout: time.Second},
		log:      slog.New(slog.DiscardHandler),
		stateDir: filepath.Join(root, "state"),
		cacheDir: filepath.Join(root, "cache"),
		cg:       cgroupBases{unified: filepath.Join(mount, "job"), unifiedMount: mount},
		ports:    ports{dir: filepath.Join(root, "ports"), min: portMin, max: portMax},
		started:  map[string]chan struct{}{},
	}
	require.NoError(t, os.MkdirAll(p.cg.unified, 0o755))
	require.NoError(t, os.Mkdir(p.stateDir, 0o700))
	return p
}

// validRecord is the record Create writes for server id.
func validRecord(p *Provider, id string) record {
	machine := "hatchery-" + id
	return record{
		ID: id, Name: "s-" + id, Created: time.Now().UTC(), Suite: "bookworm",
		Image:   filepath.Join(p.cacheDir, "images", "bookworm-0123456789abcdef"),
		Machine: machine, Port: portMin + 1, Cgroups: p.cg.dirs(machine),
	}
}

// plant writes r as the record of server r.ID, as anyone able to write
// in the StateDir could, and returns the server's directory.
func plant(t *testing.T, p *Provider, r record) {
	t.Helper()
	require.NoError(t, os.Mkdir(p.dir(r.ID), 0o700))
	b, err := json.Marshal(r)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(p.dir(r.ID), recordFile), b, 0o600))
}

// TestUntrustedRecords: a record that names cgroups, an image or a port
// this Provider would not have given its server is never acted on:
// Delete refuses it (before, it removed the directories its cgroups
// named, and would have killed their processes), Get says why, List and
// Create leave it alone.
func TestUntrustedRecords(t *testing.T) {
	t.Parallel()
	p := testProvider(t)
	victim := filepath.Join(t.TempDir(), "victim")
	other := "hatchery-" + newID()
	tests := []struct {
		name string
		mod  func(r *record)
	}{
		{"a directory outside the cgroup hierarchy", func(r *record) { r.Cgroups = []string{victim} }},
		{"the hierarchy's root", func(r *record) { r.Cgroups = []string{filepath.Dir(p.cg.unified)} }},
		{"the provider's own cgroup", func(r *record) { r.Cgroups = []string{p.cg.unified} }},
		{"another server's cgroup", func(r *record) { r.Cgroups = p.cg.dirs(other) }},
		{"a path that climbs out", func(r *record) { r.Cgroups = []string{p.cg.unified + "/../../../victim/" + r.Machine} }},
		{"a relative path", func(r *record) { r.Cgroups = []string{"job/" + r.Machine} }},
		{"one cgroup too many", func(r *record) { r.Cgroups = append(r.Cgroups, victim) }},
		{"no cgroup", func(r *record) { r.Cgroups = nil }},
		{"another machine", func(r *record) { r.Machine = other; r.Cgroups = p.cg.dirs(other) }},
		{"an image outside the cache", func(r *record) { r.Image = victim }},
		{"an image in a directory of the cache", func(r *record) { r.Image = filepath.Join(p.cacheDir, "images", "bookworm-0123456789abcdef", "x") }},
		{"an image of another suite", func(r *record) { r.Image = filepath.Join(p.cacheDir, "images", "trixie-0123456789abcdef") }},
		{"a port out of range", func(r *record) { r.Port = 22 }},
		{"a negative port", func(r *record) { r.Port = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []string{filepath.Join(victim, "a", "b"), filepath.Join(p.cg.unified, other, "payload")} {
				require.NoError(t, os.MkdirAll(d, 0o755))
			}
			r := validRecord(p, newID())
			tt.mod(&r)
			plant(t, p, r)
			ctx := t.Context()

			err := p.Delete(ctx, r.ID)
			require.ErrorIs(t, err, ErrUntrustedRecord)
			t.Log(err)
			assert.DirExists(t, filepath.Join(victim, "a", "b"), "Delete acted on the record")
			assert.DirExists(t, filepath.Join(p.cg.unified, other, "payload"), "Delete acted on the record")
			assert.DirExists(t, p.dir(r.ID), "the record is left for a human to look at")
			_, err = p.Get(ctx, r.ID)
			require.ErrorIs(t, err, ErrUntrustedRecord)
			all, err := p.List(ctx, nil)
			require.NoError(t, err)
			assert.Empty(t, all)
			require.NoError(t, os.RemoveAll(p.dir(r.ID)))
		})
	}
}

// TestTrustedRecord: the record Create writes passes, and Delete removes
// what it names.
func TestTrustedRecord(t *testing.T) {
	t.Parallel()
	p := testProvider(t)
	r := validRecord(p, newID())
	plant(t, p, r)
	require.NoError(t, os.MkdirAll(filepath.Join(r.Cgroups[0], "payload"), 0o755))
	got, err := p.Get(t.Context(), r.ID)
	require.NoError(t, err)
	assert.Equal(t, "off", got.Status)
	all, err := p.List(t.Context(), nil)
	require.NoError(t, err)
	assert.Len(t, all, 1)
	require.NoError(t, p.Delete(t.Context(), r.ID))
	assert.NoDirExists(t, r.Cgroups[0])
	assert.NoDirExists(t, p.dir(r.ID))
	assert.DirExists(t, p.cg.unified, "the provider's own cgroup stays")
}

// TestRecordSymlinks: the server's directory, its record and the record's
// temporary file are never reached through a symbolic link, which would
// make root read or write another file.
func TestRecordSymlinks(t *testing.T) {
	t.Parallel()
	p := testProvider(t)
	elsewhere := t.TempDir()

	// The server's directory is a link to another directory.
	linked := validRecord(p, newID())
	require.NoError(t, os.Symlink(elsewhere, p.dir(linked.ID)))
	require.Error(t, p.writeRecord(linked))
	assert.NoFileExists(t, filepath.Join(elsewhere, recordFile+".tmp"))
	assert.NoFileExists(t, filepath.Join(elsewhere, recordFile))
	b, err := json.Marshal(linked)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(elsewhere, recordFile), b, 0o600))
	_, err = p.readRecord(linked.ID)
	require.Error(t, err, "read through a linked directory")

	// The temporary file is a link to a file of someone else.
	target := filepath.Join(elsewhere, "target")
	require.NoError(t, os.WriteFile(target, []byte("keep\n"), 0o644))
	r := validRecord(p, newID())
	require.NoError(t, os.Mkdir(p.dir(r.ID), 0o700))
	require.NoError(t, os.Symlink(target, filepath.Join(p.dir(r.ID), recordFile+".tmp")))
	require.NoError(t, p.writeRecord(r), "a stale temporary file is replaced")
	got, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "keep\n", string(got), "written through the link")
	back, err := p.readRecord(r.ID)
	require.NoError(t, err)
	assert.Equal(t, r.Cgroups, back.Cgroups)

	// The record is a link.
	l := validRecord(p, newID())
	require.NoError(t, os.Mkdir(p.dir(l.ID), 0o700))
	b, err = json.Marshal(l)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(elsewhere, "record"), b, 0o600))
	require.NoError(t, os.Symlink(filepath.Join(elsewhere, "record"), filepath.Join(p.dir(l.ID), recordFile)))
	_, err = p.readRecord(l.ID)
	require.Error(t, err, "read through a link")
	require.Error(t, p.Delete(context.Background(), l.ID))
}
