package store_test

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/store"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestValidID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want bool
	}{
		{"0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"ffffffff-ffff-ffff-ffff-ffffffffffff", true},
		{"", false},
		{"0B5D6F1E-8A7C-4E2B-9F3D-1C2A3B4C5D6E", false},
		{"0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6", false},
		{"0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e0", false},
		{"0b5d6f1e8a7c-4e2b-9f3d-1c2a3b4c5d6e0", false},
		{"0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6g", false},
		{"{b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6}", false},
		{"0b5d6f1e-8a7c-4e2b-9f3d_1c2a3b4c5d6e", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, store.ValidID(tt.id), "%q", tt.id)
		require.Equal(t, uuidRE.MatchString(tt.id), store.ValidID(tt.id), "%q agrees with the regexp", tt.id)
		if tt.want {
			require.NoError(t, store.CheckID(tt.id))
		} else {
			require.ErrorIs(t, store.CheckID(tt.id), store.ErrInvalid)
		}
	}
}

// FuzzValidID checks the hand-written ValidID against the regexp it replaces.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"", "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e", "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6E", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := store.ValidID(id), uuidRE.MatchString(id); got != want {
			t.Fatalf("ValidID(%q) = %v, regexp says %v", id, got, want)
		}
	})
}

func TestCheckRecord(t *testing.T) {
	t.Parallel()
	id := "0b5d6f1e-8a7c-4e2b-9f3d-1c2a3b4c5d6e"
	require.NoError(t, store.CheckRecord(store.Record{ID: id, Status: store.StatusReady, Hostname: "ünïcode", HostKeys: []string{"k"}}))
	for name, r := range map[string]store.Record{
		"zero":           {},
		"bad status":     {ID: id, Status: "up"},
		"NUL":            {ID: id, Status: store.StatusReady, IPv6: "\x00"},
		"bad UTF-8 key":  {ID: id, Status: store.StatusReady, HostKeys: []string{"ok", "\xc3"}},
		"negative count": {ID: id, Status: store.StatusReady, Attempts: -2},
	} {
		require.ErrorIs(t, store.CheckRecord(r), store.ErrInvalid, name)
	}
}
