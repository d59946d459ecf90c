package mirror

import (
	"archive/zip"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// bunInstaller stands in for https://bun.sh/install: like the real one it
// needs unzip, downloads bun-TARGET.zip with curl, unpacks it into
// $BUN_INSTALL/bin (~/.bun/bin), links bunx to it and, for bash users,
// adds Bun to ~/.bashrc.
const bunInstaller = `#!/usr/bin/env bash
# Stand-in for https://bun.sh/install, served by hatchery's test mirror
# (examples/internal/mirror): it does to the file system what the real
# installer does, with a stand-in bun.
set -euo pipefail
command -v unzip >/dev/null || { echo "error: unzip is required to install bun" >&2; exit 1; }
case "$(uname -ms)" in
"Linux x86_64") target=linux-x64 ;;
"Linux aarch64" | "Linux arm64") target=linux-aarch64 ;;
*) echo "error: unsupported platform: $(uname -ms)" >&2; exit 1 ;;
esac
install_env=BUN_INSTALL
install_dir=${BUN_INSTALL:-$HOME/.bun}
bin_dir=$install_dir/bin
exe=$bin_dir/bun
mkdir -p "$bin_dir"
curl --fail --location --silent --show-error --output "$exe.zip" "@URL@/bun/bun-$target.zip"
unzip -oqd "$bin_dir" "$exe.zip"
mv "$bin_dir/bun-$target/bun" "$exe"
chmod +x "$exe"
rm -r "$bin_dir/bun-$target" "$exe.zip"
ln -sf bun "$bin_dir/bunx"
echo "bun was installed successfully to $exe"
case "$(basename "${SHELL:-}")" in
bash)
	if [ -w "$HOME/.bashrc" ] || [ ! -e "$HOME/.bashrc" ]; then
		printf '\n# bun\nexport %s=%s\nexport PATH="$%s/bin:$PATH"\n' "$install_env" "$install_dir" "$install_env" >>"$HOME/.bashrc"
		echo "Added \"$bin_dir\" to \$PATH in \"~/.bashrc\""
	fi
	;;
esac
`

// bun stands in for the bun binary.
const bun = `#!/bin/sh
# Stand-in for Bun, from hatchery's test mirror (examples/internal/mirror).
set -eu
case "${1:-}" in
--version) echo "@BUN_VERSION@" ;;
install | i)
	[ -f package.json ] || { echo "error: Bun could not find a package.json file to install from" >&2; exit 1; }
	mkdir -p node_modules
	echo "bun install v@BUN_VERSION@"
	echo
	echo "Checked 0 installs across 1 packages (no changes)"
	;;
run)
	[ $# -ge 2 ] || { echo "usage: bun run FILE" >&2; exit 1; }
	[ -f "$2" ] || { echo "error: Module not found \"$2\"" >&2; exit 1; }
	vars=
	if [ -r .env ]; then
		vars=$(sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' .env | tr '\n' ' ' | sed 's/ $//')
	fi
	echo "@BANNER@: bun run $2 as $(id -un) in $(pwd); .env sets ${vars:-nothing}"
	exec sleep infinity
	;;
*) echo "usage: bun install | bun run FILE | bun --version" >&2; exit 1 ;;
esac
`

// claudeInstaller stands in for https://claude.ai/install.sh: like the
// real one it downloads the CLI into ~/.claude/downloads and runs its
// install command, which sets it up, then removes the download.
const claudeInstaller = `#!/bin/bash
# Stand-in for https://claude.ai/install.sh, served by hatchery's test
# mirror (examples/internal/mirror): it does to the file system what the
# real installer does, with a stand-in claude.
set -e
case "$(uname -m)" in
x86_64 | amd64) platform=linux-x64 ;;
arm64 | aarch64) platform=linux-arm64 ;;
*) echo "Unsupported architecture: $(uname -m)" >&2; exit 1 ;;
esac
DOWNLOAD_DIR="$HOME/.claude/downloads"
mkdir -p "$DOWNLOAD_DIR"
version=@CLAUDE_VERSION@
binary_path="$DOWNLOAD_DIR/claude-$version-$platform"
curl -fsSL -o "$binary_path" "@URL@/claude/$version/$platform/claude"
chmod +x "$binary_path"
"$binary_path" install
rm -f "$binary_path"
echo "Installation complete!"
`

// claude stands in for the Claude CLI: its install command puts it under
// ~/.local/share/claude/versions and links ~/.local/bin/claude to it.
const claude = `#!/bin/sh
# Stand-in for the Claude CLI, from hatchery's test mirror (examples/internal/mirror).
set -eu
case "${1:-}" in
--version) echo "@CLAUDE_VERSION@ (Claude Code)" ;;
install)
	versions="$HOME/.local/share/claude/versions"
	mkdir -p "$versions" "$HOME/.local/bin"
	cp "$0" "$versions/@CLAUDE_VERSION@"
	chmod 0755 "$versions/@CLAUDE_VERSION@"
	ln -sfn "$versions/@CLAUDE_VERSION@" "$HOME/.local/bin/claude"
	echo "Claude Code successfully installed! Version: @CLAUDE_VERSION@, location: ~/.local/bin/claude"
	;;
*) echo "@BANNER@: claude $*" ;;
esac
`

// failInstaller fails, as an installer whose download broke would.
const failInstaller = `#!/bin/bash
echo "@FAIL@ (hatchery's test mirror)" >&2
exit 1
`

// expand fills in a stand-in's placeholders.
func (m *Mirror) expand(s string) []byte {
	return []byte(strings.NewReplacer(
		"@URL@", m.url,
		"@BUN_VERSION@", StandInBunVersion,
		"@CLAUDE_VERSION@", StandInClaudeVersion,
		"@BANNER@", StandInBanner,
		"@FAIL@", FailBanner,
	).Replace(s))
}

// buildStandIns writes the installers and what they download under www.
func (m *Mirror) buildStandIns() error {
	www := filepath.Join(m.dir, "www")
	files := map[string][]byte{
		"bun/install":       m.expand(bunInstaller),
		"claude/install.sh": m.expand(claudeInstaller),
		"fail/install":      m.expand(failInstaller),
	}
	for _, target := range []string{"linux-x64", "linux-aarch64"} {
		z, err := zipOf("bun-"+target+"/bun", m.expand(bun))
		if err != nil {
			return err
		}
		files["bun/bun-"+target+".zip"] = z
	}
	for _, platform := range []string{"linux-x64", "linux-arm64"} {
		files["claude/"+StandInClaudeVersion+"/"+platform+"/claude"] = m.expand(claude)
	}
	for name, data := range files {
		if err := writeFile(filepath.Join(www, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// zipOf returns a zip archive holding one executable file.
func zipOf(name string, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: name, Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err == nil {
		_, err = w.Write(data)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("mirror: zip %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	return nil
}
