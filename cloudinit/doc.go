// Package cloudinit renders cloud-init user-data from a typed model, and
// refuses any that real cloud-init would choke on or that holds a secret.
//
// # Model
//
// Config models the cloud-config keys a provisioning control plane needs:
// hostname, users, package_update/package_upgrade, ca_certs (extra CA
// certificates), apt sources with their signing keys (an inline armored
// public key, or a fingerprint fetched from a keyserver), packages,
// write_files, runcmd, phone_home and reporting (cloud-init's webhook of
// boot events). Commands are argv lists (Command), which cloud-init
// single-quotes word by word, so no argument can start another command;
// Shell, RunAs and StopOnError build the few that need more.
//
// ca_certs runs in cloud-init's init stage (the network stage, the
// cloud_init_modules of Debian's /etc/cloud/cloud.cfg), before the config
// stage sets up apt sources and the final stage installs packages and runs
// runcmd and phone_home: what those fetch over HTTPS is checked against
// the added CAs. Boot events posted before it ran (init-local, the start
// of init-network) are checked against the image's CAs only. An apt
// source with an inline key writes it, dearmored, where "$KEY_FILE" in
// its source line points ("deb [signed-by=$KEY_FILE] ..."): cloud-init
// 22.4 has no separate signed_by key. A reporting webhook POSTs every
// stage's and module's start and finish to its endpoint, with a timeout
// (Reporter.Timeout, 5 s when left 0, rendered) so that an unresponsive
// endpoint cannot hold the boot at the end of each stage.
//
// # Rendering
//
// Build validates a Config, then renders "#cloud-config\n" followed by the
// YAML that go.yaml.in/yaml/v3 emits for the model, keys in declaration
// order, map keys sorted: the same Config always gives the same bytes. No
// text is templated. Each string is given the style that both yaml.v3
// (Parse) and PyYAML (cloud-init, YAML 1.1) read back as that same string:
// for example "=" or "1_0" are quoted, which yaml.v3 alone would leave
// plain and PyYAML would fail on or read as the integer 10. Permissions are
// always quoted strings ("0600"); an unquoted 0600 is the integer 384.
// phone_home's tries is written out, 10 when left 0, and so is a reporting
// webhook's timeout, 5 when left 0.
//
// # Validation
//
// Every refusal is a *FieldError that wraps ErrInvalid and names the field
// as it appears in the document (users[0].name, runcmd[2][0],
// apt.sources[github-cli].keyid) with the rule it breaks, never the value.
// The rules follow what cloud-init 22.4 does with the values: sudo is one
// string, not a list; a phone_home URL is an absolute http(s) URI whose
// only variable is $INSTANCE_ID (cloud-init's schema rejects
// ${INSTANCE_ID}, and its templater fails on any other $NAME); post is a
// non-empty list of cloud-init's seven keys (empty makes cloud-init send a
// GET with no body); an apt source's keyid is a full fingerprint, and the
// expired GitHub CLI key 23F3D4EA75716059 is refused; an inline key is one
// armored PGP public key block whose first packet is a public key; each
// ca_certs.trusted entry is one or more PEM certificates that parse, and
// nothing else; a reporting handler is a webhook whose endpoint is an
// absolute http(s) URI without "$". Config.Validate runs the same checks
// alone.
//
// # Secrets
//
// User-data can be read from inside the server and by the provider, so
// nothing secret may go in. Build looks for secrets before it validates
// (a private key pasted into the wrong field is reported as a secret) and
// fails with a *SecretError (ErrSecret) that names the kind and the field,
// or the line of the rendered document, never the value, when a field (a
// write_files content also after decoding its encoding) or the document
// holds:
//
//   - Private key material: a PEM or armored block whose BEGIN or END
//     line names a PRIVATE KEY (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP
//     PRIVATE KEY BLOCK, ...), the "Proc-Type: 4,ENCRYPTED" header of a
//     legacy encrypted key, an ssh.com "BEGIN SSH2 ENCRYPTED PRIVATE KEY",
//     a PuTTY key file; and, without any of those lines, a base64 body that
//     decodes to a private key: the DER of a PKCS#1, PKCS#8, SEC 1 or DSA
//     key, an encrypted PKCS#8 key (PBES2 or PKCS#12 PBE), an OpenSSH key
//     ("openssh-key-v1", also encrypted), an OpenPGP secret key packet.
//   - A token-shaped string: Anthropic sk-ant-; OpenAI sk-proj-,
//     sk-svcacct-, sk-admin- and legacy sk-...T3BlbkFJ...; Stripe sk_live_,
//     rk_live_, sk_test_, rk_test_; GitHub ghp_/gho_/ghu_/ghs_/ghr_ and
//     github_pat_; GitLab glpat-, gldt-, glrt-, glptt-, glft-, gloas-;
//     Google API keys (AIza and 35 more); AWS AKIA/ASIA key IDs; Slack
//     xox?-; Telegram bot tokens; Hetzner Cloud API tokens (64 letters and
//     digits). Tokens must stand at word boundaries.
//   - A value listed in Config.Secrets, with or without the white space
//     around it (a value read from a file usually ends in a newline; both
//     forms are found, and the encodings of both), or an encoding of it:
//     base64 in the standard and the URL alphabet, at any alignment inside
//     a longer base64 text; hex in either case; percent-encoding (query,
//     path, every byte); JSON string escaping (encoding/json's, with and
//     without HTML escaping, and Python's ASCII-only one).
//   - A fragment of a listed value: every FragmentSize (12) byte window
//     of a value longer than that, when the window holds no white space and
//     at least two characters each of two of lowercase letters, uppercase
//     letters and digits; also in hex and base64 runs, which are decoded
//     (below). A value of 24 bytes or more split over two fields is found
//     however it is split (one part holds 12 of its bytes). Windows that
//     occur in the host name, the phone_home URL or a reporting endpoint,
//     which a control plane makes from the tenant's ID, are not looked
//     for: a secret that holds the tenant ID (a database name, a bucket)
//     is not refused because the ID is in the callback URL.
//
// All of this is also looked for in what the text decodes to, up to
// MaxScanDepth (6) layers deep: runs of base64 (16 characters or more,
// standard or URL alphabet, also wrapped over lines of one length) and hex
// (32 digits or more), gzip (at the start of a value, and anywhere in
// decoded bytes: gzip inside gzip, inside base64, ...), and lines holding
// percent-encoding or backslash escapes (JSON, YAML, C, Python). gzip that
// expands past MaxScanExpansion (4 MiB) in one value, or that is found at
// MaxScanDepth, is refused with a *FieldError (ErrInvalid): it cannot be
// scanned, and a zip bomb costs no more memory than that.
//
// Public material is not secret and passes: certificates (ca_certs,
// write_files), public keys, armored PGP public keys and signatures, SSH
// public keys, fingerprints, hex digests such as SHA-256 sums, UUIDs,
// URLs. The token shapes are chosen so that it cannot match them: the
// 64-character Hetzner shape needs lowercase and uppercase letters and
// digits (a hex digest never mixes cases), no + / = around it (base64),
// no "-" before it ("sha384-..."), and must not be a line of a base64
// block (PEM and PGP bodies wrap at 64 characters, and one line in eight
// is then all letters and digits). Fragments of listed values are not
// looked for inside certificates, public keys and SSH public key blobs,
// which share structure with private keys (a private key holds its
// public key).
//
// What is not covered:
//
//   - A listed value shorter than 24 bytes split into parts shorter than
//     12; fragments made of words, paths or host names, or of one class of
//     characters (the whole value is still found); fragments inside public
//     key material; a fragment in base64 text that was cut out of a longer
//     encoding at a point that is not a multiple of 4 characters from its
//     start (it decodes misaligned; the whole value is found in such a
//     cut at any point).
//   - Encoded forms shorter than 6 characters (the base64 of a value of a
//     few bytes at an unlucky alignment); in bytes decoded from base64, hex
//     or gzip, listed values shorter than 8 bytes, which random bytes would
//     match.
//   - Other encodings: base32, base85, UTF-16, ROT13, reversed or
//     case-changed text, a shell's quoting of quotes, compression other
//     than gzip (zlib, bzip2, xz, zstd, zip), encryption, base64 wrapped
//     at uneven widths, more than MaxScanDepth layers.
//   - Secrets of other shapes that are not listed (passwords, database
//     URLs): list every value in Config.Secrets.
//
// The price of the fragment rule: a listed value that shares 12 such bytes
// with public content of the user-data is refused (a password made of a
// host name and a number, say), as is a 64-character word of mixed
// letters and digits standing alone.
//
// # Size
//
// What Build returns must fit Config.MaxSize bytes (0 means MaxSize,
// Hetzner's 32 KiB user_data limit), else it fails with a *SizeError
// (ErrTooLarge) that carries Size and Limit. With Config.Compress it
// returns base64(gzip(document)) on one line with no trailing newline,
// which Hetzner's datasource decodes (it ignores base64 that is wrapped)
// and which carries several times more; validation and the secret scan
// run on the plain document, the limit on what is sent.
//
// # Reading back
//
// Parse reads plain or compressed user-data back into a Config, strictly:
// unknown keys, duplicate keys, wrong types and a second document are
// errors wrapping ErrInvalid. Decode returns just the plain document.
package cloudinit
