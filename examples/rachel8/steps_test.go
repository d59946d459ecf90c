package rachel8_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/examples/rachel8"
	"github.com/hatchery-dev/hatchery/internal/testenv"
)

var wantOrder = []string{
	rachel8.StepWaitCloudInit,
	rachel8.StepClaudeDir,
	rachel8.StepCredentials,
	rachel8.StepAppDir,
	rachel8.StepEnv,
	rachel8.StepInstallUnit,
	rachel8.StepDaemonReload,
	rachel8.StepEnable,
	rachel8.StepStart,
	rachel8.StepCheckActive,
}

func TestStepsOrderAndSecrets(t *testing.T) {
	t.Parallel()
	s := sampleSecrets()
	for _, rotate := range []bool{false, true} {
		steps, err := rachel8.Steps(rachel8.Options{}, s, rotate)
		require.NoError(t, err)
		var names []string
		for _, st := range steps {
			names = append(names, st.Name)
			for _, v := range append(s.Values(), s.OwnerTelegramUserID) {
				assert.NotContains(t, st.Cmd, v, "step %q carries a secret in its command line", st.Name)
			}
		}
		want := append([]string(nil), wantOrder...)
		if rotate {
			want[8] = rachel8.StepRestart
		}
		assert.Equal(t, want, names, "rotate=%v", rotate)
		assert.Contains(t, steps[8].Cmd, map[bool]string{false: "start", true: "restart"}[rotate])
		assert.Contains(t, string(steps[2].Stdin), s.ClaudeAccessToken)
		assert.Contains(t, string(steps[4].Stdin), s.TelegramBotToken)
	}
}

func TestUnitGolden(t *testing.T) {
	t.Parallel()
	got, err := rachel8.Unit(rachel8.Options{})
	require.NoError(t, err)
	golden := filepath.Join("testdata", "rachel8.service.golden")
	if *update {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test -update to create it")
	assert.Equal(t, string(want), string(got))

	assert.NotContains(t, string(got), "__")
	for _, line := range []string{
		"User=rachel",
		"WorkingDirectory=/home/rachel/rachel8",
		"ConditionPathExists=/home/rachel/rachel8/.env",
		"ExecStart=/home/rachel/.bun/bin/bun run src/index.ts",
		"WantedBy=multi-user.target",
	} {
		assert.Contains(t, strings.Split(string(got), "\n"), line)
	}
	assert.Contains(t, string(rachel8.UnitTemplate()), "__WORKING_DIR__", "the embedded file is the template, unrendered")
}

func TestUnitTemplateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tmpl string
		want string
	}{
		{"unknown placeholder", "[Unit]\nConditionPathExists=__WORKING_DIR__/.env\n[Service]\nExecStart=__NODE_PATH__ run\n", `"ExecStart=__NODE_PATH__ run"`},
		{"half placeholder", "[Unit]\nConditionPathExists=__WORKING_DIR__/.env\nUser=__USER_\n", `"User=__USER_"`},
		{"no condition", "[Service]\nUser=__USER__\n", "ConditionPathExists=/home/rachel/rachel8/.env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := rachel8.Options{UnitTemplate: []byte(tt.tmpl)}
			_, err := rachel8.Unit(opts)
			require.ErrorIs(t, err, rachel8.ErrTemplate)
			assert.Contains(t, err.Error(), tt.want)
			steps, err := rachel8.Steps(opts, sampleSecrets(), false)
			require.ErrorIs(t, err, rachel8.ErrTemplate)
			assert.Nil(t, steps)
		})
	}
}

func TestUnitCustomUser(t *testing.T) {
	t.Parallel()
	got, err := rachel8.Unit(rachel8.Options{User: "ada"})
	require.NoError(t, err)
	assert.Contains(t, string(got), "User=ada\n")
	assert.Contains(t, string(got), "ConditionPathExists=/home/ada/rachel8/.env\n")
	assert.Contains(t, string(got), "ExecStart=/home/ada/.bun/bin/bun run src/index.ts\n")
}

// TestUnitSystemdVerify has systemd's own parser check the rendered unit:
// unknown keys, keys in the wrong section and bad values are warnings it
// prints. The bun binary is swapped for /bin/true, which exists here.
func TestUnitSystemdVerify(t *testing.T) {
	t.Parallel()
	sa := testenv.LookPath(t, "systemd-analyze")
	unit, err := rachel8.Unit(rachel8.Options{})
	require.NoError(t, err)
	unit = bytes.ReplaceAll(unit, []byte("/home/rachel/.bun/bin/bun"), []byte("/bin/true"))
	path := filepath.Join(t.TempDir(), rachel8.UnitName)
	require.NoError(t, os.WriteFile(path, unit, 0o644))
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify warnings")
}
