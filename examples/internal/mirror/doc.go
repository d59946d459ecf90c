// Package mirror serves, on 127.0.0.1 over HTTPS, stand-ins for everything
// the Rachel8 recipe (examples/rachel8) fetches from the internet at boot,
// so that the recipe runs unchanged but for its sources on machines that
// reach only Debian's mirror: CI and the quickstart on local servers
// (provider/nspawn), which share the host's 127.0.0.1.
//
// Start generates, for this run only:
//
//   - a CA (crypto/x509, ECDSA P-256) and a certificate for 127.0.0.1 and
//     localhost that it signs; the recipe gets the CA as an extra CA
//     (rachel8.Options.CACerts), which cloud-init installs before anything
//     is fetched;
//   - stand-in installers that do what the real ones do to the file
//     system, run as the user with `curl -fsSL URL | bash`: Bun's
//     (/bun/install) downloads a zip with curl, unpacks it with unzip
//     (the real one needs both) and puts the stand-in bun at
//     ~/.bun/bin/bun; Claude's (/claude/install.sh) downloads the stand-in
//     claude into ~/.claude/downloads and runs its `install`, which puts
//     it under ~/.local/share/claude/versions and links ~/.local/bin/claude
//     to it, as the real installer and CLI do. /fail/install is an
//     installer that fails;
//   - the stand-in bun, a shell script: `bun install` in a checkout with a
//     package.json makes node_modules; `bun run src/index.ts` prints
//     StandInBanner, the user, the directory and the names (never the
//     values) of the .env variables, as Bun reads .env from the working
//     directory, then stays running (a long-running service, as systemd
//     expects of Rachel8);
//   - a git repository holding a minimal Rachel8 checkout (package.json,
//     src/index.ts, rachel8.service, .env.example), served by the real
//     `git http-backend` over smart HTTP (net/http/cgi) at /git/rachel8.git;
//   - a signed apt repository at /apt ("deb URL stable main") with one
//     package, gh StandInGHVersion, built with dpkg-deb for the machine's
//     architecture, indexed with dpkg-scanpackages and signed with gpg:
//     the key is a throwaway one made at Start in a temporary GNUPGHOME, a
//     certify-only primary key with an ed25519 signing subkey that signs
//     the Release file (InRelease and Release.gpg). Its public part is
//     AptKey (armored, for rachel8.AptRepo.Key) and, binary, at
//     /apt/keyring.gpg (for rachel8.AptRepo.KeyringURL, pinned by
//     PrimaryFingerprint or SigningFingerprint). StrangerKey is another
//     key, which signs nothing here: a recipe given it gets apt's refusal.
//
// RecipeOptions returns rachel8.Options with every source pointing here.
//
// # Requirements
//
// git (with git-http-backend), dpkg-deb, dpkg-scanpackages (Debian package
// dpkg-dev), gpg and gpg-agent; Start fails with an error wrapping ErrRequirements
// that names what is missing and how to install it. Close stops the
// server and the gpg-agent that key generation started, and removes the
// temporary directory.
package mirror
