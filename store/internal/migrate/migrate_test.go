package migrate

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []int
		wantErr string
	}{
		{"ordered", fstest.MapFS{
			"m/002_b.sql": {Data: []byte("B")}, "m/001_a.sql": {Data: []byte("A")}, "m/README": {},
		}, []int{1, 2}, ""},
		{"gap", fstest.MapFS{"m/001_a.sql": {}, "m/003_c.sql": {}}, nil, "version 3, want 2"},
		{"bad name", fstest.MapFS{"m/first.sql": {}}, nil, "want NNN_description.sql"},
		{"zero", fstest.MapFS{"m/000_a.sql": {}}, nil, "want NNN_description.sql"},
		{"empty", fstest.MapFS{"m/README": {}}, nil, "no migrations"},
		{"no dir", fstest.MapFS{}, nil, "migrate:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Load(tt.files, "m")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			var versions []int
			for _, m := range got {
				versions = append(versions, m.Version)
			}
			require.Equal(t, tt.want, versions)
			require.Equal(t, "A", got[0].SQL)
		})
	}
}

func TestPending(t *testing.T) {
	t.Parallel()
	all := []Migration{{Version: 1}, {Version: 2}}
	p, err := Pending(all, 0)
	require.NoError(t, err)
	require.Len(t, p, 2)
	p, err = Pending(all, 2)
	require.NoError(t, err)
	require.Empty(t, p)
	_, err = Pending(all, 3)
	require.ErrorContains(t, err, "newer than this build")
}
