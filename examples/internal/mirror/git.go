package mirror

import (
	"context"
	"path/filepath"

	"github.com/hatchery-dev/hatchery/examples/rachel8"
)

// checkout is the minimal Rachel8 checkout the git repository holds: what
// the recipe and the unit need of the real one.
func checkout() map[string][]byte {
	return map[string][]byte{
		"package.json": []byte(`{
  "name": "rachel8",
  "version": "0.0.0-standin",
  "description": "A minimal stand-in for the Rachel8 checkout, served by hatchery's test mirror",
  "module": "src/index.ts",
  "type": "module",
  "scripts": {
    "start": "bun run src/index.ts"
  },
  "dependencies": {}
}
`),
		"src/index.ts": []byte(`// Stand-in for Rachel8's entry point: the stand-in bun does not run it,
// it prints what it was asked to run and stays up.
console.log("Rachel8 stand-in");
`),
		"rachel8.service": rachel8.UnitTemplate(),
		".env.example": []byte(`TELEGRAM_BOT_TOKEN=
OWNER_TELEGRAM_USER_ID=
SHARED_FOLDER_PATH=
NODE_ENV=production
LOG_LEVEL=info
`),
		"README.md": []byte("# Rachel8 (stand-in)\n\nA minimal checkout for hatchery's tests; the real one is https://github.com/polly3223/Rachel8.\n"),
	}
}

// buildGit commits the checkout and makes a bare repository of it under
// git/rachel8.git, where git http-backend finds it (GIT_PROJECT_ROOT).
func (m *Mirror) buildGit(ctx context.Context) error {
	work := filepath.Join(m.dir, "checkout")
	for name, data := range checkout() {
		if err := writeFile(filepath.Join(work, name), data, 0o644); err != nil {
			return err
		}
	}
	// No user or system configuration: nothing of the machine's (a
	// signing requirement, a hook path) reaches these commands.
	env := []string{
		"HOME=" + m.dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Hatchery mirror", "GIT_AUTHOR_EMAIL=mirror@hatchery.invalid",
		"GIT_COMMITTER_NAME=Hatchery mirror", "GIT_COMMITTER_EMAIL=mirror@hatchery.invalid",
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", work},
		{"-C", work, "add", "-A"},
		{"-C", work, "commit", "-q", "-m", "Rachel8 stand-in checkout"},
		{"clone", "-q", "--bare", work, filepath.Join(m.dir, "git", "rachel8.git")},
	} {
		if _, err := run(ctx, m.dir, env, m.prog.git, args...); err != nil {
			return err
		}
	}
	return nil
}
